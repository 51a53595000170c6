"""Reliability and security: nothing loaded runs code, training survives SIGKILL, rollouts stay bounded."""
import json
import math
import pathlib
import pickle
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pcnode import PCODE, ModelConfig, TrainConfig, build_model, fit, load_run, rollout
from pcnode import checkpoint as ckpt
from pcnode.cli import main
from pcnode.config import load_config
from pcnode.data import load_npz, save_npz
from pcnode.errors import CheckpointError, ConfigError, DataError
from pcnode.train import read_metrics

torch.set_num_threads(1)


class Payload:
    """Unpickling this creates the file `marker`: proof that a loader ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def malicious_pickle(marker) -> bytes:
    return pickle.dumps({"model": Payload(marker)})


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "PWNED"


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A small trained run whose data spec points at an .npz file, as `pcnode train --data` writes."""
    root = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    x = np.cumsum(np.random.default_rng(0).random((20, 10, 2), dtype=np.float32) * 0.1, axis=1)
    save_npz(root / "data.npz", x=x)
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16))
    data = torch.from_numpy(x)
    fit(model, data[:18], TrainConfig(steps=2, batch_size=4, eval_every=2, checkpoint_every=2, eval_size=2),
        test=data[18:], run_dir=root / "run", data={"file": str(root / "data.npz"), "test_fraction": 0.1})
    return root / "run"


def copy_run(src, dst):
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def test_the_planted_payload_really_runs_code_when_unpickled(tmp_path, marker):
    # Guards the tests below: if this failed, "no marker" would prove nothing.
    pickle.loads(malicious_pickle(marker))
    assert marker.exists()


# ---- nothing loaded may run code -------------------------------------------------------------------

PICKLED_CHECKPOINT_NAMES = ["checkpoint.pt", "checkpoint.pth", "checkpoint.ckpt", "model.pt", "model.bin"]


@pytest.mark.parametrize("name", PICKLED_CHECKPOINT_NAMES)
def test_checkpoint_loader_refuses_pickle_formats_by_extension(tmp_path, marker, name):
    path = tmp_path / name
    path.write_bytes(malicious_pickle(marker))
    with pytest.raises(CheckpointError, match="safetensors"):
        ckpt.load_tensors(path)
    assert not marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_disguised_as_safetensors_is_refused(tmp_path, marker, writer):
    path = tmp_path / "checkpoint.safetensors"
    if writer == "pickle":
        path.write_bytes(malicious_pickle(marker))
    else:
        torch.save({"model": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ckpt.load_tensors(path)
    assert not marker.exists()


def plant(run, marker, where):
    """Replace or add one file of a run folder with the malicious pickle."""
    payload = malicious_pickle(marker)
    if where == "checkpoint.safetensors":
        (run / ckpt.CHECKPOINT).write_bytes(payload)
    elif where == "config.json":
        (run / ckpt.CONFIG).write_bytes(payload)
    elif where == "torch.save checkpoint":
        torch.save({"model": Payload(marker)}, run / ckpt.CHECKPOINT)
    else:  # a pickled checkpoint beside (instead of) the safetensors one
        (run / ckpt.CHECKPOINT).unlink()
        (run / where).write_bytes(payload)


RUN_PLANTS = ["checkpoint.safetensors", "config.json", "torch.save checkpoint"] + PICKLED_CHECKPOINT_NAMES


@pytest.mark.parametrize("where", RUN_PLANTS)
def test_malicious_run_folder_is_refused_by_load_run(tmp_path, good_run, marker, where):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, where)
    with pytest.raises(CheckpointError):
        load_run(run)
    assert not marker.exists()


@pytest.mark.parametrize("where", RUN_PLANTS)
def test_malicious_run_folder_is_refused_by_pcnode_eval(tmp_path, good_run, marker, capsys, where):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, where)
    code, err = cli(capsys, "eval", run)
    assert code == 2 and err.startswith("pcnode: error:") and err.count("\n") == 1
    assert not marker.exists() and not (run / "eval.json").exists()


