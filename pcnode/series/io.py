"""Reading and writing series: CSV, NPZ, arrays and the Jena climate file, each into a `Series`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from torch import Tensor

from ..data import load_npz, save_npz
from ..errors import DataError


@dataclass
class Series:
    """Several time series of the same columns, each with its own length and times.

    t[i]: (T_i,) float64, strictly increasing, in your time units (dates: seconds since
    1970 UTC). x[i]: (T_i, D) float64. The last `input_dims` of the D columns are known
    inputs (covariates, actions): read by the model, never predicted or scored. Before
    them come the state columns, of which the last `aux_dims` are auxiliary, the form of
    runs written before inputs existed (see `pcnode.model`).

    scheduled[i]: known inputs given for times after series i's last reading, whose
    state is not yet known (a forecast reads them; training never does): (times (S_i,),
    inputs (S_i, input_dims)). Empty when no series has any.
    """

    t: list[np.ndarray]
    x: list[np.ndarray]
    columns: list[str]
    ids: list[str]
    aux_dims: int = 0
    dates: bool = False
    input_dims: int = 0
    scheduled: list[tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)

    @property
    def state_columns(self) -> list[str]:
        return self.columns[: len(self.columns) - self.input_dims]

    @property
    def input_columns(self) -> list[str]:
        return self.columns[len(self.columns) - self.input_dims :]

    def __len__(self) -> int:
        return len(self.x)

    def pick(self, idx: Sequence[int], parts: Sequence[slice] | None = None) -> Series:
        """The series at `idx`, each cut to `parts[k]` if given (a cut series keeps no scheduled inputs)."""
        scheduled = [self.scheduled[i] for i in idx] if self.scheduled and parts is None else []
        parts = parts or [slice(None)] * len(idx)
        return dataclasses.replace(
            self,
            t=[self.t[i][p] for i, p in zip(idx, parts)],
            x=[self.x[i][p] for i, p in zip(idx, parts)],
            ids=[self.ids[i] for i in idx],
            scheduled=scheduled,
        )

    def with_scheduled(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Series `i`'s times and readings followed by its scheduled inputs, whose state
        columns are NaN (not yet known): ((T_i + S_i,), (T_i + S_i, D))."""
        t, x = self.t[i], self.x[i]
        if not self.scheduled or not len(self.scheduled[i][0]):
            return t, x
        ts, us = self.scheduled[i]
        unknown = np.full((len(ts), x.shape[1] - self.input_dims), np.nan)
        return np.concatenate([t, ts]), np.concatenate([x, np.concatenate([unknown, us], 1)])


def check_series(t: np.ndarray, x: np.ndarray, columns: list[str], name: str, row: Callable[[int], str]) -> None:
    """Raise DataError naming the row and column of the first bad value in one series."""
    if len(t) < 2:
        raise DataError(
            f"series {name} has a single reading ({row(0)}); a series needs at least 2, "
            "drop it or give it more readings"
        )
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, c = bad[0]
        raise DataError(
            f"{row(r)}, column '{columns[c]}' of series {name} is {x[r, c]} (a gap); "
            "fill or drop the gaps before training"
        )
    if not np.isfinite(t).all():
        r = int(np.argwhere(~np.isfinite(t))[0, 0])
        raise DataError(f"{row(r)} of series {name} has no valid time; fill it in or drop the row")
    step = np.diff(t)
    if (step <= 0).any():
        r = int(np.argmax(step <= 0)) + 1
        what = "repeats" if step[r - 1] == 0 else "goes back from"
        raise DataError(
            f"{row(r)}: time {t[r]:g} of series {name} {what} the previous reading's ({t[r - 1]:g}); "
            "times must strictly increase within a series: sort the rows or drop duplicates"
        )


