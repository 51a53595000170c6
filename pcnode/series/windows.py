"""Series on the model's clock and scale: `Scaling`, windows (`cut`), the train/test `split`,
and `SeriesSpec`, the data section of a run's config that `prepare` turns into windows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import Trajectories
from ..errors import ConfigError, DataError
from ..evaluate import evaluate
from .csvfile import from_csv, jena_climate
from .io import Series, from_npz

# `window="auto"`: a series longer than twice this many readings is cut into windows of
# this many, every AUTO_STRIDE readings. The paper's tasks train on trajectories of 21 to
# 45 frames; a training step costs time in proportion to the window, and one long series
# whole is a single training example (600 readings trained at 1.26 s a step on one window,
# 5.4 steps a second on 50 windows of 50).
AUTO_WINDOW = 50
AUTO_STRIDE = 10


@dataclass
class Scaling:
    """Standardisation fitted on training data: model value = (value - mean) / std; model
    time = (time - the window's first time) / time_scale."""

    mean: list[float]
    std: list[float]
    time_scale: float

    @classmethod
    def fit(cls, series: Series, normalize: bool = True) -> Scaling:
        x = np.concatenate(series.x)
        gaps = np.concatenate([np.diff(t) for t in series.t])
        D = x.shape[1]
        if not normalize:
            _check_magnitude(
                x,
                series.columns,
                np.finfo(np.float32).max,
                "train on raw values in float32; leave out `normalize=False`, or divide it by a power of ten",
            )
            return cls([0.0] * D, [1.0] * D, float(np.median(gaps)))
        # The variance squares the values: beyond about 1e154 it overflows.
        _check_magnitude(x, series.columns, 1e150, "standardise; divide it by a power of ten first")
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

    def select(self, columns: slice) -> Scaling:
        """The scaling of some columns only (a slice over the series' columns)."""
        return Scaling(self.mean[columns], self.std[columns], self.time_scale)

    def _stats(self, x):
        if isinstance(x, Tensor):
            return (
                torch.tensor(self.mean, dtype=x.dtype, device=x.device),
                torch.tensor(self.std, dtype=x.dtype, device=x.device),
            )
        return np.asarray(self.mean), np.asarray(self.std)


def _check_magnitude(x: np.ndarray, columns: list[str], limit: float | np.floating, what: str) -> None:
    """Raise DataError naming the first column of `x` (N, D) with a value beyond `limit` in size."""
    big = np.abs(x).max(0) > limit
    if big.any():
        c = int(np.argmax(big))
        raise DataError(
            f"column '{columns[c]}' holds values up to {np.abs(x[:, c]).max():.3g} in size, too large to {what}"
        )


@dataclass
class Windows(Trajectories):
    """Windows of series on the model's clock and scale, padded to one length and masked:
    `Trajectories` that remember where they came from.

    x: (N, L, D) standardised values of the state columns; t: (N, L) frames since each
    window's first reading; mask: (N, L-1) True for real transitions; u: (N, L, U)
    standardised known inputs (None without); t0: (N,) your time of frame 0; ids: (N,)
    the series each came from. Padding repeats the last reading at the last time, so
    padded frames add no span and no change.
    """

    t0: np.ndarray | None = None
    ids: list[str] | None = None

    @property
    def lengths(self) -> Tensor:
        """(N,) real readings per window."""
        return self.real.sum(1) + 1


def choose_window(series: Series, n_burn: int = 4) -> tuple[int | None, int | None]:
    """(window, stride) that `window="auto"` picks for `series`: windows of `AUTO_WINDOW`
    readings (at least 4 burn-ins' worth) every `AUTO_STRIDE`, when its longest series
    holds more than two windows' worth; else (None, None), every series whole."""
    window = max(AUTO_WINDOW, 4 * n_burn)
    if max(len(t) for t in series.t) <= 2 * window:
        return None, None
    return window, AUTO_STRIDE


def cut(series: Series, scaling: Scaling, window: int | str | None = None, stride: int | None = None) -> Windows:
    """Cut every series into windows of `window` readings every `stride` (default: `window`);
    None keeps each series whole, "auto" lets `choose_window` pick both."""
    if isinstance(window, str):
        if window != "auto":
            raise ConfigError(f"window must be a number of readings, None or 'auto', got {window!r}")
        window, chosen = choose_window(series)
        stride = chosen if stride is None else stride
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
    N, D, U = len(pieces), len(series.columns), series.input_dims
    xs = np.zeros((N, L, D))
    ts = np.zeros((N, L))
    mask = np.zeros((N, L - 1), dtype=bool)
    for n, (_, t, x) in enumerate(pieces):
        k = len(t)
        xs[n, :k], xs[n, k:] = scaling.values(x), scaling.values(x[-1])
        ts[n, :k] = (t - t[0]) / scaling.time_scale
        ts[n, k:] = ts[n, k - 1]
        mask[n, : k - 1] = True
    values = torch.tensor(xs, dtype=torch.float32)
    return Windows(
        values[..., : D - U],
        torch.tensor(ts, dtype=torch.float32),
        torch.from_numpy(mask),
        values[..., D - U :] if U else None,
        t0=np.array([p[1][0] for p in pieces]),
        ids=[p[0] for p in pieces],
    )


@dataclass
class SeriesSpec:
    """How a run reads and prepares its series; stored as the `data` section of its config.

    `format` is csv, npz or jena (default: from the file's suffix). `split` is "time"
    (the last `test_fraction` of every series is held out), "series" (the last
    `test_fraction` of the series are) or "auto" (series when there are at least 10).
    `scaling` is filled in from the training split when the run starts.
    """

    file: str  # a CSV or NPZ
    format: str = "auto"  # csv, npz, jena, or auto: from the suffix
    time_column: str | None = None  # None: readings at 0, 1, 2, ...
    id_column: str | None = None  # names the series each row belongs to
    columns: list[str] | None = None  # the state; None: every column not named otherwise
    # Known inputs (covariates, actions): read with every reading, never predicted or scored.
    # An NPZ gives them as its `inputs` array, or names columns of its x here.
    input_columns: list[str] = field(default_factory=list)
    # Runs written before inputs existed: state columns left out of losses and scores (held in
    # rollouts). New runs take these as input_columns (`pcnode.experiments.runs.train_run`).
    aux_columns: list[str] = field(default_factory=list)
    time_format: str | None = None  # strptime format of dates in the time column
    # Readings per window; "auto": `choose_window` picks from the training split (and the
    # run stores its choice); None: every series whole.
    window: int | str | None = "auto"
    stride: int | None = None  # readings between window starts; None: the window's
    test_fraction: float = 0.1
    split: str = "auto"  # time, series, or auto
    normalize: bool = True  # standardise each column on the training split
    scaling: dict | None = None  # filled in when the run starts (`Scaling`)
    kind: str = "series"

    def validate(self) -> SeriesSpec:
        if self.format not in ("auto", "csv", "npz", "jena"):
            raise ConfigError(f"unknown data format '{self.format}'; choose csv, npz or jena")
        if self.split not in ("auto", "time", "series"):
            raise ConfigError(f"unknown split '{self.split}'; choose auto, time or series")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not (
            self.window in ("auto", None)
            or (isinstance(self.window, int) and not isinstance(self.window, bool) and self.window >= 2)
        ):
            raise ConfigError(
                f"window must be at least 2 readings, 'auto' or None (each series whole), got {self.window!r}"
            )
        if self.stride is not None and (
            isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1
        ):
            raise ConfigError(f"stride must be at least 1 reading, got {self.stride!r}")
        return self

    def read(self, path: str | Path | None = None) -> Series:
        """Read `path` (default: the spec's own file) with the spec's columns."""
        path = Path(path or self.file)
        fmt = self.format if self.format != "auto" else {".npz": "npz"}.get(path.suffix.lower(), "csv")
        if fmt == "npz":
            s = from_npz(path)
            if self.input_columns and not s.input_dims:  # inputs named among x's columns
                s = _as_inputs(s, self.input_columns, path)
            elif self.input_columns and s.input_columns != self.input_columns:
                raise DataError(
                    f"{path} gives its known inputs as an `inputs` array ({', '.join(s.input_columns)}); "
                    f"leave out `input_columns`, or name exactly those"
                )
            if self.columns is not None and len(s.state_columns) != len(self.columns) + len(self.aux_columns):
                expected = self.columns + self.aux_columns
                raise DataError(
                    f"{path} has {len(s.state_columns)} columns per frame"
                    + (" besides its known inputs" if s.input_dims else "")
                    + f"; the run expects {len(expected)} ({', '.join(expected)})"
                )
            if self.columns is not None and s.input_dims != len(self.input_columns):
                raise DataError(
                    f"{path} gives {s.input_dims} known input(s) per frame; the run reads "
                    f"{len(self.input_columns)}"
                    + (f" ({', '.join(self.input_columns)})" if self.input_columns else "")
                    + ": pass exactly those as `input_columns`"
                )
            s.aux_dims = len(self.aux_columns)
            return s
        if fmt == "jena":
            return jena_climate(path, self.columns, self.input_columns)
        return from_csv(
            path,
            self.time_column,
            self.id_column,
            self.columns,
            self.aux_columns,
            self.time_format,
            input_columns=self.input_columns,
        )

    def split_series(self, series: Series) -> tuple[Series, Series]:
        return split(series, self.test_fraction, self.split)


def _as_inputs(s: Series, names: list[str], path: Path) -> Series:
    """`s` with the columns `names` moved to the end as its known inputs."""
    missing = [c for c in names if c not in s.columns]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(repr(c) for c in missing)}; its columns are: "
            f"{', '.join(s.columns)} (or give the inputs as an `inputs` array)"
        )
    order = [s.columns.index(c) for c in s.columns if c not in names] + [s.columns.index(c) for c in names]
    return dataclasses.replace(
        s, x=[v[:, order] for v in s.x], columns=[s.columns[k] for k in order], input_dims=len(names)
    )


