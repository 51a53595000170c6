"""Rollouts of an exported model in numpy: `pcnode.rollout`'s host loop around the two ONNX functions.

The loop is the eager one step for step (`pcnode.rollout`): the burn-in reads the true
frames, then each trajectory's clock jumps by the wait its last update gave (a jump that
would stop less than `min_dt` short of the horizon runs on to it; with known inputs a
jump ends at the next reading that moves an input past the rule's threshold), the
segment is read at the jump's end, and the cell updates from that predicted frame.
Times are float32 frames, as in the eager rollout, so the two make the same decisions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .model import Exported

F32 = np.float32


@dataclass
class Rollout:
    """The steps of a batch of rollouts, padded to the longest, as `pcnode.Rollout` holds them.

    Step `k` of trajectory `b` started at `t[b, k]` from frame `x[b, k]` with state
    `h[b, k]` and segment `seg[b, k]` (after its update) and lasted `dt[b, k]` frames;
    padding steps have `t = inf`. `updates[b]` counts the steps from the last burn-in
    frame on. Shapes: t, dt (B, K); x (B, K, state_dim); h (B, K, state_size);
    seg (B, K, segment_size); updates (B,).
    """

    model: Exported
    t: np.ndarray
    dt: np.ndarray
    x: np.ndarray
    h: np.ndarray
    seg: np.ndarray
    updates: np.ndarray
    n_burn: int
    horizon: float

    def at(self, t) -> np.ndarray:
        """The rollout read at real times `t`: a number -> (B, state_dim); (Q,) shared
        -> (B, Q, state_dim); (B, Q) -> (B, Q, state_dim). A time in `(t_k, t_k + dt_k]`
        is read from step `k`, as `pcnode.Rollout.at` reads it."""
        q = np.asarray(t, dtype=F32)
        scalar = q.ndim == 0
        B = len(self.t)
        q = np.broadcast_to(q.reshape(1, -1) if q.ndim < 2 else q, (B, q.size if q.ndim < 2 else q.shape[1]))
        if not np.isfinite(q).all():
            raise DataError("query times must be finite")
        k = np.maximum((self.t[:, None, :] < q[:, :, None]).sum(-1) - 1, 0)
        rows = np.arange(B)[:, None].repeat(q.shape[1], 1)
        span = (q - self.t[rows, k]).reshape(-1, 1).astype(F32)
        change = self.model.read(self.seg[rows, k].reshape(-1, self.seg.shape[-1]), span)
        out = self.x[rows, k] + change.reshape(B, q.shape[1], -1)
        return out[:, 0] if scalar else out


class Readings:
    """Known inputs as readings (B, Q, U) at times (B, Q), each in force until the next."""

    def __init__(self, u: np.ndarray, t: np.ndarray):
        self.u, self.t = u, t

    def at(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The last reading at or before each time `t` (R, n) of `rows` (R,) -> (R, n, U)."""
        k = np.maximum((self.t[rows][:, None, :] <= t[:, :, None]).sum(-1) - 1, 0)
        return self.u[rows[:, None], k]

    def next_change(self, rows: np.ndarray, t: np.ndarray, read: np.ndarray, threshold: float) -> np.ndarray:
        """The time (R, 1) of each row's first reading after `t` (R, 1) that moves an input
        more than `threshold` from `read` (R, U); inf where none does."""
        after = self.t[rows] > t
        changed = np.abs(self.u[rows] - read[:, None]).max(-1) > threshold
        return np.where(after & changed, self.t[rows], F32(math.inf)).min(-1, keepdims=True)


