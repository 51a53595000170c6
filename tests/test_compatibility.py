"""Runs written by earlier versions of pcnode still load, roll out as they did, and resume.

tests/fixtures/v0.1-KIND/ are tiny runs written by pcnode 0.1.0 (commit bbc7636, before
the package was reorganised), each with the rollout that version produced.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch

from pcnode import TrainConfig, fit, load_run, rollout
from pcnode.checkpoint import read_metrics

FIXTURES = Path(__file__).parent / "fixtures"
DATA = torch.cumsum(torch.rand(40, 12, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)


@pytest.mark.parametrize("kind", ["pcode", "rnn", "odernn"])
def test_a_run_from_version_0_1_rolls_out_as_it_did(kind):
    model, cfg = load_run(FIXTURES / f"v0.1-{kind}")
    then = json.loads((FIXTURES / f"v0.1-{kind}" / "rollout.json").read_text())
    ro = rollout(model, DATA[32:34, :4], 11)
    frames = torch.tensor(then["frames"])
    if kind == "pcode":
        # Since 0.1 a PC-ODE's jump that would stop less than min_dt short of the horizon
        # runs on to it: this PC-ODE's last update, at t = 10.15, is no longer made, so
        # frame 11 is read from the jump before it. Every earlier frame is as it was.
        assert ro.updates.tolist() == [n - 1 for n in then["updates"]]
        assert torch.allclose(ro.frames()[:, :-1], frames[:, :-1], atol=1e-5)
        assert not torch.allclose(ro.frames()[:, -1], frames[:, -1], atol=1e-5)
    else:
        assert ro.updates.tolist() == then["updates"]
        assert torch.allclose(ro.frames(), frames, atol=1e-5)
    assert cfg["model"]["kind"] == kind


def test_a_run_from_version_0_1_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "v0.1-pcode", run)
    model, _ = load_run(run)
    history = fit(model, DATA[:32], TrainConfig(steps=3, batch_size=8, eval_every=2, checkpoint_every=2, eval_size=8),
                  test=DATA[32:], run_dir=run, resume=True, data={"note": "written by pcnode 0.1.0 at commit bbc7636"})
    assert [r["step"] for r in history] == [2, 3]


def test_the_metrics_of_a_run_from_version_0_1_read_and_resume_under_names_with_units(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "v0.1-pcode", run)
    assert "test_mse" in (run / "metrics.csv").read_text().splitlines()[0]
    old = read_metrics(run / "metrics.csv")
    assert {"test_mse_model_units", "test_mean_dt_frames", "train_mean_dt_frames"} <= old[0].keys()
    model, _ = load_run(run)
    fit(model, DATA[:32], TrainConfig(steps=3, batch_size=8, eval_every=2, checkpoint_every=2, eval_size=8),
        test=DATA[32:], run_dir=run, resume=True, data={"note": "written by pcnode 0.1.0 at commit bbc7636"})
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "test_mse_model_units" in header and "test_mse" not in header
    assert read_metrics(run / "metrics.csv")[0] == old[0]  # the rows it had are kept, renamed
