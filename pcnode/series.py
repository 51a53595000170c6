"""Your own time series: read them, put them on the model's clock and scale, cut them into windows.

Main entry points: `from_csv`, `from_npz`, `from_arrays` and `jena_climate` read a
`Series`; `prepare` turns a `SeriesSpec` (what a run's config stores as its data)
into training and test `Windows` and the `Scaling` that undoes everything on output.

Time. The model's clock runs in frames. For your series one frame is the median
sampling interval of the training data (`Scaling.time_scale`, in your time units;
dates count in seconds), so evenly sampled data lands on 0, 1, 2, ... and unevenly
sampled data keeps its real gaps: a reading 2.5 intervals after the previous one is
2.5 frames later, and the training rule measures segments and spans in those units.
Each window's clock starts at 0 at its first reading.

Values. Each column is standardised with the mean and standard deviation of the
training split; the numbers are stored in the run's config and undone on output, so
rollouts, queries and errors come back in your units.

Choosing the skip threshold. The skip rule compares the squared error of a stretched
segment, averaged over columns, with `SkipRule.epsilon`, on standardised data: epsilon
is a fraction of each column's variance. The default 3e-3 lets the PC-ODE skip while
it stays within about sqrt(3e-3) = 5.5% of a standard deviation. Noise counts as
error, so a noisy series needs epsilon above the noise's share of the variance or
every reading looks like an event: with noise of standard deviation s in a column of
standard deviation sigma, start near epsilon = 2 (s / sigma)^2 and raise it while the
mean dt grows and the rollout error does not.

Lengths. A long series is cut into windows of `window` readings every `stride`
readings (the last window is aligned to the end, so no reading is lost). Shorter
series are padded to the batch's length and masked: padded transitions carry no
weight in the loss and are never scored.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .data import Trajectories, load_npz, save_npz
from .errors import ConfigError, DataError, check_fields

JENA_TIME = "Date Time"
JENA_FORMAT = "%d.%m.%Y %H:%M:%S"


@dataclass
class Series:
    """Several time series of the same columns, each with its own length and times.

    t[i]: (T_i,) float64, strictly increasing, in your time units (dates: seconds since
    1970 UTC). x[i]: (T_i, D) float64. The last `aux_dims` of the D columns are
    auxiliary: read by the model, left out of its losses and errors.
    """

    t: list[np.ndarray]
    x: list[np.ndarray]
    columns: list[str]
    ids: list[str]
    aux_dims: int = 0
    dates: bool = False

    def __len__(self) -> int:
        return len(self.x)

    def pick(self, idx: Sequence[int], parts: Sequence[slice] | None = None) -> "Series":
        """The series at `idx`, each cut to `parts[k]` if given."""
        parts = parts or [slice(None)] * len(idx)
        return dataclasses.replace(self, t=[self.t[i][p] for i, p in zip(idx, parts)],
                                   x=[self.x[i][p] for i, p in zip(idx, parts)], ids=[self.ids[i] for i in idx])


def _check(t: np.ndarray, x: np.ndarray, columns: list[str], name: str, row: Callable[[int], str]) -> None:
    """Raise DataError naming the row and column of the first bad value in one series."""
    if len(t) < 2:
        raise DataError(f"series {name} has a single reading ({row(0)}); a series needs at least 2, "
                        "drop it or give it more readings")
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{row(r)}, column '{columns[c]}' of series {name} is {x[r, c]} (a gap); "
                        "fill or drop the gaps before training")
    if not np.isfinite(t).all():
        r = int(np.argwhere(~np.isfinite(t))[0, 0])
        raise DataError(f"{row(r)} of series {name} has no valid time; fill it in or drop the row")
    step = np.diff(t)
    if (step <= 0).any():
        r = int(np.argmax(step <= 0)) + 1
        what = "repeats" if step[r - 1] == 0 else "goes back from"
        raise DataError(f"{row(r)}: time {t[r]:g} of series {name} {what} the previous reading's ({t[r - 1]:g}); "
                        "times must strictly increase within a series: sort the rows or drop duplicates")


def from_arrays(x, t=None, columns: Sequence[str] | None = None, ids: Sequence[str] | None = None,
                aux_dims: int = 0) -> Series:
    """Series from arrays or tensors.

    Args:
        x: (S, T, D) or a list of (T_i, D), one per series.
        t: None (readings at 0, 1, 2, ...), (T,) shared, (S, T), or a list of (T_i,).
        columns: D names (default x0, x1, ...); ids: S names (default 0, 1, ...).
    """
    xs = [np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, dtype=np.float64) for v in x]
    if not xs or any(v.ndim != 2 for v in xs):
        raise DataError("x must have shape (series, frames, dims) or be a list of (frames, dims) arrays")
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
        _check(tv, xv, columns, f"'{name}'", lambda r: f"frame {r}")
    return Series(ts, xs, columns, ids, aux_dims)


def from_npz(path: str | Path) -> Series:
    """Series from an .npz with `x` (series, frames, dims) and optionally `t` ((frames,) or
    (series, frames)), `columns` (dims,) and `ids` (series,) as string arrays."""
    a = load_npz(path)
    cols = [str(c) for c in a["columns"]] if "columns" in a else None
    ids = [str(i) for i in a["ids"]] if "ids" in a else None
    return from_arrays(a["x"], a.get("t"), cols, ids)


def to_npz(series: Series, path: str | Path) -> None:
    """Write equal-length series as an .npz that `from_npz` reads back."""
    if len({len(v) for v in series.x}) != 1:
        raise DataError("series of different lengths cannot share one x array; write them with to_csv")
    save_npz(path, x=np.stack(series.x), t=np.stack(series.t), columns=np.array(series.columns),
             ids=np.array(series.ids))


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
        raise ValueError(f"'{text}' is not a number" + (f" or a date in the format '{time_format}'" if time_format
                                                         else " or an ISO date; pass --time-format")) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp(), True


def format_time(t: float, dates: bool, time_format: str | None) -> str:
    """Inverse of `parse_time` for output files."""
    if not dates:
        return f"{t:.10g}"
    d = datetime.fromtimestamp(t, tz=timezone.utc)
    return d.strftime(time_format) if time_format else d.replace(tzinfo=None).isoformat()


def from_csv(path: str | Path, time_column: str | None = None, id_column: str | None = None,
             columns: Sequence[str] | None = None, aux_columns: Sequence[str] = (),
             time_format: str | None = None, duplicates: str = "error") -> Series:
    """Series from a CSV with a header and one row per reading.

    Args:
        time_column: numbers or dates (see `parse_time`); None means rows are 0, 1, 2, ...
        id_column: rows with the same id form one series, in the order they first appear;
            None means the whole file is one series.
        columns: the state columns (default: every other column); aux_columns follow them.
        duplicates: "error", or "first" to keep the first of readings with equal times.

    Errors name the row as its line in the file (the header is line 1) and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found; check the path")
    if duplicates not in ("error", "first"):
        raise ConfigError(f"duplicates must be 'error' or 'first', got '{duplicates}'")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 CSV file; pass a CSV with a header row, "
                        "or an .npz holding an array x") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DataError(f"{path} is empty; it needs a header row naming the columns")
        special = [c for c in (time_column, id_column) if c is not None]
        aux = list(aux_columns)
        state = list(columns) if columns else [h for h in header if h not in special and h not in aux]
        wanted = special + state + aux
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(f"{path} has no column {', '.join(repr(c) for c in missing)}; "
                            f"its columns are: {', '.join(header)}")
        if not state:
            raise DataError(f"{path} has no value columns besides the time and id; name them with --columns")
        pos = [header.index(c) for c in state + aux]
        names = state + aux
        groups: dict[str, tuple[list, list, list]] = {}
        dates = False
        for line, row in enumerate(reader, start=2):
            if not row or all(not v.strip() for v in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{path} row {line} has {len(row)} fields, the header has {len(header)}")
            key = row[header.index(id_column)].strip() if id_column else ""
            ts, xs, lines = groups.setdefault(key, ([], [], []))
            if time_column is None:
                t = float(len(ts))
            else:
                text = row[header.index(time_column)].strip()
                try:
                    t, dates = parse_time(text, time_format)
                except ValueError as e:
                    raise DataError(f"{path} row {line}, column '{time_column}': {e}") from None
            values = []
            for c, p in zip(names, pos):
                text = row[p].strip()
                try:
                    values.append(float(text) if text else math.nan)
                except ValueError:
                    raise DataError(f"{path} row {line}, column '{c}': '{text}' is not a number; "
                                    "fix or drop that row") from None
            ts.append(t)
            xs.append(values)
            lines.append(line)
    if not groups:
        raise DataError(f"{path} has a header but no rows")
    series = Series([], [], names, [], aux_dims=len(aux), dates=dates)
    for key, (ts, xs, lines) in groups.items():
        t, x, lines = np.array(ts), np.array(xs, dtype=np.float64).reshape(len(ts), len(names)), np.array(lines)
        if duplicates == "first" and len(t) > 1:
            keep = np.concatenate([[True], np.diff(t) != 0])
            t, x, lines = t[keep], x[keep], lines[keep]
        name = f"'{key}'" if id_column else "(the whole file)"
        _check(t, x, names, name, lambda r, lines=lines: f"{path} row {lines[r]}")
        series.t.append(t)
        series.x.append(x)
        series.ids.append(key or "0")
    return series


def to_csv(series: Series, path: str | Path, time_column: str = "t", id_column: str = "series") -> None:
    """Write series as a CSV that `from_csv(path, time_column, id_column)` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([id_column, time_column, *series.columns])
        for key, t, x in zip(series.ids, series.t, series.x):
            for ti, xi in zip(t, x):
                w.writerow([key, repr(float(ti)), *(repr(float(v)) for v in xi)])


def jena_climate(path: str | Path, columns: Sequence[str] | None = None) -> Series:
    """The Jena climate record (Max Planck Institute for Biogeochemistry) from a CSV you have.

    The file has a "Date Time" column ("01.01.2009 00:10:00", every 10 minutes) and 14
    readings such as "p (mbar)" and "T (degC)"; `columns` picks some (default: all).
    Nothing is downloaded. Repeated timestamps, which the published file contains, keep
    their first reading. Times are in seconds, so one frame is 600 s. The published wind
    columns hold a few -9999 sentinel values; pick other columns or clean those first.
    """
    return from_csv(path, time_column=JENA_TIME, columns=columns, time_format=JENA_FORMAT, duplicates="first")


@dataclass
class Scaling:
    """Standardisation fitted on training data: model value = (value - mean) / std; model
    time = (time - the window's first time) / time_scale."""

    mean: list[float]
    std: list[float]
    time_scale: float

    @classmethod
    def fit(cls, series: Series, normalize: bool = True) -> "Scaling":
        x = np.concatenate(series.x)
        gaps = np.concatenate([np.diff(t) for t in series.t])
        D = x.shape[1]
        if not normalize:
            return cls([0.0] * D, [1.0] * D, float(np.median(gaps)))
        std = x.std(0)
        # A constant column would divide by zero; it carries no dynamics, so leave it unscaled.
        std = np.where(std > 0, std, 1.0)
        return cls(x.mean(0).tolist(), std.tolist(), float(np.median(gaps)))

    def values(self, x):
        """Your units -> model units, (..., D) numpy or torch."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def restore(self, x):
        """Model units -> your units, (..., D) numpy or torch."""
        mean, std = self._stats(x)
        return x * std + mean

    def _stats(self, x):
        if isinstance(x, Tensor):
            return (torch.tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.tensor(self.std, dtype=x.dtype, device=x.device))
        return np.asarray(self.mean), np.asarray(self.std)


@dataclass
class Windows(Trajectories):
    """Windows of series on the model's clock and scale, padded to one length and masked:
    `Trajectories` that remember where they came from.

    x: (N, L, D) standardised values; t: (N, L) frames since each window's first
    reading; mask: (N, L-1) True for real transitions; t0: (N,) your time of frame 0;
    ids: (N,) the series each came from. Padding repeats the last reading at the last
    time, so padded frames add no span and no change.
    """

    t0: np.ndarray | None = None
    ids: list[str] | None = None

    @property
    def lengths(self) -> Tensor:
        """(N,) real readings per window."""
        return self.mask.sum(1) + 1


def cut(series: Series, scaling: Scaling, window: int | None = None, stride: int | None = None) -> Windows:
    """Cut every series into windows of `window` readings every `stride` (default: `window`);
    None keeps each series whole."""
    if window is not None and window < 2:
        raise ConfigError(f"window must be at least 2 readings, got {window}")
    if stride is not None and stride < 1:
        raise ConfigError(f"stride must be at least 1, got {stride}")
    pieces = []
    for key, t, x in zip(series.ids, series.t, series.x):
        T = len(t)
        if window is None or T <= window:
            starts = [0]
        else:
            starts = list(range(0, T - window + 1, stride or window))
            if starts[-1] != T - window:
                starts.append(T - window)
        for s in starts:
            e = T if window is None else min(T, s + window)
            pieces.append((key, t[s:e], x[s:e]))
    L = max(len(p[1]) for p in pieces)
    N, D = len(pieces), len(series.columns)
    xs = np.zeros((N, L, D))
    ts = np.zeros((N, L))
    mask = np.zeros((N, L - 1), dtype=bool)
    for n, (_, t, x) in enumerate(pieces):
        k = len(t)
        xs[n, :k], xs[n, k:] = scaling.values(x), scaling.values(x[-1])
        ts[n, :k] = (t - t[0]) / scaling.time_scale
        ts[n, k:] = ts[n, k - 1]
        mask[n, :k - 1] = True
    return Windows(torch.tensor(xs, dtype=torch.float32), torch.tensor(ts, dtype=torch.float32),
                   torch.from_numpy(mask), np.array([p[1][0] for p in pieces]), [p[0] for p in pieces])


@dataclass
class SeriesSpec:
    """How a run reads and prepares its series; stored as the `data` section of its config.

    `format` is csv, npz or jena (default: from the file's suffix). `split` is "time"
    (the last `test_fraction` of every series is held out), "series" (the last
    `test_fraction` of the series are) or "auto" (series when there are at least 10).
    `scaling` is filled in from the training split when the run starts.
    """

    file: str
    format: str = "auto"
    time_column: str | None = None
    id_column: str | None = None
    columns: list[str] | None = None
    aux_columns: list[str] = field(default_factory=list)
    time_format: str | None = None
    window: int | None = None
    stride: int | None = None
    test_fraction: float = 0.1
    split: str = "auto"
    normalize: bool = True
    scaling: dict | None = None
    kind: str = "series"

    def validate(self) -> "SeriesSpec":
        if self.format not in ("auto", "csv", "npz", "jena"):
            raise ConfigError(f"unknown data format '{self.format}'; choose csv, npz or jena")
        if self.split not in ("auto", "time", "series"):
            raise ConfigError(f"unknown split '{self.split}'; choose auto, time or series")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "SeriesSpec":
        check_fields(cls, d, "data")
        return cls(**d).validate()

    def read(self, path: str | Path | None = None) -> Series:
        """Read `path` (default: the spec's own file) with the spec's columns."""
        path = Path(path or self.file)
        fmt = self.format if self.format != "auto" else {".npz": "npz"}.get(path.suffix.lower(), "csv")
        if fmt == "npz":
            s = from_npz(path)
            if self.columns is not None and len(s.columns) != len(self.columns) + len(self.aux_columns):
                expected = self.columns + self.aux_columns
                raise DataError(f"{path} has {len(s.columns)} columns per frame; the run expects "
                                f"{len(expected)} ({', '.join(expected)})")
            s.aux_dims = len(self.aux_columns)
            return s
        if fmt == "jena":
            return jena_climate(path, self.columns)
        return from_csv(path, self.time_column, self.id_column, self.columns, self.aux_columns, self.time_format)

    def split_series(self, series: Series) -> tuple[Series, Series]:
        return split(series, self.test_fraction, self.split)


def split(series: Series, test_fraction: float = 0.1, by: str = "auto") -> tuple[Series, Series]:
    """(train, test): hold out the end of every series (`by="time"`), the last series
    (`by="series"`), or the latter when there are at least 10 series (`by="auto"`)."""
    by = by if by != "auto" else ("series" if len(series) >= 10 else "time")
    idx = list(range(len(series)))
    if by == "series":
        n_test = max(1, round(len(series) * test_fraction))
        if n_test >= len(series):
            raise DataError(f"{len(series)} series are too few to hold {n_test} out; use --split time")
        return series.pick(idx[:-n_test]), series.pick(idx[-n_test:])
    cuts = [len(t) - max(1, round(len(t) * test_fraction)) for t in series.t]
    return series.pick(idx, [slice(0, c) for c in cuts]), series.pick(idx, [slice(c, None) for c in cuts])


def prepare(spec: SeriesSpec) -> tuple[Windows, Windows, SeriesSpec]:
    """Read, split, fit the scaling on the training split, and cut both splits into windows.

    Returns (train, test, spec with `columns` resolved and `scaling` filled in). A spec
    that already holds a scaling (a run being resumed or evaluated) keeps it.
    """
    spec.validate()
    series = spec.read()
    train, test = spec.split_series(series)
    for part, name in ((train, "training"), (test, "test")):
        short = [i for i, t in zip(part.ids, part.t) if len(t) < 2]
        if short:
            raise DataError(f"series '{short[0]}' has fewer than 2 readings in the {name} split; "
                            "lower --test-fraction or drop it")
    scaling = Scaling(**spec.scaling) if spec.scaling else Scaling.fit(train, spec.normalize)
    aux = series.aux_dims
    spec = dataclasses.replace(spec, columns=series.columns[:len(series.columns) - aux],
                               aux_columns=series.columns[len(series.columns) - aux:],
                               scaling=dataclasses.asdict(scaling))
    return cut(train, scaling, spec.window, spec.stride), cut(test, scaling, spec.window, spec.window), spec


def scaling_of(spec: SeriesSpec) -> Scaling:
    if not spec.scaling:
        raise ConfigError("this run's data settings hold no scaling; it was not trained on a series file")
    return Scaling(**spec.scaling)


def check_columns(trained: list[str], series: Series, state_dim: int, path: str | Path) -> None:
    """Raise DataError unless `series` has as many columns as the run was `trained` on."""
    if len(series.columns) != state_dim:
        raise DataError(f"{path} gives {len(series.columns)} columns ({', '.join(series.columns)}) but the run "
                        f"was trained on {state_dim} ({', '.join(trained)}); pass exactly those columns")


def evaluate_series(model, spec: SeriesSpec, series: Series, n_burn: int, progress=None) -> dict[str, float]:
    """`pcnode.evaluate` on every window of `series`, with the error in your units.

    Windows are cut as in training but without overlap; frames are the run's (one
    frame = `time_scale` of your time units).
    """
    from .evaluate import evaluate
    scaling = scaling_of(spec)
    w = cut(series, scaling, spec.window, spec.window)
    return evaluate(model, w, n_burn=n_burn, progress=progress, scale=torch.tensor(scaling.std, dtype=torch.float32))


@dataclass
class Forecast:
    """A rollout of one series in your units.

    times (Q,) and values (Q, D): the predictions; burn_t (n_burn,) and burn_x
    (n_burn, D): the readings it started from; update_times (K,): when the model
    chose to update (from the last burn-in reading on).
    """

    times: np.ndarray
    values: np.ndarray
    burn_t: np.ndarray
    burn_x: np.ndarray
    update_times: np.ndarray


def forecast(model, scaling: Scaling, t: np.ndarray, x: np.ndarray, n_burn: int, start: float, horizon: float,
             every: float | None = None) -> Forecast:
    """Roll `model` out from the `n_burn` readings at or before `start` up to `start + horizon`.

    Args:
        t: (T,) times and x: (T, D) readings of one series, in your units.
        every: query spacing in your time units (may be finer than the data); None
            queries at the series' own times after `start`.
    """
    if not (math.isfinite(horizon) and horizon > 0):
        raise ConfigError(f"--horizon must be a positive time span, got {horizon}")
    before = np.flatnonzero(t <= start)
    if len(before) < n_burn:
        raise DataError(f"only {len(before)} readings at or before {start:g}; the rollout needs {n_burn} "
                        f"(the burn-in): start at {t[min(n_burn, len(t)) - 1]:g} or later")
    burn = before[-n_burn:]
    end = start + horizon
    if every is not None:
        if not (math.isfinite(every) and every > 0):
            raise ConfigError(f"--every must be a positive time span, got {every}")
        queries = start + every * np.arange(1, math.floor(horizon / every + 1e-9) + 1)
    else:
        queries = t[(t > start) & (t <= end)]
        if not len(queries):
            raise DataError(f"the series has no readings in ({start:g}, {end:g}]; pass --every to query a grid")
    t0 = t[burn[0]]
    x_burn = torch.tensor(scaling.values(x[burn]), dtype=torch.float32)[None]
    t_burn = torch.tensor((t[burn] - t0) / scaling.time_scale, dtype=torch.float32)[None]
    was_training = model.training
    model.eval()
    ro = model.rollout(x_burn, (end - t0) / scaling.time_scale, t_burn=t_burn)
    model.train(was_training)
    q = torch.tensor((queries - t0) / scaling.time_scale, dtype=torch.float32)
    values = scaling.restore(ro.at(q)[0].double().numpy())
    steps = ro.t[0, n_burn - 1:]
    update_times = t0 + steps[torch.isfinite(steps)].double().numpy() * scaling.time_scale
    return Forecast(queries, values, t[burn], x[burn], update_times)


def write_forecast(path: str | Path, f: Forecast, columns: list[str], dates: bool = False,
                   time_format: str | None = None) -> None:
    """The predictions as a CSV: a time column, then one column per state column."""
    from . import checkpoint as ckpt
    lines = [",".join(["time", *columns])]
    lines += [",".join([format_time(t, dates, time_format), *(f"{v:.8g}" for v in row)])
              for t, row in zip(f.times, f.values)]
    ckpt.write_text(Path(path), "\n".join(lines) + "\n")
