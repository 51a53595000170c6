"""Feedback on every wait: `fit` shows a bar by default (off with progress=False), a
resumed training counts on from where it stopped, and quick commands print no bar."""
import torch

import pcnode
import pcnode.progress
from pcnode import ModelConfig, TrainConfig, build_model, fit
from pcnode.cli import main
from pcnode.data import save_npz

torch.set_num_threads(1)
DATA = torch.cumsum(torch.rand(24, 10, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)
CONFIG = TrainConfig(steps=4, batch_size=4, eval_every=2, checkpoint_every=2, eval_size=2)


def model():
    return build_model(ModelConfig(state_dim=2, hidden=8, latent=8), seed=0)


def test_fit_shows_a_bar_of_its_steps_with_the_loss_by_default(capsys, monkeypatch):
    monkeypatch.setattr(pcnode.progress, "DELAY", 0.0)
    fit(model(), DATA[:20], CONFIG, test=DATA[20:])
    err = capsys.readouterr().err
    assert "4/4" in err and "loss=" in err and "dt=" in err


def test_fit_prints_nothing_with_progress_off(capsys, monkeypatch):
    monkeypatch.setattr(pcnode.progress, "DELAY", 0.0)
    fit(model(), DATA[:20], CONFIG, test=DATA[20:], progress=False)
    assert capsys.readouterr() == ("", "")


def test_a_labelled_bar_carries_the_label_and_a_user_callback_still_runs(capsys, monkeypatch):
    monkeypatch.setattr(pcnode.progress, "DELAY", 0.0)
    steps = []
    fit(model(), DATA[:20], CONFIG, progress="learning lines", on_step=lambda step, losses: steps.append(step))
    assert "learning lines" in capsys.readouterr().err and steps == [1, 2, 3, 4]


def test_a_resumed_training_counts_on_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pcnode.progress, "DELAY", 0.0)
    m = model()
    fit(m, DATA[:20], CONFIG, run_dir=tmp_path / "run", progress=False)
    fit(m, DATA[:20], TrainConfig(**{**CONFIG.__dict__, "steps": 6}), run_dir=tmp_path / "run", resume=True)
    err = capsys.readouterr().err
    assert "6/6" in err and "1/6" not in err and "4/6" in err


def test_a_quick_command_prints_its_results_and_no_bar(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_npz(tmp_path / "walks.npz", x=DATA.numpy())
    assert main(["train", "--data", "walks.npz", "--steps", "2", "--batch-size", "4", "--hidden", "8", "--latent", "8",
                 "--out", "run"]) == 0
    capsys.readouterr()
    assert main(["eval", "run"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.splitlines()[0].strip().startswith("mse:")


def test_evaluate_shows_a_bar_of_the_trajectories_scored_unless_told_not_to(capsys, monkeypatch):
    monkeypatch.setattr(pcnode.progress, "DELAY", 0.0)
    m = model()
    pcnode.evaluate(m, DATA, batch_size=8)
    assert "evaluate:" in capsys.readouterr().err
    pcnode.evaluate(m, DATA, batch_size=8, progress=False)
    done = []
    pcnode.evaluate(m, DATA, batch_size=8, progress=done.append)
    assert capsys.readouterr().err == "" and done == [8, 8, 8]
