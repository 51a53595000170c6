"""Forecasts of a series in your units: from the readings up to a time, a span `ahead` of it.

(`ahead` is a span after the start; a rollout's `horizon` is the time it reaches.)

Known inputs (a run with `input_columns`) are given, not predicted: every update of the
forecast reads the inputs of the last reading at or before its time, the readings after
the start included, so the state is predicted from the true future inputs; scheduled
inputs, given past the last reading with the state left blank (`Series.scheduled`),
count as readings. The series must then hold readings over the whole forecast period (up to one sampling interval,
`Scaling.time_scale`, short of its end). With no reading after the start at all, the last
reading's inputs are held over the forecast, and the forecast says so
(`Forecast.inputs_held_from`, and a RuntimeWarning).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..errors import ConfigError, DataError
from ..model import evaluating
from ..rollout import rollout
from .io import format_time
from .windows import Scaling


@dataclass
class Forecast:
    """A rollout of one series in your units.

    times (Q,) and values (Q, D): the predicted state columns; burn_t (n_burn,) and
    burn_x (n_burn, D): the readings it started from; update_times (K,): when the model
    chose to update (from the last burn-in reading on). With known inputs: inputs (Q, U),
    those in force at each query time as the model read them (given, not predicted), and
    inputs_held_from, the time from which the last reading's inputs were held because the
    series gives none later (None: the forecast read the series' own future inputs).
    """

    times: np.ndarray
    values: np.ndarray
    burn_t: np.ndarray
    burn_x: np.ndarray
    update_times: np.ndarray
    inputs: np.ndarray | None = None
    inputs_held_from: float | None = None


def forecast(
    model,
    scaling: Scaling,
    t: np.ndarray,
    x: np.ndarray,
    n_burn: int,
    start: float,
    ahead: float,
    every: float | None = None,
) -> Forecast:
    """Roll `model` out from the `n_burn` readings at or before `start` up to `start + ahead`.

    Args:
        t: (T,) times and x: (T, D) readings of one series, in your units: its state
            columns, then the `model.config.input_dim` known inputs (as `Series` holds them;
            rows of scheduled inputs, with NaN states, may follow: `Series.with_scheduled`).
        every: query spacing in your time units (may be finer than the data); None
            queries at the series' own times after `start`.

    Raises DataError when the series' inputs stop short of the forecast period's end (see
    the module docstring). A `start` past the last reading warns (RuntimeWarning): the
    rollout then runs from that reading, over a stretch no reading checks, before it
    reaches the forecast period.
    """
    if not (math.isfinite(ahead) and ahead > 0):
        raise ConfigError(f"`ahead` must be a positive time span, got {ahead}")
    U = model.config.input_dim
    D = x.shape[1] - U
    before = np.flatnonzero((t <= start) & np.isfinite(x[:, :D]).all(1))  # scheduled inputs have no state
    if len(before) < n_burn:
        raise DataError(
            f"only {len(before)} readings at or before {start:g}; the rollout needs {n_burn} "
            f"(the burn-in): start at {t[min(n_burn, len(t)) - 1]:g} or later"
        )
    burn = before[-n_burn:]
    end = start + ahead
    last = t[np.isfinite(x[:, :D]).all(1)][-1]
    if start > last:
        warnings.warn(
            f"start {start:g} is {start - last:g} time units past the last reading ({last:g}): the "
            "forecast runs from there with no reading to check it",
            RuntimeWarning,
            stacklevel=2,
        )
    if every is not None:
        if not (math.isfinite(every) and every > 0):
            raise ConfigError(f"`every` must be a positive time span, got {every}")
        queries = start + every * np.arange(1, math.floor(ahead / every + 1e-9) + 1)
    else:
        queries = t[(t > start) & (t <= end)]
        if not len(queries):
            raise DataError(f"the series has no readings in ({start:g}, {end:g}]; give `every` to query a grid")
    t0 = t[burn[0]]

    def clock(times):  # your times -> the model's frames since the first burn-in reading
        return torch.tensor((times - t0) / scaling.time_scale, dtype=torch.float32)

    z = scaling.values(x)
    x_burn = torch.tensor(z[burn, :D], dtype=torch.float32)[None]
    u, t_u, held_from = None, None, None
    if U:
        k = np.flatnonzero((t >= t0) & (t <= end))  # the readings from the burn-in to the end
        later = t[k] > t[burn[-1]]
        if not later.any():
            held_from = float(t[burn[-1]])
            warnings.warn(
                f"no known inputs after {held_from:g}: the forecast holds their last reading there",
                RuntimeWarning,
                stacklevel=2,
            )
        elif end - t[k[-1]] > scaling.time_scale:
            raise DataError(
                f"the known inputs stop at {t[k[-1]]:g} but the forecast runs to {end:g}; give inputs "
                f"over the whole forecast, end it sooner with a shorter `ahead`, or start it at the "
                f"last reading ({t[-1]:g}) to hold that reading's inputs"
            )
        u, t_u = torch.tensor(z[k, D:], dtype=torch.float32)[None], clock(t[k])[None]
    with evaluating(model), warnings.catch_warnings():  # said above, in your units
        warnings.filterwarnings("ignore", "no known inputs after the last burn-in frame", RuntimeWarning)
        ro = rollout(model, x_burn, float(clock(np.array(end))), t_burn=clock(t[burn])[None], u=u, t_u=t_u)
    q = clock(queries)
    values = scaling.select(slice(0, D)).restore(ro.at(q)[0].double().numpy())
    inputs = None
    if U:  # the inputs in force at each query time, as the model read them
        k = np.flatnonzero((t >= t0) & (t <= end))
        last = np.searchsorted(t[k], queries, side="right") - 1
        inputs = x[k][last, D:]
    steps = ro.t[0, n_burn - 1 :]
    update_times = t0 + steps[torch.isfinite(steps)].double().numpy() * scaling.time_scale
    return Forecast(queries, values, t[burn], x[burn, :D], update_times, inputs, held_from)


def write_forecast(
    path: str | Path,
    f: Forecast,
    columns: list[str],
    dates: bool = False,
    time_format: str | None = None,
    input_columns: Sequence[str] = (),
) -> None:
    """The predictions as a CSV: a time column, one column per state column, then the known
    inputs in force at each time, as given (headed `NAME (given)`, or `NAME (held)` where the
    last reading was held for want of future inputs)."""
    tag = "held" if f.inputs_held_from is not None else "given"
    lines = [",".join(["time", *columns, *(f"{c} ({tag})" for c in input_columns)])]
    inputs = f.inputs if f.inputs is not None else np.zeros((len(f.times), 0))
    lines += [
        ",".join([format_time(t, dates, time_format), *(f"{v:.8g}" for v in row), *(f"{v:.8g}" for v in u)])
        for t, row, u in zip(f.times, f.values, inputs)
    ]
    ckpt.write_text(Path(path), "\n".join(lines) + "\n")
