"""Exported models: the ONNX step functions run by `pcnode.runtime` (numpy and onnxruntime)
make the eager model's decisions, and the command line streams and exports runs."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pcnode import (
    ModelConfig,
    SegmentRule,
    Stream,
    TrainConfig,
    build_model,
    fit,
    load_run,
    pretrained,
    rollout,
    runtime,
)
from pcnode.cli import main
from pcnode.data import save_npz, task_data
from pcnode.errors import ConfigError, DataError
from pcnode.export import export

torch.set_num_threads(1)
pytest.importorskip("onnxruntime")

REL = 1e-4  # states within this much of the eager model's, relative to their largest magnitude


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped Billiards2D PC-ODE, exported with an example batch of 2, and 24 fresh trajectories."""
    model = pretrained.load("billiards2d-pcode")
    folder = export(model, tmp_path_factory.mktemp("export") / "pcode", batch=2)
    x = torch.from_numpy(task_data("billiards2d", n=24, seed=1)["x"])
    return model, runtime.load(folder), x


def relative(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def test_the_runtime_rollout_makes_the_eager_rollouts_updates(shipped):
    model, exported, x = shipped
    eager = rollout(model, x[:, :4], horizon=44)
    ours = runtime.rollout(exported, x[:, :4].numpy(), horizon=44)
    assert (ours.updates == eager.updates.numpy()).all()
    assert ours.t.shape == tuple(eager.t.shape) and np.allclose(ours.t, eager.t.numpy(), rtol=1e-5)
    real = np.isfinite(ours.t)
    assert relative(ours.h[real], eager.h.numpy()[real]) < REL
    grid = np.linspace(4, 44, 81, dtype=np.float32)
    assert relative(ours.at(grid), eager.at(torch.from_numpy(grid)).numpy()) < REL


def test_the_runtime_stream_makes_the_eager_streams_decisions(shipped):
    model, exported, x = shipped
    eager, ours = Stream(model, len(x)), runtime.Stream(exported, len(x))
    for i in range(x.shape[1]):
        assert (ours.observe(i, x[:, i].numpy()) == eager.observe(i, x[:, i]).numpy()).all()
        if i:
            assert relative(ours.predicted, eager.predicted.numpy()) < REL
    assert relative(ours.h, eager.h.numpy()) < REL
    assert np.allclose(ours.next_update_time, eager.next_update_time.numpy(), rtol=1e-5)
    assert (ours.forecast(60.0).updates == eager.forecast(60.0).updates.numpy()).all()


def test_a_stream_state_moves_between_the_eager_and_the_exported_model(shipped):
    model, exported, x = shipped
    eager = Stream(model, len(x))
    for i in range(20):
        eager.observe(i, x[:, i])
    ours = runtime.Stream.from_state(exported, {k: v if k == "model" else v.numpy()
                                                for k, v in eager.state().items()})
    for i in range(20, x.shape[1]):
        assert (ours.observe(i, x[:, i].numpy()) == eager.observe(i, x[:, i]).numpy()).all()
    back = Stream.from_state(model, ours.state())
    assert torch.equal(back.readings, eager.readings)


@pytest.mark.parametrize("line", ["latent", "data"])
def test_the_runtime_applies_the_event_line_and_input_changes_as_the_eager_model_does(tmp_path, line):
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16, input_dim=1, line=line), seed=0)
    model.rule = SegmentRule(jumps=True, threshold=0.02, event_threshold=0.01, input_threshold=0.3).bind(model)
    exported = runtime.load(export(model, tmp_path / "m"))
    rng = np.random.default_rng(0)
    u = np.repeat(rng.normal(0, 0.5, (4, 6, 1)), 5, axis=1).astype(np.float32)  # (4, 30, 1): a step every 5
    eager, ours = Stream(model, 4), runtime.Stream(exported, 4)
    decided = []
    for i in range(30):
        near = eager.at(float(i)).numpy() if i else np.zeros((4, 2), np.float32)
        x = (near + rng.normal(0, 0.1, (4, 2)) * (rng.random((4, 1)) < 0.3)).astype(np.float32)
        decided.append(eager.observe(i, torch.from_numpy(x), torch.from_numpy(u[:, i])).numpy())
        assert (ours.observe(i, x, u[:, i]) == decided[-1]).all()
    assert 0 < np.mean(decided[4:]) < 1
    t_u = np.tile(np.arange(30, dtype=np.float32), (4, 1))
    want = rollout(model, torch.from_numpy(x[:, None].repeat(4, 1)), horizon=29.0, u=torch.from_numpy(u),
                   t_u=torch.from_numpy(t_u))
    got = runtime.rollout(exported, x[:, None].repeat(4, 1), horizon=29.0, u=u, t_u=t_u)
    assert (got.updates == want.updates.numpy()).all() and np.allclose(got.t, want.t.numpy())


def test_the_runtime_refuses_a_state_written_by_another_model(shipped):
    _, exported, _ = shipped
    state = runtime.Stream(exported, 2).state()
    with pytest.raises(DataError, match="another model"):
        runtime.Stream.from_state(exported, {**state, "model": "0" * 64})


