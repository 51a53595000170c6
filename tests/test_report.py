"""`pcnode demo` (`run_demo`): every promised file written and well-formed."""
import json

import numpy as np
from PIL import Image

from pcnode.experiments.demo import run_demo
from pcnode.experiments.figures import _bounced


def test_demo_writes_its_report_figures_animation_and_lines_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo caches its data under ./data
    out = run_demo(tmp_path / "demo", seed=0, lines_steps=2, trajectories=8)
    report = (out / "report.md").read_text()
    for row in ("| PC-ODE |", "| RNN |", "| (hold the last burn-in frame) |", "8 held-out trajectories"):
        assert row in report
    for png in ("paths.png", "lines.png", "curves.png"):
        assert Image.open(out / png).format == "PNG"
    assert Image.open(out / "rollout.gif").format == "GIF"
    assert {"config.json", "checkpoint.safetensors", "metrics.csv"} <= {p.name for p in (out / "lines").iterdir()}
    assert json.loads((out / "config.json").read_text())["demo"]["lines_steps"] == 2


def test_only_the_balls_whose_velocity_changed_are_marked_at_a_collision():
    # Ball 0 bounces off the wall x = 1 between frames 3 and 4; ball 1 flies straight on.
    t = np.arange(8.0)
    ball0 = np.stack([np.where(t <= 3.5, 0.6 + 0.1 * t, 1.3 - 0.1 * t), np.full(8, 0.5)], -1)
    ball1 = np.stack([np.full(8, 0.2), 0.1 + 0.05 * t], -1)
    events = np.zeros(8, dtype=int)
    events[4] = 1
    marked = _bounced(np.stack([ball0, ball1], 1), events)
    assert marked[4].tolist() == [True, False] and marked.sum() == 1


def test_a_second_demo_says_it_reuses_the_lines_run_and_its_report_says_so_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notes = []
    run_demo(tmp_path / "demo", lines_steps=2, trajectories=4, note=notes.append)
    assert notes == []
    run_demo(tmp_path / "demo", lines_steps=2, trajectories=4, note=notes.append)
    assert len(notes) == 1 and "reusing the Lines PC-ODE" in notes[0] and str(tmp_path / "demo" / "lines") in notes[0]
    assert "by an earlier demo whose run this one reused" in (tmp_path / "demo" / "report.md").read_text()