def split(series: Series, test_fraction: float = 0.1, by: str = "auto") -> tuple[Series, Series]:
    """(train, test): hold out the end of every series (`by="time"`), the last series
    (`by="series"`), or the latter when there are at least 10 series (`by="auto"`)."""
    by = by if by != "auto" else ("series" if len(series) >= 10 else "time")
    idx = list(range(len(series)))
    if by == "series":
        n_test = max(1, round(len(series) * test_fraction))
        if n_test >= len(series):
            raise DataError(f"{len(series)} series are too few to hold {n_test} out; use `split='time'`")
        return series.pick(idx[:-n_test]), series.pick(idx[-n_test:])
    cuts = [len(t) - max(1, round(len(t) * test_fraction)) for t in series.t]
    return series.pick(idx, [slice(0, c) for c in cuts]), series.pick(idx, [slice(c, None) for c in cuts])


def prepare(spec: SeriesSpec, n_burn: int = 4) -> tuple[Windows, Windows, SeriesSpec]:
    """Read, split, fit the scaling on the training split, and cut both splits into windows.

    Returns (train, test, spec with `columns` resolved, `scaling` filled in and a window
    of "auto" replaced by the one `choose_window` picked on the training split, for
    rollouts of `n_burn` burn-in readings). A spec that already holds a scaling (a run
    being resumed or evaluated) keeps it.
    """
    spec.validate()
    series = spec.read()
    train, test = spec.split_series(series)
    _check_lengths(train, test, n_burn)
    scaling = Scaling(**spec.scaling) if spec.scaling else Scaling.fit(train, spec.normalize)
    state, aux = series.state_columns, series.aux_dims
    window, stride = spec.window, spec.stride
    if window == "auto":
        window, chosen = choose_window(train, n_burn)
        stride = chosen if stride is None else stride
    spec = dataclasses.replace(
        spec,
        columns=state[: len(state) - aux],
        aux_columns=state[len(state) - aux :],
        input_columns=series.input_columns,
        scaling=dataclasses.asdict(scaling),
        window=window,
        stride=stride,
    )
    assert not isinstance(window, str)  # "auto" was chosen above
    return cut(train, scaling, window, stride), cut(test, scaling, window, window), spec


