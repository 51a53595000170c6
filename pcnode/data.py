"""Trajectories in memory (`Trajectories`, what every later stage takes) and on disk.

A dataset file is an `.npz` holding `x`, float (sequences, frames, dims), optionally
`inputs`, float (sequences, frames, inputs): known inputs at the same frames, read by
the model and never predicted, and for pixel tasks `coords`, the ball positions behind
each frame. It is always read with `allow_pickle=False`, so a file cannot run code when
loaded.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import checkpoint as ckpt
from .errors import ConfigError, DataError, did_you_mean
from .tasks import TASKS, simulate

# Where the command line and the experiments cache generated task data.
DATA_DIR = Path("data")


@dataclass
class Trajectories:
    """A batch of trajectories, as teacher forcing, `fit` and `evaluate` take them.

    x: (N, T, D) the states, a row of T frames per trajectory.
    t: (N, T) the frames' times, in frames, increasing along each row; None: 0, 1, 2, ...
    mask: (N, T-1) bool, False where the transition `x[:, i] -> x[:, i+1]` is padding
        (a shorter series padded to the batch's length); None: every transition is real.
    u: (N, T, U) known inputs in force at the frames' times (covariates, actions), for a
        model with `input_dim = U`: read with every frame, never predicted or scored.
        None: the model reads no inputs.

    A plain (N, T, D) tensor stands for `Trajectories(x)` wherever one is taken.
    """

    x: Tensor
    t: Tensor | None = None
    mask: Tensor | None = None
    u: Tensor | None = None

    @classmethod
    def of(cls, data: Tensor | Trajectories) -> Trajectories:
        return data if isinstance(data, Trajectories) else cls(data)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows) -> Trajectories:
        """The trajectories `rows` (a slice, indices or a bool mask over N)."""
        return self._each(lambda a: a[rows])

    def to(self, device) -> Trajectories:
        return self._each(lambda a: a.to(device))

    def _each(self, fn) -> Trajectories:
        """`fn` applied to every tensor held (x, and t, mask and u where given)."""
        return Trajectories(fn(self.x), *(None if a is None else fn(a) for a in (self.t, self.mask, self.u)))

    def check_inputs(self, input_dim: int, what: str = "data") -> None:
        """Raise DataError unless `u` is what a model with `input_dim` known inputs reads:
        None for 0, else finite floats shaped (N, T, input_dim) like `x`."""
        N, T = self.x.shape[:2]
        if self.u is None:
            if input_dim:
                raise DataError(
                    f"the model reads {input_dim} known input(s) with every frame but the {what} "
                    "gives none; pass them as Trajectories(x, u=...)"
                )
            return
        if not input_dim:
            raise DataError(
                f"the {what} gives known inputs but the model reads none; build it with "
                f"input_dim={self.u.shape[-1]}, or leave the inputs out"
            )
        if not isinstance(self.u, Tensor) or self.u.ndim != 3 or self.u.shape != (N, T, input_dim):
            raise DataError(
                f"the {what}'s inputs must have shape ({N}, {T}, {input_dim}) (sequences, frames, "
                f"inputs); got {tuple(getattr(self.u, 'shape', ()))}"
            )
        if not self.u.is_floating_point() or not torch.isfinite(self.u).all():
            raise DataError(f"the {what}'s inputs must be finite floating-point numbers; fill or drop the gaps")

    @property
    def times(self) -> Tensor:
        """(N, T) the frames' times, 0, 1, 2, ... where `t` is None."""
        if self.t is not None:
            return self.t.to(self.x.dtype)
        N, T = self.x.shape[:2]
        return torch.arange(T, dtype=self.x.dtype, device=self.x.device).expand(N, T)

    @property
    def real(self) -> Tensor:
        """(N, T-1) bool, True for real transitions."""
        if self.mask is not None:
            return self.mask.bool()
        N, T = self.x.shape[:2]
        return torch.ones(N, T - 1, dtype=torch.bool, device=self.x.device)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays to `path` atomically (no partial file on failure)."""
    path = Path(path)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            # Numeric arrays only (`load_npz` refuses pickles); numpy < 2.1 takes no `allow_pickle` here,
            # and type checkers read the arrays as that argument.
            np.savez(f, **arrays)  # pyright: ignore[reportArgumentType]

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write(path, write)
    except OSError as e:
        raise ConfigError(f"cannot write {path} ({e.strerror or e}); choose a writable output path") from None


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a dataset file; `x` must be a finite float array (sequences, frames, dims).

    Raises DataError naming the file and the problem for anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found; create it with `pcnode data TASK` or check the path")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path} is a single .npy array, not an .npz archive; save it with numpy.savez(path, x=array)"
            )
        with loaded as f:
            arrays = {k: f[k] for k in f.files}
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError(
                f"{path} holds pickled objects, which are refused because loading them can "
                "run code; save plain numeric arrays instead"
            ) from None
        raise DataError(f"{path} is not a readable .npz file ({e}); regenerate it") from None
    # A damaged archive fails deep inside zipfile/zlib: bad CRCs, unknown compression or
    # zip versions (NotImplementedError), encryption flags (RuntimeError), bad deflate streams.
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, zlib.error, NotImplementedError, RuntimeError) as e:
        raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}); regenerate it") from None
    if "x" not in arrays:
        raise DataError(f"{path} has no array named 'x'; save trajectories as x with shape (sequences, frames, dims)")
    x = arrays["x"]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(
            f"{path}: x must be a real array of shape (sequences, frames, dims); "
            f"got dtype {x.dtype} and shape {x.shape}"
        )
    if not np.isfinite(x).all():
        s, f, d = np.argwhere(~np.isfinite(x))[0]
        raise DataError(
            f"{path}: x[{s}, {f}, {d}] (sequence {s}, frame {f}, dim {d}) is {x[s, f, d]}; fill or drop the gaps first"
        )
    with np.errstate(over="ignore"):
        arrays["x"] = x.astype(np.float32)
    if not np.isfinite(arrays["x"]).all():
        raise DataError(f"{path}: x holds values beyond float32's range (about 3.4e38); rescale the data first")
    if "inputs" in arrays:
        u = arrays["inputs"]
        if (
            u.ndim != 3
            or u.shape[:2] != x.shape[:2]
            or not np.issubdtype(u.dtype, np.number)
            or np.issubdtype(u.dtype, np.complexfloating)
        ):
            raise DataError(
                f"{path}: inputs must be a real array of shape (sequences, frames, inputs) with x's "
                f"sequences and frames {x.shape[:2]}; got dtype {u.dtype} and shape {u.shape}"
            )
        with np.errstate(over="ignore"):
            arrays["inputs"] = u.astype(np.float32)
        if not np.isfinite(arrays["inputs"]).all():
            s, f, d = np.argwhere(~np.isfinite(arrays["inputs"]))[0]
            raise DataError(
                f"{path}: inputs[{s}, {f}, {d}] (sequence {s}, frame {f}, input {d}) is "
                f"{u[s, f, d]}; give every input at every frame"
            )
    return arrays


def task_data(task: str, n: int, seed: int, cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Trajectories of a built-in task, generated once and cached as `cache_dir/TASK-nN-seedS.npz`."""
    if task not in TASKS:
        raise ConfigError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}{did_you_mean(task, TASKS)}")
    if n < 2:
        raise ConfigError(f"need at least 2 trajectories (one to train, one to test), got {n}")
    path = None if cache_dir is None else Path(cache_dir) / f"{task}-n{n}-seed{seed}.npz"
    if path is not None and path.exists():
        return load_npz(path)
    x, coords = simulate(task, n, seed)
    arrays = {"x": x} if coords is None else {"x": x, "coords": coords}
    if path is not None:
        save_npz(path, **arrays)
    return arrays


