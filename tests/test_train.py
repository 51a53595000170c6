"""Training: checkpoints that round-trip exactly, refuse corruption, and resume where they stopped."""
import json

import pytest
import torch

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, evaluate, fit, load_run, rollout
from pcnode.checkpoint import load_tensors, read_metrics
from pcnode.errors import CheckpointError, ConfigError, DataError
from pcnode.forcing import Objective
from pcnode.segments import DEFAULT_RELATIVE_EPSILON, mean_square_change

torch.set_num_threads(1)


def small_run(tmp_path, kind="pcode", steps=6, **kw):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, state_dim=2, hidden=16, latent=16))
    data = torch.cumsum(torch.rand(40, 12, 2) * 0.1, 1)
    cfg = TrainConfig(**{"steps": steps, "batch_size": 8, "eval_every": 3, "checkpoint_every": 3, "eval_size": 8,
                         **kw})
    history = fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "run", data={"note": "test"})
    return model, data, history


@pytest.mark.parametrize("kind", ["pcode", "rnn", "odernn"])
def test_checkpoint_round_trip_reproduces_outputs_exactly(tmp_path, kind, device):
    model, data, _ = small_run(tmp_path, kind, device=device)
    loaded, cfg = load_run(tmp_path / "run", device=device)
    model.eval()
    a = rollout(model, data[32:, :4].to(device), 11).frames()
    b = rollout(loaded, data[32:, :4].to(device), 11).frames()
    assert torch.equal(a, b)
    assert cfg["model"]["kind"] == kind and cfg["data"] == {"note": "test"}


def test_every_run_writes_its_full_config(tmp_path):
    _, data, _ = small_run(tmp_path)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["seed"] == 0 and cfg["train"]["relative_epsilon"] is None  # the default applied...
    # ...to the change measured on the training data, fixed in the data's units and kept with the run
    assert cfg["segments"]["threshold"] == pytest.approx(DEFAULT_RELATIVE_EPSILON * mean_square_change(data[:32]))
    assert cfg["segments"]["n_burn"] == 4 and cfg["segments"]["jumps"] is True
    assert cfg["model"]["time_constant"] == 0.2


def test_metrics_have_one_row_per_evaluation(tmp_path):
    _, _, history = small_run(tmp_path)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["step"] for r in rows] == [3, 6] == [r["step"] for r in history]
    assert all(r["test_mse_model_units"] >= 0 for r in rows)


def test_truncated_checkpoint_is_refused_clearly(tmp_path):
    small_run(tmp_path)
    path = tmp_path / "run" / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_run(tmp_path / "run")


def test_checkpoint_from_another_model_is_refused(tmp_path):
    small_run(tmp_path, kind="rnn")
    cfg_path = tmp_path / "run" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["kind"] = "pcode"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        load_run(tmp_path / "run")


def test_missing_run_folder_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_run(tmp_path / "nowhere")


def test_resume_continues_from_the_saved_step(tmp_path):
    small_run(tmp_path, steps=3)
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="pcode", state_dim=2, hidden=16, latent=16))
    data = torch.cumsum(torch.rand(40, 12, 2) * 0.1, 1)
    cfg = TrainConfig(steps=6, batch_size=8, eval_every=3, checkpoint_every=3, eval_size=8)
    seen = []
    fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "run", resume=True, data={"note": "test"},
        on_step=lambda step, _: seen.append(step))
    assert seen == [4, 5, 6]
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.csv")] == [3, 6]


def test_a_run_written_before_a_setting_existed_resumes_with_its_default(tmp_path):
    small_run(tmp_path, steps=3)
    path = tmp_path / "run" / "config.json"
    cfg = json.loads(path.read_text())
    del cfg["train"]["feed_predictions"], cfg["train"]["precision"], cfg["segments"]["max_dt"]
    path.write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="pcode", state_dim=2, hidden=16, latent=16))
    data = torch.cumsum(torch.rand(40, 12, 2) * 0.1, 1)
    cfg = TrainConfig(steps=6, batch_size=8, eval_every=3, checkpoint_every=3, eval_size=8)
    fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "run", resume=True, data={"note": "test"})
    # A setting that differs from the default the old run used is still a different run.
    cfg = TrainConfig(steps=9, batch_size=8, eval_every=3, checkpoint_every=3, eval_size=8, feed_predictions=0.5)
    with pytest.raises(CheckpointError, match="different config"):
        fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "run", resume=True, data={"note": "test"})