def _check_lengths(train: Series, test: Series, n_burn: int) -> None:
    """Raise DataError unless every series keeps 2 readings to train on and more than
    `n_burn` to test on, saying which way to move `test_fraction`, or that no way works."""
    by_time = train.ids == test.ids  # else the test series are held out whole
    for k, (key, t) in enumerate(zip(test.ids, test.t)):
        kept = len(train.t[k]) if by_time else 2
        if len(t) > n_burn and kept >= 2:
            continue
        if not by_time:
            raise DataError(
                f"series '{key}' has {len(t)} readings; held out whole it needs more than the {n_burn} "
                f"burn-in readings to be scored: drop it, or split in time with `split='time'`"
            )
        if len(t) + kept < n_burn + 3:
            raise DataError(
                f"series '{key}' has {len(t) + kept} readings; split in time it needs at least "
                f"{n_burn + 3}: 2 to train on and {n_burn + 1} to test on (the burn-in and one to score): "
                "give it more readings"
                + (", drop it, or hold out whole series with `split='series'`" if len(test) > 1 else "")
            )
        part, has, needs, change = (
            ("training", kept, "2", "lower")
            if kept < 2
            else ("test", len(t), f"{n_burn + 1} (the burn-in and one to score)", "raise")
        )
        raise DataError(
            f"series '{key}' keeps {has} reading{'s' * (has != 1)} in the {part} split, fewer than the "
            f"{needs} it needs there: {change} `test_fraction` or drop it"
        )