@pytest.mark.parametrize("t, x, message", [
    (30.0, np.zeros((24, 3)), "shaped \\(24, 4\\)"),
    (2.0, np.zeros((24, 4)), "does not come after"),
    (30.0, np.full((24, 4), np.nan), "NaN"),
])
def test_bad_readings_leave_the_runtime_stream_as_it_was(shipped, t, x, message):
    _, exported, data = shipped
    stream = runtime.Stream(exported, len(data))
    for i in range(6):
        stream.observe(i, data[:, i].numpy())
    before = stream.state()
    with pytest.raises(DataError, match=message):
        stream.observe(t, x)
    after = stream.state()
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before if k != "model")


def test_importing_the_runtime_does_not_import_torch():
    code = "import pcnode.runtime, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def tiny(kind, tmp, x):
    """A model of `kind` trained for two steps on `x` into the run folder tmp/kind."""
    model = build_model(ModelConfig(kind=kind, state_dim=2, hidden=16, latent=16), seed=0)
    fit(model, x[:18], TrainConfig(steps=2, batch_size=4, eval_every=2, checkpoint_every=2, eval_size=2),
        test=x[18:], run_dir=tmp / kind, data={"file": str(tmp / "data.npz"), "test_fraction": 0.1})
    return tmp / kind


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    x = np.cumsum(np.random.default_rng(0).normal(0, 0.1, (20, 12, 2)), 1).astype(np.float32)
    save_npz(root / "data.npz", x=x)
    t = torch.from_numpy(x)
    return root, {kind: tiny(kind, root, t) for kind in ("pcode", "rnn", "odernn")}


def test_export_writes_the_step_functions_that_the_runtime_runs(runs, tmp_path, capsys):
    root, folders = runs
    assert main(["--threads", "1", "export", str(folders["rnn"]), "--out", str(tmp_path / "rnn")]) == 0
    assert sorted(p.name for p in (tmp_path / "rnn").iterdir()) == sorted(
        ["update.onnx", "read.onnx", "update.pt2", "read.pt2", "model.json"])
    assert "wrote" in capsys.readouterr().out
    x = np.load(root / "data.npz")["x"][:7]
    eager = rollout(load_run(folders["rnn"])[0], torch.from_numpy(x[:, :4]), horizon=11)
    ours = runtime.rollout(runtime.load(tmp_path / "rnn"), x[:, :4], horizon=11)
    assert (ours.updates == eager.updates.numpy()).all() and relative(ours.x, eager.x.numpy()) < REL


def test_stream_replays_a_file_and_writes_each_readings_decision(runs, tmp_path, capsys):
    root, folders = runs
    assert main(["--threads", "1", "stream", str(folders["pcode"]), "--data", str(root / "data.npz"),
                 "--out", str(tmp_path / "s")]) == 0
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "series,time,updated,x0,x1,x0 (predicted),x1 (predicted),error" and len(rows) == 1 + 20 * 12
    summary = json.loads((tmp_path / "s.json").read_text())
    x = torch.from_numpy(np.load(root / "data.npz")["x"])
    stream = Stream(load_run(folders["pcode"])[0], 20)
    decided = torch.stack([stream.observe(i, x[:, i]) for i in range(12)], 1)
    assert summary["readings"] == 240 and summary["updates"] == int(decided.sum())
    assert [int(r.split(",")[2]) for r in rows[1:13]] == decided[0].int().tolist()
    assert (tmp_path / "s.png").stat().st_size > 0


def test_stream_reads_a_series_in_its_units_and_writes_them_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = np.arange(60) * 10.0 + 1000
    (tmp_path / "r.csv").write_text("t,level\n" + "".join(f"{a:g},{50 + 5 * np.sin(a / 60):.6f}\n" for a in t))
    assert main(["--threads", "1", "train", "--data", "r.csv", "--time-column", "t", "--steps", "2",
                 "--batch-size", "4", "--hidden", "16", "--latent", "16", "--eval-size", "2", "--out", "run"]) == 0
    assert main(["--threads", "1", "stream", "run", "--data", "r.csv", "--out", "s"]) == 0
    rows = [r.split(",") for r in (tmp_path / "s.csv").read_text().splitlines()[1:]]
    assert [float(r[1]) for r in rows] == t.tolist()
    assert np.allclose([float(r[3]) for r in rows], 50 + 5 * np.sin(t / 60), atol=1e-5)
    predicted = np.array([float(r[4]) for r in rows[1:]])
    assert 40 < predicted.mean() < 60  # in the series' units, not standardised ones


@pytest.mark.parametrize("argv, fragment", [
    (["export", "RUN/odernn"], "does not export"),
    (["export", "RUN/pcode", "--batch", "1"], "at least 2"),
    (["stream", "RUN/pcode", "--data", "wide.npz"], "reads 2"),
    (["stream", "RUN/pcode", "--count", "0"], "--count must be at least 1"),
    (["stream", "RUN/pcode", "--data", "missing.npz"], "not found"),
])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(runs, tmp_path, monkeypatch, capsys, argv, fragment):
    root, _ = runs
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "wide.npz", x=np.zeros((2, 6, 3), np.float32))
    before = sorted(p for p in tmp_path.rglob("*"))
    argv = [a.replace("RUN", str(root)) for a in argv]
    assert main(["--threads", "1", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_an_example_batch_of_one_and_models_that_do_not_export_are_refused(runs, tmp_path):
    _, folders = runs
    with pytest.raises(ConfigError, match="does not export"):
        export(load_run(folders["odernn"])[0], tmp_path / "x")
    with pytest.raises(ConfigError, match="at least 2"):
        export(load_run(folders["pcode"])[0], tmp_path / "x", batch=1)
    assert not (tmp_path / "x").exists()
