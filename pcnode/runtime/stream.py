"""`pcnode.Stream` in numpy around an exported model: the same decisions, no PyTorch.

The host loop is the eager stream's (see `pcnode.stream`): each row keeps its segment
(the state `h` that opened it, its line `seg`, the anchor reading and the inputs it
read); a reading is predicted as `anchor_x + read(seg, t - anchor_t)`, and the row
updates, `update(h, t - anchor_t, [x, u])`, in the burn-in, where the model does not
jump, where the reading departs from the prediction past the rule's threshold (or from
the event option's line), or where an input moved past the input threshold. Clocks are
float64, values float32. The state dicts of the two are interchangeable for one model.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, DataError
from .model import Exported
from .rollout import F32, Rollout, rollout_from, with_inputs

STATE_KEYS = ("h", "seg", "anchor_t", "anchor_x", "u_read", "heading", "headed", "readings", "last_t", "due")


class Stream:
    """B independent streams through an exported model; the interface of `pcnode.Stream`
    with numpy arrays: `observe`, `at`, `next_update_time`, `forecast`, `reset`, `state`,
    `from_state`. `predicted` (B, state_dim) holds each row's prediction of its last
    reading, made before reading it (NaN for a first reading)."""

    def __init__(self, model: Exported, batch: int = 1):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"`batch` must be a positive number of streams, got {batch!r}")
        self.model, self.rule, self.batch = model, model.rule, batch
        self.fingerprint = model.fingerprint
        self.reset()

    def observe(self, t, x, u=None, rows=None) -> np.ndarray:
        """Read one reading per row (times `t`, a number or (R,); readings `x` (R, state_dim);
        known inputs `u` (R, input_dim)) -> (R,) bool, where the model updated. Refused
        input (DataError) changes nothing."""
        m, rule = self.model, self.rule
        rows = self._rows(rows)
        t = self._times(t, len(rows))
        x = self._frame(x, len(rows), m.state_dim, "reading")
        u = self._inputs(u, len(rows))
        seen = self.readings[rows] > 0
        late = np.flatnonzero(seen & ~(t > self.last_t[rows]))
        if len(late):
            r, k = rows[late[0]], late[0]
            raise DataError(
                f"stream {r}'s reading at time {t[k]:g} does not come after its last reading "
                f"({self.last_t[r]:g}); give each stream's readings in increasing time"
            )
        span = np.where(seen, t - self.anchor_t[rows], 0.0).astype(F32)[:, None]
        anchor_x = self.anchor_x[rows]
        pred = np.where(seen[:, None], anchor_x + m.read(self.seg[rows], span), F32(math.nan))
        update = self.readings[rows] < rule.n_burn
        if rule.jumps:
            keep = m.scored_dims
            miss = (pred - x)[:, :keep]
            err = (miss * miss).sum(-1) / keep  # NaN for a first reading, which updates anyway
            away = None
            if rule.event_threshold is not None:
                off = (x - anchor_x - span * self.heading[rows])[:, :keep]
                away = np.where(self.headed[rows], (off * off).sum(-1) / keep, F32(0))
            update |= ~rule.keeps(err, away)
            if u is not None:
                update |= np.abs(u - self.u_read[rows]).max(-1) > rule.input_threshold
        else:
            update = np.ones_like(update)
        held = np.flatnonzero(~update & ~self.headed[rows])
        if len(held):
            r = rows[held]
            self.heading[r] = (x[held] - anchor_x[held]) / span[held]
            self.headed[r] = True
        if update.any():
            r = rows[update]
            h, seg, dt = m.update(self.h[r], span[update], with_inputs(x[update], None if u is None else u[update]))
            self.h[r], self.seg[r] = h, seg
            self.anchor_t[r], self.anchor_x[r] = t[update], x[update]
            if u is not None:
                self.u_read[r] = u[update]
            self.headed[r] = False
            self.due[r] = t[update] + dt[:, 0]
        self.last_t[rows] = t
        self.readings[rows] += 1
        self.predicted[rows] = pred
        return update

    def at(self, t, rows=None) -> np.ndarray:
        """The prediction off each row's current segment at times `t`: a number or (R,)
        -> (R, state_dim); (R, Q) -> (R, Q, state_dim); at or after each row's anchor."""
        rows = self._rows(rows)
        self._need_readings(rows)
        q = self._numbers(t, np.float64, "times")
        flat = q.ndim <= 1
        q = np.broadcast_to(q, (len(rows),)) if q.ndim == 0 else q
        q = q[:, None] if q.ndim == 1 else q
        if q.ndim != 2 or len(q) != len(rows):
            raise DataError(f"times must be a number, ({len(rows)},) or ({len(rows)}, Q); got {np.shape(t)}")
        if not np.isfinite(q).all():
            raise DataError("times must be finite")
        early = np.flatnonzero((q < self.anchor_t[rows][:, None]).any(-1))
        if len(early):
            r = rows[early[0]]
            raise DataError(
                f"stream {r}'s segment opened at time {self.anchor_t[r]:g}; read it at that time or "
                "later (earlier readings are in the data)"
            )
        R, Q = q.shape
        span = (q - self.anchor_t[rows][:, None]).astype(F32).reshape(-1, 1)
        change = self.model.read(np.repeat(self.seg[rows], Q, 0), span).reshape(R, Q, -1)
        out = self.anchor_x[rows][:, None] + change
        return out[:, 0] if flat else out

    @property
    def next_update_time(self) -> np.ndarray:
        """(B,) float64: when each row's segment ends if no reading departs from it first."""
        return self.due.copy()

    def forecast(self, horizon, u=None, t_u=None, rows=None, max_updates: int | None = None) -> Rollout:
        """A rollout from each row's current segment up to `horizon`, as `pcnode.Stream.forecast`."""
        rows = self._rows(rows)
        self._need_readings(rows)
        start = self.anchor_t[rows].astype(F32)
        dt = (self.due[rows] - self.anchor_t[rows]).astype(F32)[:, None]
        given = {}
        if self.model.input_dim:
            if (u is None) != (t_u is None):
                raise DataError("give the future known inputs `u` together with their times `t_u`")
            first, first_t = self.u_read[rows][:, None], start[:, None]
            if u is not None:
                u, t_u = self._numbers(u, F32, "`u`"), self._numbers(t_u, F32, "`t_u`")
                if u.ndim != 3 or t_u.ndim != 2:
                    raise DataError(
                        f"give `u` shaped ({len(rows)}, readings, {self.model.input_dim}) and `t_u` "
                        f"({len(rows)}, readings)"
                    )
                first, first_t = np.concatenate([first, u], 1), np.concatenate([first_t, t_u], 1)
            given = {"u": first, "t_u": first_t}
        elif u is not None or t_u is not None:
            raise DataError(
                "known inputs were given but the model reads none (its input_dim is 0); leave out `u` and `t_u`"
            )
        return rollout_from(
            self.model,
            self.h[rows],
            self.seg[rows],
            dt,
            self.anchor_x[rows],
            start,
            horizon,
            max_updates=max_updates,
            **given,
        )

    def reset(self, rows=None) -> None:
        """Forget everything the rows (default all) have read."""
        m, B = self.model, self.batch
        if rows is None:
            self.h = np.zeros((B, m.state_size), F32)
            self.seg = np.zeros((B, m.segment_size), F32)
            self.anchor_x = np.zeros((B, m.state_dim), F32)
            self.heading = np.zeros((B, m.state_dim), F32)
            self.u_read = np.zeros((B, m.input_dim), F32)
            self.predicted = np.full((B, m.state_dim), np.nan, F32)
            self.anchor_t = np.zeros(B)
            self.last_t = np.full(B, -np.inf)
            self.due = np.full(B, np.nan)
            self.headed = np.zeros(B, bool)
            self.readings = np.zeros(B, np.int64)
            return
        rows = self._rows(rows)
        for name in ("h", "seg", "anchor_x", "heading", "u_read", "anchor_t", "readings"):
            getattr(self, name)[rows] = 0
        self.headed[rows] = False
        self.last_t[rows], self.due[rows], self.predicted[rows] = -np.inf, np.nan, np.nan

    def state(self) -> dict:
        """The state as numpy arrays (copies) and the model's fingerprint under "model"."""
        return {**{name: getattr(self, name).copy() for name in STATE_KEYS}, "model": self.fingerprint}

    @classmethod
    def from_state(cls, model: Exported, state: dict) -> Stream:
        """A stream of `model` that carries on from `state` (this class's or `pcnode.Stream`'s,
        of the same model); DataError if another model wrote it or it is malformed."""
        missing = [k for k in (*STATE_KEYS, "model") if not isinstance(state, dict) or k not in state]
        if missing:
            raise DataError(f"not a stream state: it lacks {', '.join(missing)}; save one with `Stream.state()`")
        if str(state["model"]) != model.fingerprint:
            raise DataError(
                f"this stream state was written by another model (fingerprint {str(state['model'])[:12]}, "
                f"this model's {model.fingerprint[:12]}); resume it with the model that wrote it"
            )
        readings = np.asarray(state["readings"])
        if readings.ndim != 1 or len(readings) < 1:
            raise DataError(f"the stream state's `readings` must be shaped (batch,); got {readings.shape}")
        stream = cls(model, len(readings))
        for name in STATE_KEYS:
            mine = getattr(stream, name)
            value = stream._numbers(state[name], mine.dtype, f"the stream state's `{name}`")
            if value.shape != mine.shape:
                raise DataError(
                    f"the stream state's `{name}` is shaped {value.shape}; this model's streams need {mine.shape}"
                )
            setattr(stream, name, value.copy())
        if (stream.readings < 0).any() or not np.isfinite(stream.h).all():
            raise DataError("the stream state holds negative reading counts or non-finite states; it is damaged")
        return stream

    def _rows(self, rows) -> np.ndarray:
        every = np.arange(self.batch)
        if rows is None:
            return every
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (self.batch,):
                raise DataError(f"a mask of rows must be shaped ({self.batch},); got {rows.shape}")
            return every[rows]
        if (
            not np.issubdtype(rows.dtype, np.integer)
            or rows.ndim != 1
            or len(rows) == 0
            or (rows < 0).any()
            or (rows >= self.batch).any()
            or len(np.unique(rows)) != len(rows)
        ):
            raise DataError(f"rows must be distinct stream indices in [0, {self.batch}) or a ({self.batch},) bool mask")
        return rows

    def _need_readings(self, rows: np.ndarray) -> None:
        fresh = np.flatnonzero(self.readings[rows] == 0)
        if len(fresh):
            raise DataError(f"stream {rows[fresh[0]]} has read nothing yet; `observe` a reading first")

    @staticmethod
    def _numbers(value, dtype, what: str) -> np.ndarray:
        try:
            return np.asarray(value, dtype=dtype)
        except (TypeError, ValueError):
            raise DataError(f"{what} must be numbers (an array or a list)") from None

    def _times(self, t, R: int) -> np.ndarray:
        t = self._numbers(t, np.float64, "times")
        t = np.full(R, t) if t.ndim == 0 else t
        if t.shape != (R,):
            raise DataError(f"give one time per stream read: a number or shaped ({R},); got {t.shape}")
        if not np.isfinite(t).all():
            raise DataError("reading times must be finite numbers")
        return t

    def _frame(self, x, R: int, width: int, what: str) -> np.ndarray:
        x = self._numbers(x, F32, f"the {what}s")
        x = x[None] if x.ndim == 1 and R == 1 else x
        if x.shape != (R, width):
            raise DataError(
                f"the {what}s must be shaped ({R}, {width}): one row of {width} numbers per stream read; got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise DataError(f"a {what} holds NaN or inf; fill the gap or skip that reading")
        return x

    def _inputs(self, u, R: int) -> np.ndarray | None:
        U = self.model.input_dim
        if not U:
            if u is not None:
                raise DataError("known inputs were given but the model reads none (its input_dim is 0); leave out `u`")
            return None
        if u is None:
            raise DataError(f"the model reads {U} known input(s) with every reading; give `u` shaped ({R}, {U})")
        return self._frame(u, R, U, "known input")