def scaling_of(spec: SeriesSpec) -> Scaling:
    if not spec.scaling:
        raise ConfigError("this run's data settings hold no scaling; it was not trained on a series file")
    return Scaling(**spec.scaling)


def check_columns(spec: SeriesSpec, series: Series, model_config, path: str | Path) -> None:
    """Raise DataError unless `series` has the state columns and known inputs the run was
    trained on (`spec`, as its config stores it, and its model's `model_config`)."""
    trained = (spec.columns or []) + spec.aux_columns
    state = series.state_columns
    if len(state) != model_config.state_dim:
        raise DataError(
            f"{path} gives {len(state)} columns ({', '.join(state)}) but the run "
            f"was trained on {model_config.state_dim} ({', '.join(trained)}); pass exactly those columns"
        )
    if series.input_dims != model_config.input_dim:
        names = f" ({', '.join(spec.input_columns)})" if spec.input_columns else ""
        raise DataError(
            f"{path} gives {series.input_dims} known input(s) but the run's model reads "
            f"{model_config.input_dim}{names}; pass exactly those as `input_columns`"
        )


def evaluate_series(model, spec: SeriesSpec, series: Series, progress=None) -> dict[str, float]:
    """`pcnode.evaluate` on every window of `series`, with the error in your units.

    Windows are cut as in training but without overlap (a window of "auto" is chosen on
    `series`); frames are the run's (one frame = `time_scale` of your time units).
    """
    scaling = scaling_of(spec)
    window = choose_window(series, model.rule.n_burn)[0] if spec.window == "auto" else spec.window
    assert not isinstance(window, str)
    w = cut(series, scaling, window, window)
    std = scaling.std[: len(series.state_columns)]  # errors in the state columns only
    return evaluate(model, w, progress=progress, scale=torch.tensor(std, dtype=torch.float32))
