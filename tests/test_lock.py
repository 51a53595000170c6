"""A run folder in use by a training is locked; the lock of a process that died is taken over."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pcnode import checkpoint as ckpt
from pcnode.cli import main
from pcnode.errors import CheckpointError
from pcnode.lock import LOCK, lock_run

ROOT = Path(__file__).resolve().parents[1]


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process that takes `run_dir`'s lock and keeps it until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from pcnode.lock import lock_run
        with lock_run({str(run_dir)!r}):
            print("locked", flush=True)
            time.sleep(120)
    """)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "locked"
    return p


def train_args(tmp_path: Path, out: Path, *more: str) -> list[str]:
    data = tmp_path / "s.csv"
    data.write_text("v\n" + "".join(f"{0.1 * i}\n" for i in range(60)))
    return ["--threads", "1", "train", "--data", str(data), "--out", str(out), "--steps", "1", "--batch-size", "1",
            "--hidden", "16", "--latent", "16", *more]


@pytest.fixture
def holder(tmp_path):
    p = hold_lock(tmp_path / "run")
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()


def test_a_second_training_on_a_locked_run_folder_exits_2_naming_the_holder(tmp_path, holder, capsys):
    for more in ((), ("--resume",)):
        assert main(train_args(tmp_path, tmp_path / "run", *more)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"run folder {tmp_path / 'run'} is in use by process {holder.pid}" in err
    assert os.listdir(tmp_path / "run") == [LOCK]  # the refused training wrote nothing


def test_the_lock_refuses_a_second_writer_in_the_same_process(tmp_path):
    with lock_run(tmp_path / "run"):
        with pytest.raises(CheckpointError, match=f"in use by process {os.getpid()}"):
            with lock_run(tmp_path / "run"):
                pass
    assert not (tmp_path / "run" / LOCK).exists()  # released and removed at the end


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = tmp_path / "run" / LOCK
    assert json.loads(lock.read_text())["pid"] == holder.pid  # the stale lock file is still there
    assert main(train_args(tmp_path, tmp_path / "run")) == 0
    assert (tmp_path / "run" / ckpt.CHECKPOINT).exists() and not lock.exists()