def with_inputs(x: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    return x if u is None else np.concatenate([x, u], -1)


def rollout(model: Exported, x_burn, horizon, t_burn=None, u=None, t_u=None, max_updates: int | None = None) -> Rollout:
    """Roll the exported `model` out from burn-in frames until `horizon`, as `pcnode.rollout` does.

    Args:
        x_burn: (B, n_burn, state_dim) frames at times 0, 1, ... (or `t_burn` (B, n_burn)).
        horizon: a time (frames) or (B,) one per trajectory, after the last burn-in frame.
        u: known inputs (B, Q, input_dim) for a model that reads them, each reading in
            force until the next (as `pcnode.rollout`).
        t_u: their times (B, Q); None: 0, 1, ...
        max_updates: bound on model-chosen updates per trajectory (default: enough for
            `min_dt`-sized steps and one per input reading).
    """
    x_burn = _array(x_burn, "burn-in frames")
    if x_burn.ndim != 3 or x_burn.shape[-1] != model.state_dim or 0 in x_burn.shape:
        raise DataError(f"burn-in frames must have shape (batch, frames, {model.state_dim}); got {x_burn.shape}")
    B, n_burn, _ = x_burn.shape
    if not np.isfinite(x_burn).all():
        raise DataError("burn-in frames contain NaN or inf; clean the data first")
    if t_burn is None:
        t_burn = np.broadcast_to(np.arange(n_burn, dtype=F32), (B, n_burn))
    t_burn = _array(t_burn, "burn-in times")
    if t_burn.shape != (B, n_burn) or not np.isfinite(t_burn).all() or (np.diff(t_burn, axis=1) <= 0).any():
        raise DataError(f"burn-in times must be finite, strictly increasing and shaped ({B}, {n_burn})")
    hz = _horizon(horizon, t_burn[:, -1])
    readings = _readings(model, u, t_u, t_burn)
    rows = np.arange(B)
    u_burn = None if readings is None else readings.at(rows, t_burn)
    gaps = np.diff(t_burn, axis=1)[..., None]
    h, steps = np.zeros((B, model.state_size), F32), []
    for i in range(n_burn):
        span = gaps[:, i - 1] if i else np.zeros((B, 1), F32)
        ui = None if u_burn is None else u_burn[:, i]
        h, seg, dt = model.update(h, span, with_inputs(x_burn[:, i], ui))
        if i < n_burn - 1:
            steps.append((rows, t_burn[:, i : i + 1], gaps[:, i], x_burn[:, i], h, seg))
    chosen, updates = _jumps(model, h, seg, dt, x_burn[:, -1], t_burn[:, -1:], ui, hz, readings, max_updates)
    return _pack(model, steps + chosen, B, updates, n_burn, float(hz.max()))


def rollout_from(
    model: Exported, h, seg, dt, x, t, horizon, u=None, t_u=None, max_updates: int | None = None
) -> Rollout:
    """A rollout from states the model already holds (a stream's): `h` (B, state_size),
    `seg` (B, segment_size) and `dt` (B, 1), what the update that opened each segment
    gave, at the frame `x` (B, state_dim) it read at times `t` (B,). Its first step
    starts at `t` (`n_burn` is 1)."""
    x, t = _array(x, "frames"), _array(t, "times").reshape(-1, 1)
    hz = _horizon(horizon, t[:, 0])
    readings = _readings(model, u, t_u, t)
    u_cur = None if readings is None else readings.at(np.arange(len(x)), t)[:, 0]
    chosen, updates = _jumps(model, h, seg, dt, x, t, u_cur, hz, readings, max_updates)
    return _pack(model, chosen, len(x), updates, 1, float(hz.max()))


def _jumps(model: Exported, h, seg, dt, x_cur, t_cur, u_cur, hz, readings, max_updates):
    """`pcnode.rollout._jumps` in numpy: the steps the model chooses, and their count per row."""
    rule = model.rule
    events = readings is not None and rule.jumps
    if max_updates is None:
        max_updates = math.ceil(float((hz - t_cur[:, 0]).max()) / rule.min_dt) + 1
        if readings is not None and events:
            max_updates += int((readings.t > t_cur).sum(1).max())
    rows = np.arange(len(hz))
    updates = np.zeros(len(hz), dtype=np.int64)
    steps = []
    while True:
        t_next, t_end = t_cur + dt, hz[rows][:, None]
        if rule.jumps:
            short = (t_next < t_end) & (t_end - t_next < rule.min_dt)
            t_next, dt = np.where(short, t_end, t_next), np.where(short, t_end - t_cur, dt)
        if readings is not None and events:
            t_next = np.minimum(t_next, readings.next_change(rows, t_cur, u_cur, rule.input_threshold))
            dt = t_next - t_cur
        steps.append((rows, t_cur, dt, x_cur, h, seg))
        updates[rows] += 1
        x_next = x_cur + model.read(seg, dt)
        going = (t_next < t_end)[:, 0]
        if not going.any():
            break
        if len(steps) >= max_updates:
            warnings.warn(
                f"rollout stopped after {max_updates} updates before reaching the horizon; raise max_updates",
                RuntimeWarning,
                stacklevel=3,
            )
            break
        rows, x_cur, t_cur = rows[going], x_next[going], t_next[going]
        if readings is not None:
            u_cur = readings.at(rows, t_cur)[:, 0]
        h, seg, dt = model.update(h[going], dt[going], with_inputs(x_cur, u_cur))
    return steps, updates


def _pack(model: Exported, steps: list, B: int, updates, n_burn: int, horizon: float) -> Rollout:
    K = len(steps)
    t = np.full((B, K), np.inf, F32)
    dt = np.zeros((B, K), F32)
    x = np.zeros((B, K, model.state_dim), F32)
    h = np.zeros((B, K, model.state_size), F32)
    seg = np.zeros((B, K, model.segment_size), F32)
    for k, (r, tc, dtc, xc, hc, sc) in enumerate(steps):
        t[r, k], dt[r, k], x[r, k], h[r, k], seg[r, k] = tc[:, 0], dtc[:, 0], xc, hc, sc
    return Rollout(model, t, dt, x, h, seg, updates, n_burn, horizon)


def _array(value, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=F32)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numbers (an array or a list)") from None


def _horizon(horizon, last: np.ndarray) -> np.ndarray:
    hz = _array(horizon, "horizon")
    if hz.shape not in ((), last.shape) or not np.isfinite(hz).all() or (hz <= last).any():
        raise ConfigError(
            f"horizon must be a finite time after the last frame read ({float(last.max()):g}), a "
            f"number or one per trajectory; got {horizon}"
        )
    return np.broadcast_to(hz, last.shape)


def _readings(model: Exported, u, t_u, t_first: np.ndarray) -> Readings | None:
    """The known inputs as `Readings`, checked as `pcnode.rollout` checks them."""
    U = model.input_dim
    B = len(t_first)
    if not U:
        if u is not None or t_u is not None:
            raise DataError(
                "known inputs were given but the model reads none (its input_dim is 0); leave out `u` and `t_u`"
            )
        return None
    u = None if u is None else _array(u, "known inputs")
    if u is None or u.ndim != 3 or u.shape[0] != B or u.shape[2] != U or u.shape[1] == 0:
        raise DataError(
            f"the model reads {U} known input(s): give `u` shaped ({B}, readings, {U}) with their times `t_u`"
        )
    if not np.isfinite(u).all():
        raise DataError("known inputs `u` must be finite; fill or drop the gaps")
    Q = u.shape[1]
    t_u = np.broadcast_to(np.arange(Q, dtype=F32), (B, Q)) if t_u is None else _array(t_u, "input times")
    if t_u.shape != (B, Q) or not np.isfinite(t_u).all() or (np.diff(t_u, axis=1) < 0).any():
        raise DataError(f"reading times `t_u` must be finite, non-decreasing and shaped ({B}, {Q})")
    if (t_u[:, 0] > t_first[:, 0]).any():
        raise DataError("known inputs must begin at or before the first frame read; give a reading there")
    held = int((t_u[:, -1] <= t_first[:, -1]).sum())
    if held:
        warnings.warn(
            f"no known inputs after the last burn-in frame for {held} of {B} trajectories: their last "
            "reading is held to the horizon",
            RuntimeWarning,
            stacklevel=3,
        )
    return Readings(u, t_u)