def test_resumed_training_matches_uninterrupted_training(tmp_path):
    straight, _, _ = small_run(tmp_path / "a", steps=6)
    small_run(tmp_path / "b", steps=3)
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="pcode", state_dim=2, hidden=16, latent=16))
    data = torch.cumsum(torch.rand(40, 12, 2) * 0.1, 1)
    torch.manual_seed(123)  # resume must restore the RNG itself
    cfg = TrainConfig(steps=6, batch_size=8, eval_every=3, checkpoint_every=3, eval_size=8)
    fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "b" / "run", resume=True, data={"note": "test"})
    for (name, p), q in zip(straight.named_parameters(), model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_init_starts_from_another_runs_weights_and_says_so(tmp_path):
    source, data, _ = small_run(tmp_path / "a", steps=3)
    torch.manual_seed(1)
    model = build_model(ModelConfig(kind="pcode", state_dim=2, hidden=16, latent=16), seed=1)
    cfg = TrainConfig(steps=1, batch_size=8, eval_every=1, checkpoint_every=1, eval_size=8, lr=1e-12,
                      init=str(tmp_path / "a" / "run"))
    fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "b", data={"note": "test"})
    for (name, p), q in zip(source.named_parameters(), model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name  # one step at a vanishing learning rate
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["init"] == str(tmp_path / "a" / "run")
    other = build_model(ModelConfig(kind="pcode", state_dim=2, hidden=8, latent=16))
    with pytest.raises(ConfigError, match="hidden 16 where this run's has hidden 8"):
        fit(other, data[:32], cfg, run_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_a_folder_holding_a_run_is_not_overwritten(tmp_path):
    small_run(tmp_path)
    with pytest.raises(CheckpointError, match="already holds a run"):
        small_run(tmp_path)


@pytest.mark.parametrize("change, error", [
    ({"lr": -1.0}, ConfigError),
    ({"batch_size": -4}, ConfigError),
    ({"steps": 0}, ConfigError),
    ({"precision": "float16"}, ConfigError),
])
def test_bad_training_settings_are_refused(tmp_path, change, error):
    with pytest.raises(error):
        small_run(tmp_path, **change)


@pytest.mark.parametrize("data, message", [
    (torch.full((8, 12, 2), float("nan")), "NaN"),
    (torch.rand(8, 3, 2), "frames"),
    (torch.rand(8, 12, 3), "dims"),
    (torch.randint(0, 5, (8, 12, 2)), "floating point"),
    (torch.rand(0, 12, 2), "no sequences"),
])
def test_bad_training_data_is_refused(data, message):
    model = build_model(ModelConfig(state_dim=2))
    with pytest.raises(DataError, match=message):
        fit(model, data, TrainConfig(steps=1))


@pytest.mark.parametrize("kind", ["pcode", "rnn", "odernn"])
def test_bfloat16_autocast_trains_with_float32_weights(tmp_path, kind, device):
    model, data, history = small_run(tmp_path, kind=kind, precision="bfloat16", device=device)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(r["loss"] > 0 and r["loss"] < 1 for r in history)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == "bfloat16"


def test_bfloat16_losses_are_close_to_float32(device):
    from pcnode import teacher_forcing
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="pcode", state_dim=2)).to(device)
    seq = torch.cumsum(torch.rand(64, 20, 2) * 0.1, 1).to(device)
    # The same decisions in both precisions:
    rule, config = SegmentRule(threshold=0.0), TrainConfig(jump_prob=0.0)
    full = teacher_forcing(model, seq, rule, config)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        half = teacher_forcing(model, seq, rule, config)
    assert half.total.dtype == torch.float32
    assert torch.allclose(half.total, full.total, rtol=0.05)


def test_a_validation_split_is_held_out_of_training_and_keeps_the_best_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="rnn", state_dim=2, hidden=16, latent=16))
    data = torch.cumsum(torch.rand(40, 12, 2) * 0.1, 1)
    data[24:32] += 100.0  # the last quarter of the training data: held out, so never in a batch
    cfg = TrainConfig(steps=9, batch_size=8, eval_every=3, checkpoint_every=3, eval_size=8, val_fraction=0.25,
                      lr=0.05)
    largest = []
    forward = Objective.forward
    monkeypatch.setattr(Objective, "forward", lambda self, batch, *rest: (largest.append(batch.x.max().item()),
                                                                          forward(self, batch, *rest))[1])
    history = fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "run")
    assert len(largest) == 9 and max(largest) < 100, "a held-out trajectory was trained on"
    val = [r["val_mse_model_units"] for r in history]
    assert len(val) == 3 and len(set(val)) == 3
    tensors, meta = load_tensors(tmp_path / "run" / "best.safetensors")
    assert int(meta["step"]) == history[val.index(min(val))]["step"] and float(meta["val_mse"]) == min(val)
    best, _ = load_run(tmp_path / "run", weights="best")
    assert evaluate(best, data[24:32])["mse"] == pytest.approx(min(val), rel=1e-5)


def test_a_run_without_a_validation_split_has_no_best_weights(tmp_path):
    small_run(tmp_path, steps=3)
    with pytest.raises(CheckpointError, match="no best weights"):
        load_run(tmp_path / "run", weights="best")
    with pytest.raises(ConfigError, match="unknown weights"):
        load_run(tmp_path / "run", weights="first")


@pytest.mark.parametrize("fraction", [1.0, -0.1, True])
def test_a_validation_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        TrainConfig(val_fraction=fraction).validate()
