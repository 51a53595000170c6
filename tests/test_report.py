"""`pcnode demo` (`run_demo`): every promised file written and well-formed."""
from PIL import Image

from pcnode.experiments.demo import run_demo


def test_demo_writes_its_report_figures_animation_and_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo caches its data under ./data
    out = run_demo(tmp_path / "demo", steps=2, seed=0, n=40)
    report = (out / "report.md").read_text()
    for row in ("| PC-ODE |", "| RNN |", "| (hold the last burn-in frame) |"):
        assert row in report
    assert Image.open(out / "paths.png").format == "PNG" and Image.open(out / "curves.png").format == "PNG"
    assert Image.open(out / "rollout.gif").format == "GIF"
    for kind in ("pcode", "rnn"):
        assert {"config.json", "checkpoint.safetensors", "metrics.csv", "eval.json"} <= \
            {p.name for p in (out / kind).iterdir()}
