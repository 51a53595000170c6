"""One training writes to a run folder at a time.

`lock_run` holds an advisory lock (`flock`) on the folder's `pcnode.lock`, which names
its holder's process id and host; the operating system drops it when the process ends
however it ends, so a lock file left behind by a killed process is stale and the next
training takes it over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from .checkpoint import FILE_MODE
from .errors import CheckpointError

LOCK = "pcnode.lock"


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
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as e:
            raise CheckpointError(f"cannot write to {run_dir} ({e.strerror}); choose a writable `run_dir`") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointError(
                f"run folder {run_dir} is in use by {holder} (lock file {path}); wait for it to "
                "end, stop it, or choose another `run_dir`"
            ) from None
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
