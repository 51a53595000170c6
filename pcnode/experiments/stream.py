"""The jobs behind `pcnode stream` and `pcnode export`: a run fed its data as if it arrived
live, and a run's step written out to run without PyTorch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from .. import pretrained
from ..checkpoint import load_run
from ..config import load_config
from ..data import load_npz
from ..errors import ConfigError, DataError
from ..export import export
from ..progress import bar
from ..series import SeriesSpec, check_columns, format_time, scaling_of
from ..stream import Stream
from .figures import plot_forecast


@dataclass
class Replay:
    """Readings to replay, in the model's units and on its clock, and how to write them back.

    t: (N, T) frames since each stream's first reading (NaN past its end); x: (N, T,
    state_dim); u: (N, T, input_dim) or None; lengths: (N,) readings per stream; ids: (N,)
    names; raw: x as read, in your units. Your units are `x * std + mean` and your times
    `t0 + t * time_scale` (a series run's scaling; the identity for a task run).
    """

    t: np.ndarray
    x: np.ndarray
    u: np.ndarray | None
    lengths: np.ndarray
    ids: list[str]
    columns: list[str]
    std: np.ndarray
    mean: np.ndarray
    t0: np.ndarray
    raw: np.ndarray
    time_scale: float = 1.0
    dates: bool = False
    time_format: str | None = None

    def times(self, n: int) -> np.ndarray:
        """Stream `n`'s reading times in your units."""
        return self.t0[n] + self.t[n, : self.lengths[n]] * self.time_scale


def stream_run(
    run: str | Path,
    data: Path | None = None,
    out: Path | None = None,
    count: int | None = None,
    series: dict | None = None,
    progress: bool | str = True,
) -> tuple[dict, list[Path]]:
    """Replay a data file through a trained run's `Stream`, one reading at a time per stream.

    `run` is a folder or `pretrained:NAME`; `data` an .npz of trajectories (task runs; x
    (N, T, D) in the run's units, optionally t) or a series file read with the run's
    columns and scaling (series runs); default the run's test split. `count` keeps the
    first streams only. Writes PREFIX.csv (per reading: whether the model updated, its
    prediction made before the reading, and the error, in your units), PREFIX.json (the
    summary) and PREFIX.png (the first stream, updates marked); PREFIX is `out`
    (default RUN/stream; runs/pretrained/NAME/stream for a shipped model). Returns the
    summary and the files.
    """
    if count is not None and count < 1:
        raise ConfigError(f"`count` must be at least 1, got {count}")
    folder = pretrained.resolve(run)
    model, cfg = load_run(folder)
    replay = _replay(model, cfg, data, series)
    if count is not None:
        replay = _first(replay, count)
    stream = Stream(model, len(replay.ids))
    N, T = replay.t.shape
    updated = np.zeros((N, T), dtype=bool)
    predicted = np.full(replay.x.shape, np.nan, dtype=np.float32)
    with bar(progress, total=int(replay.lengths.sum()), desc="readings", unit="reading") as shown:
        for k in range(T):
            rows = np.flatnonzero(replay.lengths > k)
            u = None if replay.u is None else torch.from_numpy(replay.u[rows, k])
            updated[rows, k] = stream.observe(
                torch.from_numpy(replay.t[rows, k]), torch.from_numpy(replay.x[rows, k]), u, rows=torch.from_numpy(rows)
            ).numpy()
            predicted[rows, k] = stream.predicted[rows].numpy()
            shown.update(len(rows))
    summary, csv = _results(model, replay, updated, predicted)
    summary = {
        "run": str(run),
        "model": model.config.kind,
        "data": str(data) if data else "the run's test split",
        "threshold": stream.rule.threshold,
        "n_burn": stream.rule.n_burn,
        **summary,
    }
    prefix = (
        Path(out)
        if out
        else (Path("runs/pretrained") / folder.name if pretrained.is_pretrained(run) else folder) / "stream"
    )
    paths = [Path(f"{prefix}.csv"), Path(f"{prefix}.json"), Path(f"{prefix}.png")]
    try:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write to {paths[0].parent} ({e.strerror}); choose a writable `out`") from None
    ckpt.write_text(paths[0], csv)
    ckpt.write_json(paths[1], summary)
    _draw(paths[2], replay, updated, predicted, folder.name, model.rule.n_burn)
    return summary, paths


def export_run(run: str | Path, out: Path | None = None, batch: int = 2) -> Path:
    """Write a trained run's step functions for `pcnode.runtime` into `out` (default RUN/export;
    runs/pretrained/NAME/export for a shipped model); see `pcnode.export`."""
    folder = pretrained.resolve(run)
    model, cfg = load_run(folder)
    out = out or (Path("runs/pretrained") / folder.name if pretrained.is_pretrained(run) else folder) / "export"
    return export(model, out, data=cfg["data"], batch=batch)


def _replay(model, cfg: dict, data: Path | None, series: dict | None) -> Replay:
    """The readings of `data` (default the run's test split) as a `Replay`."""
    c = model.config
    if cfg["data"].get("kind") == "series":
        spec = load_config(
            SeriesSpec, {**cfg["data"], **(series or {}), **({"file": str(data)} if data else {})}, "data"
        )
        s = spec.read()
        if data is None:
            s = spec.split_series(s)[1]
        check_columns(load_config(SeriesSpec, cfg["data"], "data"), s, c, spec.file)
        scaling = scaling_of(spec)
        N, T, D = len(s), max(len(t) for t in s.t), c.state_dim
        t, z = np.full((N, T), np.nan), np.zeros((N, T, D + c.input_dim), dtype=np.float32)
        raw = np.zeros((N, T, D))
        for n, (tn, xn) in enumerate(zip(s.t, s.x)):
            t[n, : len(tn)] = (tn - tn[0]) / scaling.time_scale
            z[n, : len(tn)] = scaling.values(xn)
            raw[n, : len(tn)] = xn[:, :D]
        return Replay(
            t,
            z[..., :D],
            z[..., D:] if c.input_dim else None,
            np.array([len(v) for v in s.t]),
            s.ids,
            s.state_columns,
            np.array(scaling.std[:D]),
            np.array(scaling.mean[:D]),
            np.array([v[0] for v in s.t]),
            raw,
            scaling.time_scale,
            s.dates,
            spec.time_format,
        )
    if series:
        raise ConfigError(
            "series columns and formats apply to runs trained on a series file; this run was trained "
            "on a task: give `data` as an .npz of trajectories"
        )
    if data is None:
        from .runs import dataset  # the run's own test split, regenerated as its config describes it

        test = dataset(cfg["data"])[1]
        x, u, t = test.x.numpy(), None if test.u is None else test.u.numpy(), test.times.numpy()
    else:
        arrays = load_npz(data)
        x, u = arrays["x"], arrays.get("inputs")
        t = np.broadcast_to(np.arange(x.shape[1], dtype=np.float64), x.shape[:2])
        if "t" in arrays:
            try:
                given = np.asarray(arrays["t"], dtype=np.float64)
            except (TypeError, ValueError):
                given = np.zeros(0)
            if given.shape not in (x.shape[1:2], x.shape[:2]):
                raise DataError(f"{data}: t must give a number for each frame, shaped ({x.shape[1]},) or {x.shape[:2]}")
            t = np.broadcast_to(given, x.shape[:2])
    if x.shape[-1] != c.state_dim or (u is None) != (c.input_dim == 0):
        raise DataError(
            f"{data}: x has {x.shape[-1]} dims per frame"
            + ("" if u is None else " with known inputs")
            + f"; the run's model reads {c.state_dim}"
            + (f" and {c.input_dim} inputs" if c.input_dim else "")
        )
    N, T, D = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32)
    return Replay(
        np.asarray(t, dtype=np.float64),
        x,
        None if u is None else np.ascontiguousarray(u, dtype=np.float32),
        np.full(N, T),
        [str(n) for n in range(N)],
        [f"x{d}" for d in range(D)],
        np.ones(D),
        np.zeros(D),
        np.zeros(N),
        x,
    )