def split(x: np.ndarray, test_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (1 - test_fraction) of the sequences to train on, the rest to test on, as tensors.

    (Known inputs (N, T, U) split alike with the same `test_fraction`.)"""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = max(1, int(round(len(x) * test_fraction)))
    if n_test >= len(x):
        raise DataError(f"{len(x)} sequences are too few to split into train and test")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t[:-n_test], t[-n_test:]


@dataclass(frozen=True)
class TaskData:
    """A run's data, a built-in task: `n` trajectories generated from `seed`, the last
    `test_fraction` held out. Saved in a run's config as {"task", "n", "seed", "test_fraction"}."""

    task: str
    n: int
    seed: int
    test_fraction: float = 0.1

    def split(self) -> tuple[Trajectories, Trajectories]:
        """(training, test) trajectories, the data cached under `DATA_DIR`."""
        train, test = split(task_data(self.task, self.n, self.seed, cache_dir=DATA_DIR)["x"], self.test_fraction)
        return Trajectories(train), Trajectories(test)


@dataclass(frozen=True)
class FileData:
    """A run's data, an .npz of trajectories (`x`, and known `inputs` if it has them), the
    last `test_fraction` held out. Saved in a run's config as {"file", "test_fraction"}."""

    file: str
    test_fraction: float = 0.1

    def split(self) -> tuple[Trajectories, Trajectories]:
        arrays = load_npz(self.file)
        train, test = split(arrays["x"], self.test_fraction)
        if "inputs" not in arrays:
            return Trajectories(train), Trajectories(test)
        u_train, u_test = split(arrays["inputs"], self.test_fraction)
        return Trajectories(train, u=u_train), Trajectories(test, u=u_test)
