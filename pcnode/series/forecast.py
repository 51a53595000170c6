"""Forecasts of a series in your units: from the readings up to a time, a horizon ahead."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..errors import ConfigError, DataError
from ..rollout import rollout
from .io import format_time
from .windows import Scaling


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
        raise ConfigError(f"`horizon` must be a positive time span, got {horizon}")
    before = np.flatnonzero(t <= start)
    if len(before) < n_burn:
        raise DataError(f"only {len(before)} readings at or before {start:g}; the rollout needs {n_burn} "
                        f"(the burn-in): start at {t[min(n_burn, len(t)) - 1]:g} or later")
    burn = before[-n_burn:]
    end = start + horizon
    if every is not None:
        if not (math.isfinite(every) and every > 0):
            raise ConfigError(f"`every` must be a positive time span, got {every}")
        queries = start + every * np.arange(1, math.floor(horizon / every + 1e-9) + 1)
    else:
        queries = t[(t > start) & (t <= end)]
        if not len(queries):
            raise DataError(f"the series has no readings in ({start:g}, {end:g}]; give `every` to query a grid")
    t0 = t[burn[0]]
    x_burn = torch.tensor(scaling.values(x[burn]), dtype=torch.float32)[None]
    t_burn = torch.tensor((t[burn] - t0) / scaling.time_scale, dtype=torch.float32)[None]
    was_training = model.training
    model.eval()
    ro = rollout(model, x_burn, (end - t0) / scaling.time_scale, t_burn=t_burn)
    model.train(was_training)
    q = torch.tensor((queries - t0) / scaling.time_scale, dtype=torch.float32)
    values = scaling.restore(ro.at(q)[0].double().numpy())
    steps = ro.t[0, n_burn - 1:]
    update_times = t0 + steps[torch.isfinite(steps)].double().numpy() * scaling.time_scale
    return Forecast(queries, values, t[burn], x[burn], update_times)


def write_forecast(path: str | Path, f: Forecast, columns: list[str], dates: bool = False,
                   time_format: str | None = None) -> None:
    """The predictions as a CSV: a time column, then one column per state column."""
    lines = [",".join(["time", *columns])]
    lines += [",".join([format_time(t, dates, time_format), *(f"{v:.8g}" for v in row)])
              for t, row in zip(f.times, f.values)]
    ckpt.write_text(Path(path), "\n".join(lines) + "\n")