def _first(r: Replay, count: int) -> Replay:
    keep = slice(0, count)
    return Replay(
        r.t[keep],
        r.x[keep],
        None if r.u is None else r.u[keep],
        r.lengths[keep],
        r.ids[keep],
        r.columns,
        r.std,
        r.mean,
        r.t0[keep],
        r.raw[keep],
        r.time_scale,
        r.dates,
        r.time_format,
    )


def _results(model, r: Replay, updated: np.ndarray, predicted: np.ndarray) -> tuple[dict, str]:
    """The summary and the CSV's text, values in your units."""
    keep, n_burn = model.scored_dims, model.rule.n_burn
    truth, pred = r.raw, predicted * r.std + r.mean
    err = ((pred - truth)[..., :keep] ** 2).mean(-1)
    k = np.arange(r.t.shape[1])
    real = k < r.lengths[:, None]
    after = real & (k >= n_burn)
    lines = [",".join(["series", "time", "updated", *r.columns, *(f"{c} (predicted)" for c in r.columns), "error"])]
    for n in range(len(r.ids)):
        for j, tj in enumerate(r.times(n)):
            lines.append(
                ",".join(
                    [
                        r.ids[n],
                        format_time(tj, r.dates, r.time_format),
                        str(int(updated[n, j])),
                        *(f"{v:.8g}" for v in truth[n, j]),
                        *("" if math.isnan(v) else f"{v:.8g}" for v in pred[n, j]),
                        "" if math.isnan(err[n, j]) else f"{err[n, j]:.8g}",
                    ]
                )
            )
    scored = real & ~np.isnan(err)
    summary = {
        "streams": len(r.ids),
        "readings": int(real.sum()),
        "updates": int(updated[real].sum()),
        "update_fraction": float(updated[real].mean()),
        "readings_after_burn_in": int(after.sum()),
        "update_fraction_after_burn_in": float(updated[after].mean()) if after.any() else math.nan,
        "mean_error": float(err[scored].mean()) if scored.any() else math.nan,
        "mean_error_after_burn_in": float(err[after].mean()) if after.any() else math.nan,
    }
    return summary, "\n".join(lines) + "\n"


def _draw(path: Path, r: Replay, updated: np.ndarray, predicted: np.ndarray, name: str, n_burn: int) -> None:
    """The first stream: its readings, the prediction made before each, the updates as vertical lines."""
    n, L = 0, r.lengths[0]
    times = r.times(n)
    truth = r.raw[n, :L]
    pred = predicted[n, :L] * r.std + r.mean
    stamps = (times * 1000).astype("datetime64[ms]") if r.dates else times
    burn = slice(0, min(n_burn, L))
    plot_forecast(
        path,
        stamps,
        truth,
        r.columns,
        {"stream": (stamps, pred, stamps[updated[n, :L]])},
        stamps[burn],
        truth[burn],
        title=f"{name}, stream {r.ids[n]}: the prediction of each reading "
        f"made before it arrived; {int(updated[n, :L].sum())} updates in {L} readings",
        time_label="time",
    )
