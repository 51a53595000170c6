"""Run folders: safe, atomic reading and writing of checkpoints, configs and metrics.

Nothing loaded here can run code: tensors live in safetensors files, settings in
JSON. Every write goes to a temporary file in the same folder, is flushed and
fsynced, then renamed over the target, so a crash never leaves a half-written file.

A run folder holds:
    config.json               the full config the run was started with
    checkpoint.safetensors    model (`model.*`), optimiser (`optim.*`) and RNG tensors;
                              its metadata holds the step and the same config
    metrics.csv               one row per evaluation
    best.safetensors          with a validation split: the weights that scored best on it
    pcnode.lock               while a training writes there: the process that holds it

One training writes to a run folder at a time (`lock_run`). The lock is an advisory
lock (`flock`) on `pcnode.lock`, which names its holder's process id and host; the
operating system drops it when the process ends however it ends, so a lock file left
behind by a killed process is stale and the next training takes it over.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

_UMASK = os.umask(0)
os.umask(_UMASK)

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
CONFIG = "config.json"
METRICS = "metrics.csv"
LOCK = "pcnode.lock"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; results should read like any other file
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temps(folder: Path) -> None:
    """Delete the temporary files `atomic_write` leaves when its process is killed mid-write."""
    for name in (CHECKPOINT, BEST, CONFIG, METRICS):
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    """Read a JSON object, raising CheckpointError with the file name on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found; point at a run folder written by `pcnode train`")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); restore it or start a new run") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} must hold a JSON object; restore it or start a new run")
    return obj


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file and its metadata; refuse anything else clearly."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: checkpoints are .safetensors files; pickled formats (.pt, .pth, .ckpt) "
                              "are refused because loading them can run code")
    if not path.is_file():
        raise CheckpointError(f"{path} not found; train a model first or check the run folder")
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt or truncated ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                              "delete it and retrain, or resume from a good copy") from None
    return tensors, header.get("__metadata__") or {}


@contextlib.contextmanager
def lock_run(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir`'s lock while the block runs; refuse if another live process holds it.

    Creates `run_dir` if needed (and removes it again if the block fails and leaves it
    empty). A lock file whose holder is gone, killed or crashed, is taken over. Raises
    CheckpointError naming the folder and the holder's process id.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot write to {run_dir} ({e.strerror}); choose a writable `run_dir`") from None
    path = run_dir / LOCK
    fd = None
    try:
        fd = _take_lock(path, run_dir)
        yield
    finally:
        if fd is not None:
            path.unlink(missing_ok=True)  # before the lock goes, so no one takes over a file about to vanish
            os.close(fd)
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run refused before it wrote anything leaves nothing behind


def _take_lock(path: Path, run_dir: Path) -> int:
    """Open and flock `path`, write this process's id into it, and return its descriptor."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as e:
            raise CheckpointError(f"cannot write to {run_dir} ({e.strerror}); choose a writable `run_dir`") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointError(f"run folder {run_dir} is in use by {holder} (lock file {path}); wait for it to "
                                  "end, stop it, or choose another `run_dir`") from None
        # The file may have been removed (its holder finished) between our open and our lock:
        # then we hold a lock on a file no one else will see, so try again on the new one.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode() + b"\n")
    os.fsync(fd)
    return fd


def _read_holder(fd: int) -> str:
    """'process PID on host HOST' from a lock file's contents, or words that say it is unknown."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
        pid, host = int(info["pid"]), str(info.get("host", "?"))
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not written its id yet)"
    return f"process {pid}" + ("" if host == socket.gethostname() else f" on host {host}")