def test_malicious_checkpoint_is_refused_on_resume(tmp_path, good_run, marker):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, "checkpoint.safetensors")
    cfg = json.loads((run / "config.json").read_text())
    model = build_model(ModelConfig(**cfg["model"]))
    with pytest.raises(CheckpointError):
        fit(model, torch.rand(4, 10, 2), load_config(TrainConfig, cfg["train"], "training"), run_dir=run, resume=True,
            data=cfg["data"])
    assert not marker.exists()


def plant_data(path, marker, kind):
    if kind == "object array in npz":
        np.savez(path, x=np.array([Payload(marker)], dtype=object))
    elif kind == "object .npy":
        with open(path, "wb") as f:
            np.save(f, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    else:  # a bare pickle
        path.write_bytes(malicious_pickle(marker))


DATA_PLANTS = [("data.npz", "object array in npz"), ("data.npz", "bare pickle"), ("data.npz", "object .npy"),
               ("data.pt", "bare pickle"), ("data.pkl", "bare pickle"), ("data.npy", "object .npy")]


@pytest.mark.parametrize("name, kind", DATA_PLANTS)
def test_malicious_data_file_is_refused_by_load_npz(tmp_path, marker, name, kind):
    path = tmp_path / name
    plant_data(path, marker, kind)
    with pytest.raises(DataError):
        load_npz(path)
    assert not marker.exists()


@pytest.mark.parametrize("name, kind", DATA_PLANTS)
def test_malicious_data_file_is_refused_by_pcnode_train(tmp_path, marker, capsys, name, kind):
    path = tmp_path / name
    plant_data(path, marker, kind)
    code, err = cli(capsys, "train", "--data", path, "--steps", 2, "--out", tmp_path / "run")
    assert code == 2 and err.startswith("pcnode: error:") and err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_pcnode_eval_refuses_a_malicious_checkpoint_in_a_real_process(tmp_path, good_run, marker):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, "torch.save checkpoint")
    proc = subprocess.run([sys.executable, "-m", "pcnode", "eval", str(run)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("pcnode: error:") and proc.stderr.count("\n") == 1
    assert not marker.exists()


def test_pcnode_train_refuses_a_malicious_npz_in_a_real_process(tmp_path, marker):
    plant_data(tmp_path / "data.npz", marker, "object array in npz")
    proc = subprocess.run([sys.executable, "-m", "pcnode", "train", "--data", "data.npz", "--out", "run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pickled objects" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_the_package_never_calls_torch_load_or_unpickles():
    source = "\n".join(p.read_text() for p in pathlib.Path(ckpt.__file__).parent.glob("*.py"))
    assert "torch.load" not in source and "pickle.load" not in source
    assert "allow_pickle=True" not in source


# ---- atomic writes -------------------------------------------------------------------------------


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old")

    def crash(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        ckpt.atomic_write(target, crash)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_stale_temp_files_of_a_killed_write_are_removed_on_resume(tmp_path, good_run):
    run = copy_run(good_run, tmp_path / "run")
    (run / ".checkpoint.safetensors.abc123.tmp").write_bytes(b"half a checkpoint")
    cfg = json.loads((run / "config.json").read_text())
    model = build_model(ModelConfig(**cfg["model"]))
    x = torch.from_numpy(load_npz(cfg["data"]["file"])["x"])
    fit(model, x[:18], load_config(TrainConfig, {**cfg["train"], "steps": 3}, "training"), test=x[18:], run_dir=run,
        resume=True, data=cfg["data"])
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_a_run_that_failed_before_its_first_checkpoint_can_start_again(tmp_path):
    data = torch.cumsum(torch.rand(10, 8, 2) * 0.1, 1)
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16))
    cfg = TrainConfig(steps=2, batch_size=4, checkpoint_every=2, eval_every=2)
    with torch.no_grad():
        model.decoder.out.weight.fill_(1e20)  # the first step diverges
    with pytest.raises(Exception, match="diverged"):
        fit(model, data, cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / ckpt.CHECKPOINT).exists()
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16))
    fit(model, data, cfg, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / ckpt.CHECKPOINT).exists()


# ---- training survives SIGKILL -----------------------------------------------------------------------

TRAIN = ["train", "--task", "lines", "--n", "40", "--batch-size", "8", "--hidden", "16", "--latent", "16",
         "--steps", "150", "--checkpoint-every", "5", "--eval-every", "5", "--eval-size", "4", "--out", "run"]


def test_training_killed_at_a_random_moment_resumes_from_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "pcnode", *TRAIN], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / ckpt.CHECKPOINT).exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(random.uniform(0.0, 1.0))
        assert proc.poll() is None, "training finished before it could be killed; raise --steps"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    # Whatever moment the kill hit, the files on disk are whole.
    _, meta = ckpt.load_tensors(run / ckpt.CHECKPOINT)
    saved = int(meta["step"])
    assert 5 <= saved < 150 and saved % 5 == 0
    before = {r["step"]: r for r in read_metrics(run / ckpt.METRICS)}

    done = subprocess.run([sys.executable, "-m", "pcnode", *TRAIN, "--resume"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_metrics(run / ckpt.METRICS)
    assert [r["step"] for r in rows] == list(range(5, 151, 5))
    # Rows up to the checkpoint were kept, not recomputed: training went on from `saved`, not 0.
    for r in rows:
        if r["step"] <= saved:
            assert r == before[r["step"]]
    assert all(b["train_s"] < a["train_s"] for b, a in zip(rows, rows[1:]))
    model, cfg = load_run(run)
    assert cfg["train"]["steps"] == 150
    _, meta = ckpt.load_tensors(run / ckpt.CHECKPOINT)
    assert int(meta["step"]) == 150
    assert not list(run.glob(".*.tmp"))


# ---- numerical safety ------------------------------------------------------------------------------


def pcode(**kw):
    torch.manual_seed(0)
    return PCODE(ModelConfig(state_dim=2, hidden=16, latent=16, **kw)).eval()


@pytest.mark.parametrize("bias, dt", [(1e30, "max"), (-1e30, "min")])
def test_extreme_dt_head_stays_within_its_bounds(bias, dt):
    model = pcode(min_dt=0.5, max_dt=7.0)
    with torch.no_grad():
        model.dt_head.bias.fill_(bias)
    ro = rollout(model, torch.rand(3, 4, 2), horizon=30)
    chosen = ro.dt[:, 3:][torch.isfinite(ro.t[:, 3:])]
    assert torch.all(chosen == (7.0 if dt == "max" else 0.5))
    assert ro.updates.tolist() == [math.ceil(27 / (7.0 if dt == "max" else 0.5))] * 3
    assert torch.isfinite(ro.frames()).all()


def test_huge_weights_everywhere_never_give_nan_times():
    model = pcode(max_dt=50.0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 1e6)
    ro = rollout(model, torch.rand(4, 4, 2), horizon=40)
    finite = torch.isfinite(ro.t)
    assert torch.isfinite(ro.dt[finite]).all()
    assert ((ro.dt[:, 3:][finite[:, 3:]] >= 1.0) & (ro.dt[:, 3:][finite[:, 3:]] <= 50.0)).all()


def test_a_rollout_that_would_run_too_long_stops_with_a_warning():
    model = pcode(min_dt=1e-6)
    with torch.no_grad():
        model.dt_head.bias.fill_(-1e30)  # every step as short as allowed
    with pytest.warns(RuntimeWarning, match="stopped after 20 updates"):
        ro = rollout(model, torch.rand(2, 4, 2), horizon=1e6, max_updates=20)
    assert ro.updates.tolist() == [20, 20]


def test_unbounded_dt_settings_are_refused():
    for bad in ({"max_dt": math.inf}, {"min_dt": 0.0}, {"min_dt": math.nan}, {"min_dt": 2.0, "max_dt": 1.0}):
        with pytest.raises(ConfigError):
            ModelConfig(state_dim=2, **bad).validate()
    with pytest.raises(ConfigError, match="max_updates"):
        rollout(pcode(), torch.rand(2, 4, 2), horizon=10, max_updates=0)


# ---- the same kinds of bad input through the Python API: specific exception types ---------------------

SEQ = torch.cumsum(torch.rand(6, 10, 2) * 0.1, 1)


def tiny():
    return build_model(ModelConfig(state_dim=2, hidden=16, latent=16))


API_CASES = [
    ("unknown-model", lambda: build_model(ModelConfig(kind="lstm")), ConfigError),
    ("unknown-setting", lambda: load_config(ModelConfig, {"depth": 3}, "model"), ConfigError),
    ("unknown-rule-setting", lambda: load_config(TrainConfig, {"rule": {"temperature": 1}}, "training"), ConfigError),
    ("non-integer-hidden", lambda: ModelConfig(hidden=16.5).validate(), ConfigError),
    ("nan-time-constant", lambda: ModelConfig(time_constant=math.nan).validate(), ConfigError),
    ("negative-lr", lambda: TrainConfig(lr=-1e-3).validate(), ConfigError),
    ("negative-batch-size", lambda: TrainConfig(batch_size=-8).validate(), ConfigError),
    ("nan-epsilon", lambda: TrainConfig(rule=__import__("pcnode").SkipRule(epsilon=math.nan)).validate(), ConfigError),
    ("unknown-device", lambda: TrainConfig(device="abacus").validate(), ConfigError),
    ("non-tensor-data", lambda: fit(tiny(), SEQ.numpy(), TrainConfig(steps=1)), DataError),
    ("integer-data", lambda: fit(tiny(), SEQ.long(), TrainConfig(steps=1)), DataError),
    ("wrong-state-dim", lambda: fit(tiny(), torch.rand(6, 10, 3), TrainConfig(steps=1)), DataError),
    ("inf-in-data", lambda: fit(tiny(), SEQ.index_fill(1, torch.tensor([2]), math.inf), TrainConfig(steps=1)),
     DataError),
    ("shorter-than-burn-in", lambda: fit(tiny(), SEQ[:, :4], TrainConfig(steps=1)), DataError),
    ("zero-horizon", lambda: rollout(tiny(), SEQ[:, :4], horizon=0), ConfigError),
    ("negative-horizon", lambda: rollout(tiny(), SEQ[:, :4], horizon=-5), ConfigError),
    ("horizon-inside-burn-in", lambda: rollout(tiny(), SEQ[:, :4], horizon=3), ConfigError),
    ("wrong-dtype-burn-in", lambda: rollout(tiny(), SEQ[:, :4].double(), horizon=9), DataError),
    ("nan-burn-in", lambda: rollout(tiny(), SEQ[:, :4] * math.nan, horizon=9), DataError),
    ("nan-query-time", lambda: rollout(tiny(), SEQ[:, :4], horizon=9).at(math.nan), DataError),
    ("query-of-wrong-shape", lambda: rollout(tiny(), SEQ[:, :4], horizon=9).at(torch.zeros(2, 2, 2)), DataError),
    ("zero-eval-batch", lambda: __import__("pcnode").evaluate(tiny(), SEQ, batch_size=0), ConfigError),
    ("eval-on-too-short", lambda: __import__("pcnode").evaluate(tiny(), SEQ[:, :4]), DataError),
]


@pytest.mark.parametrize("call, error", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_input_through_the_api_raises_a_specific_error(call, error):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error and str(info.value) and "\n" not in str(info.value)


def test_non_increasing_burn_in_times_are_refused():
    times = torch.tensor([[0.0, 1.0, 1.0, 2.0]] * 6)
    with pytest.raises(DataError, match="increasing"):
        rollout(tiny(), SEQ[:, :4], horizon=9, t_burn=times)
