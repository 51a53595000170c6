"""A crash loses nothing: atomic writes, stale temporary files, and training killed at any moment resumes."""
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from pcnode import ModelConfig, TrainConfig, build_model, fit, load_run
from pcnode import checkpoint as ckpt
from pcnode.checkpoint import read_metrics
from pcnode.config import load_config
from pcnode.data import load_npz

torch.set_num_threads(1)


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


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
         "--checkpoint-every", "5", "--eval-every", "5", "--eval-size", "4", "--out", "run"]


def saved_step(run):
    """The step of `run`'s checkpoint on disk, or 0 while there is none (or it is being replaced)."""
    try:
        return int(ckpt.load_tensors(run / ckpt.CHECKPOINT)[1]["step"])
    except Exception:
        return 0


def test_training_killed_mid_run_resumes_from_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    # Far more steps than the test waits for, so the kill always lands mid-training.
    proc = subprocess.Popen([sys.executable, "-m", "pcnode", *TRAIN, "--steps", "100000"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while saved_step(run) < 10:  # a known point: the second checkpoint is on disk
            assert proc.poll() is None, "training ended before its second checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    # The files on disk are whole, whatever the training was writing when it was killed.
    _, meta = ckpt.load_tensors(run / ckpt.CHECKPOINT)
    saved = int(meta["step"])
    assert 10 <= saved < 30 and saved % 5 == 0
    before = {r["step"]: r for r in read_metrics(run / ckpt.METRICS)}

    done = subprocess.run([sys.executable, "-m", "pcnode", *TRAIN, "--steps", "30", "--resume"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_metrics(run / ckpt.METRICS)
    assert [r["step"] for r in rows] == list(range(5, 31, 5))
    # Rows up to the checkpoint were kept, not recomputed: training went on from `saved`, not 0.
    for r in rows:
        if r["step"] <= saved:
            assert r == before[r["step"]]
    assert all(b["train_s"] < a["train_s"] for b, a in zip(rows, rows[1:]))
    model, cfg = load_run(run)
    assert cfg["train"]["steps"] == 30
    _, meta = ckpt.load_tensors(run / ckpt.CHECKPOINT)
    assert int(meta["step"]) == 30
    assert not list(run.glob(".*.tmp"))


def test_every_file_of_a_run_reads_like_any_other_file(tmp_path):
    data = torch.cumsum(torch.rand(10, 8, 2) * 0.1, 1)
    model = build_model(ModelConfig(kind="rnn", state_dim=2, hidden=8, latent=8))
    fit(model, data, TrainConfig(steps=2, batch_size=4, checkpoint_every=2, eval_every=2, val_fraction=0.2),
        test=data[:2], run_dir=tmp_path / "run", progress=False)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["best.safetensors", "checkpoint.safetensors", "config.json", "metrics.csv"]
    for name in files:  # the umask's mode, as for any file this process makes (safetensors writes its own)
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == ckpt.FILE_MODE, name
