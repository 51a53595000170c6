"""Shipped models: each loads and scores what it recorded; names, listing and tampering handled."""
import json
import shutil

import pytest
import torch

from pcnode import ModelConfig, TrainConfig, build_model, evaluate, fit, pretrained
from pcnode import checkpoint as ckpt
from pcnode.cli import main
from pcnode.errors import CheckpointError

torch.set_num_threads(1)


@pytest.mark.parametrize("name", pretrained.names())
def test_every_shipped_model_scores_what_it_recorded(name):
    model = pretrained.load(name)
    info = pretrained.info(name)
    x = ckpt.load_tensors(pretrained.folder(name) / pretrained.CHECK)[0]["x"]
    assert model.rule.n_burn == info["check"]["n_burn"]
    got = evaluate(model, x)["mse"]
    # Float32 rounding alone moves these MSEs by up to 7e-5 relative (the same rollouts in
    # float64, or on a CPU whose kernels sum in another order); wrong weights move them by far more.
    assert got == pytest.approx(info["check"]["mse"], rel=1e-3)
    for key in ("command", "commit", "steps", "train_s", "machine", "metrics"):
        assert key in info, key


# Each shipped model's scores on its 16 check trajectories (MSE, updates per rollout), pinned
# here by hand when the model was shipped: `benchmarks/zoo.py --rescore` rewrites the
# provenance, never this table, so a change of weights or of how rollouts run shows here.
PINNED = {
    "billiards1d-pcode": (9.0122e-06, 1.0000),
    "billiards1d-rnn": (1.8101e-05, 41.0000),
    "billiards2d-pcode": (4.2351e-02, 5.4375),
    "billiards2d-pcode-fed": (4.2426e-02, 3.1250),
    "billiards2d-rnn": (3.0505e-02, 41.0000),
    "circles-odernn": (5.4876e-05, 26.0000),
    "circles-pcode": (1.7590e-05, 1.0000),
    "circles-rnn": (3.8671e-05, 26.0000),
    "lines-odernn": (2.5072e-08, 17.0000),
    "lines-pcode": (9.3038e-07, 1.0000),
    "lines-rnn": (3.0110e-08, 17.0000),
    "plan-pcode": (8.1580e-03, 1.0625),
    "plan-rnn": (2.4286e-02, 27.0000),
}


def test_every_shipped_model_has_pinned_scores():
    assert sorted(PINNED) == pretrained.names()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_shipped_model_scores_its_pinned_values(name):
    model = pretrained.load(name)
    x = ckpt.load_tensors(pretrained.folder(name) / pretrained.CHECK)[0]["x"]
    scores = evaluate(model, x)
    mse, updates = PINNED[name]
    assert scores["mse"] == pytest.approx(mse, rel=1e-3)  # float32 rounding, as above; 5 digits pinned
    assert scores["updates"] == pytest.approx(updates, abs=1e-4)


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A zoo of one tiny model, `tiny-rnn`, in place of the shipped one."""
    run = tmp_path / "run"
    x = torch.cumsum(torch.rand(20, 10, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)
    model = build_model(ModelConfig(kind="rnn", state_dim=2, hidden=8, latent=8), seed=0)
    fit(model, x[:16], TrainConfig(steps=2, batch_size=4, eval_every=2, checkpoint_every=2, eval_size=4),
        test=x[16:], run_dir=run, data={"task": "lines", "n": 20, "seed": 0, "test_fraction": 0.1})
    monkeypatch.setattr(pretrained, "ZOO", tmp_path / "zoo")
    pretrained.export(run, tmp_path / "zoo" / "tiny-rnn", {"metrics": {"mse": 0.5, "updates": 17.0}, "steps": 2})
    monkeypatch.chdir(tmp_path)
    return tmp_path / "zoo"


def test_a_shipped_model_loads_ready_to_roll_out_and_carries_no_optimiser_state(zoo):
    assert pretrained.names() == ["tiny-rnn"]
    model = pretrained.load("tiny-rnn")
    assert not model.training and model.config.kind == "rnn"
    tensors, _ = ckpt.load_tensors(zoo / "tiny-rnn" / ckpt.CHECKPOINT)
    assert all(k.startswith("model.") for k in tensors)


def test_an_unknown_name_lists_the_models_that_ship(zoo):
    with pytest.raises(CheckpointError, match="the ones that ship: tiny-rnn"):
        pretrained.load("tiny-pcode")


def test_the_command_line_lists_and_scores_shipped_models_without_writing_into_them(zoo, capsys):
    before = sorted(p.name for p in (zoo / "tiny-rnn").iterdir())
    assert main(["pretrained"]) == 0
    assert "tiny-rnn" in capsys.readouterr().out
    assert main(["eval", "pretrained:tiny-rnn", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["model"] == "rnn"
    assert sorted(p.name for p in (zoo / "tiny-rnn").iterdir()) == before


@pytest.mark.parametrize("damage", ["truncate", "nan-weights", "pickle-instead"])
def test_a_damaged_shipped_model_is_refused_like_any_checkpoint(zoo, damage):
    path = zoo / "tiny-rnn" / ckpt.CHECKPOINT
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "nan-weights":
        tensors, meta = ckpt.load_tensors(path)
        tensors["model.cell.weight_hh"][0, 0] = float("nan")
        ckpt.save_tensors(path, tensors, meta)
    else:
        shutil.copy(path, path.with_suffix(".pt"))
        path.unlink()
    with pytest.raises(CheckpointError):
        pretrained.load("tiny-rnn")