def from_arrays(
    x,
    t=None,
    columns: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    aux_dims: int = 0,
    inputs=None,
    input_columns: Sequence[str] | None = None,
) -> Series:
    """Series from arrays or tensors.

    Args:
        x: (S, T, D) or a list of (T_i, D), one per series: the state.
        t: None (readings at 0, 1, 2, ...), (T,) shared, (S, T), or a list of (T_i,).
        columns: D names (default x0, x1, ...); ids: S names (default 0, 1, ...).
        inputs: known inputs at the same readings, (S, T, U) or a list of (T_i, U);
            input_columns: their U names (default u0, u1, ...).
    """
    xs = [np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, dtype=np.float64) for v in x]
    if not xs or any(v.ndim != 2 for v in xs):
        raise DataError("x must have shape (series, frames, dims) or be a list of (frames, dims) arrays")
    U = 0
    if inputs is not None:
        us = [np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, dtype=np.float64) for v in inputs]
        if (
            len(us) != len(xs)
            or any(uv.ndim != 2 or len(uv) != len(xv) for uv, xv in zip(us, xs))
            or len({uv.shape[1] for uv in us}) != 1
        ):
            raise DataError(
                "inputs must give the same number of inputs at every reading of every series: shape "
                "(series, frames, inputs) or a list of (frames, inputs) arrays like x"
            )
        U = us[0].shape[1]
        input_columns = list(input_columns) if input_columns is not None else [f"u{k}" for k in range(U)]
        if len(input_columns) != U:
            raise DataError(f"got {len(input_columns)} input column names for {U} inputs")
        columns = (list(columns) if columns is not None else [f"x{d}" for d in range(xs[0].shape[1])]) + input_columns
        xs = [np.concatenate([xv, uv], 1) for xv, uv in zip(xs, us)]
    D = xs[0].shape[1]
    if any(v.shape[1] != D for v in xs):
        raise DataError("every series must have the same number of columns")
    if t is None:
        ts = [np.arange(len(v), dtype=np.float64) for v in xs]
    elif isinstance(t, (list, tuple)):
        ts = [np.asarray(v, dtype=np.float64) for v in t]
    else:
        t = np.asarray(t.detach().cpu() if isinstance(t, Tensor) else t, dtype=np.float64)
        ts = [t] * len(xs) if t.ndim == 1 else list(t)
    if len(ts) != len(xs) or any(tv.shape != (len(xv),) for tv, xv in zip(ts, xs)):
        raise DataError("t must give one time per frame: shape (frames,), (series, frames) or a list of (frames,)")
    columns = list(columns) if columns is not None else [f"x{d}" for d in range(D)]
    ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(xs))]
    if len(columns) != D or len(ids) != len(xs):
        raise DataError(f"got {len(columns)} column names for {D} columns and {len(ids)} ids for {len(xs)} series")
    for tv, xv, name in zip(ts, xs, ids):
        check_series(tv, xv, columns, f"'{name}'", lambda r: f"frame {r}")
    return Series(ts, xs, columns, ids, aux_dims, input_dims=U)


def from_npz(path: str | Path) -> Series:
    """Series from an .npz with `x` (series, frames, dims) and optionally `t` ((frames,) or
    (series, frames)), `columns` (dims,) and `ids` (series,) as string arrays, and known
    inputs `inputs` (series, frames, inputs) with their names `input_columns`."""
    a = load_npz(path)
    cols = [str(c) for c in a["columns"]] if "columns" in a else None
    ids = [str(i) for i in a["ids"]] if "ids" in a else None
    input_cols = [str(c) for c in a["input_columns"]] if "input_columns" in a else None
    return from_arrays(a["x"], a.get("t"), cols, ids, inputs=a.get("inputs"), input_columns=input_cols)


def to_npz(series: Series, path: str | Path) -> None:
    """Write equal-length series as an .npz that `from_npz` reads back (known inputs as `inputs`)."""
    if len({len(v) for v in series.x}) != 1:
        raise DataError("series of different lengths cannot share one x array; write them with to_csv")
    x, D = np.stack(series.x), len(series.columns) - series.input_dims
    inputs = {"inputs": x[..., D:], "input_columns": np.array(series.input_columns)} if series.input_dims else {}
    save_npz(
        path,
        x=x[..., :D],
        t=np.stack(series.t),
        columns=np.array(series.state_columns),
        ids=np.array(series.ids),
        **inputs,
    )


def parse_time(text: str, time_format: str | None) -> tuple[float, bool]:
    """(time, is_date): a plain number, or a date (strptime `time_format`, else ISO 8601) as UTC seconds."""
    if time_format is None:
        try:
            return float(text), False
        except ValueError:
            pass
    try:
        d = datetime.strptime(text, time_format) if time_format else datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a number"
            + (f" or a date in the format '{time_format}'" if time_format else " or an ISO date; give `time_format`")
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp(), True


def format_time(t: float, dates: bool, time_format: str | None) -> str:
    """Inverse of `parse_time` for output files."""
    if not dates:
        return f"{t:.10g}"
    d = datetime.fromtimestamp(t, tz=timezone.utc)
    return d.strftime(time_format) if time_format else d.replace(tzinfo=None).isoformat()
