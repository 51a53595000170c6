"""A trained model run where the data arrives: readings one at a time, an update only on news.

A `Stream` holds B independent streams, each with its own clock. Every row keeps the
segment it is on: the state `h` of the update that opened it, the reading that update
read (its time and frame: the *anchor*) and the inputs it read. Between updates the
prediction at time `t` is read off that segment,

    predicted(t) = anchor_x + model.along(model.segment(h), t - anchor_t)

(the decoder predicts the change since the anchor), at the cost of the decoder alone.

When a reading `x` arrives at time `t` a row updates, reading `x` itself,

    h = model.update(model.encode(with_inputs(x, u)), model.advance(h, t - anchor_t))

and `x` becomes its new anchor, where

- it is one of the row's first `rule.n_burn` readings (the burn-in, as in training and
  rollouts), or the model does not choose its updates (`rule.jumps` false: the RNN and
  ODE-RNN update at every reading);
- the reading departs from the prediction: `rule.keeps(err, away)` is false, with `err`
  the mean squared error of `predicted(t)` over `model.scored_dims` and, with the event
  option, `away` the reading's mean squared distance from the straight line through the
  anchor with the velocity of the first reading after it (as teacher forcing draws it);
- a known input moved more than `rule.input_threshold` from the one the segment read.

Training asks the same question of each frame (`pcnode.forcing`), with one difference a
stream cannot avoid: teacher forcing sees the next frame, and when the stretched segment
fails there it updates from the frame before; a stream updates at the reading that departs.

The dt head says when the current segment ends if no reading arrives
(`next_update_time`); `at(t)` reads the segment at any later time without an update, and
`forecast(horizon)` rolls the model out from its current state, updating where a
rollout would. A stream's state is a dict of plain tensors (`state`, `from_state`),
stamped with the model's fingerprint so that it resumes only with the model that wrote it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import torch
from torch import Tensor

from .errors import ConfigError, DataError
from .forcing import input_event
from .model import SequenceModel, with_inputs
from .rollout import Rollout, hold_aux, rollout_from
from .segments import SegmentRule

STATE_KEYS = ("h", "seg", "anchor_t", "anchor_x", "u_read", "heading", "headed", "readings", "last_t", "due")


def fingerprint(model: SequenceModel) -> str:
    """A hash of the model's config and weights (names, dtypes, shapes, values): two models
    share it only if they compute the same thing. A stream's state carries it."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(model.config), sort_keys=True).encode())
    for name, value in sorted(model.state_dict().items()):
        value = value.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Stream:
    """B independent streams of readings through one trained model (see the module docstring).

    Main methods: `observe(t, x[, u])` reads a reading per row and says which rows
    updated; `at(t)` the prediction at later times, without an update;
    `next_update_time` when each row's segment ends; `forecast(horizon)` a rollout from
    the current state; `reset()`; `state()` and `Stream.from_state(model, state)`.

    Args:
        model: a trained model; its segment rule (`model.rule`, the run's) decides where
            it updates, unless `rule` is given.
        batch: B, the number of streams.
        rule: a segment rule for this stream instead of the model's.

    Attributes, per row: `predicted` (B, state_dim), its prediction of its last reading,
    made before reading it (NaN for a first reading); `readings` (B,) how many it read;
    and the segment it is on: `h` (B, state_size) the state that opened it, `anchor_t`
    (B,) and `anchor_x` (B, state_dim) the reading that update read, `u_read` the inputs.

    Times are real numbers of frames (for a run trained on your series, your time units
    divided by its `time_scale`), each row on its own clock; readings of a row must
    come in increasing time. Every method takes `rows`, the streams it concerns (indices
    or a (B,) bool mask; default all), so that rows can read at different moments.

        >>> stream = Stream(pcnode.pretrained.load("billiards2d-pcode"))   # doctest: +SKIP
        >>> for t, frame in enumerate(readings):                         # doctest: +SKIP
        ...     updated = stream.observe(t, frame)     # (1,) bool
    """

    def __init__(self, model: SequenceModel, batch: int = 1, rule: SegmentRule | None = None):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"`batch` must be a positive number of streams, got {batch!r}")
        self.model = model
        self.rule = (rule or model.rule).bind(model)
        if self.rule.jumps and self.rule.threshold is None:
            raise ConfigError(
                "the model's segment rule has no skip threshold, so a stream cannot tell news from "
                "noise; stream a trained run (its rule holds one) or give `rule` with a threshold"
            )
        self.batch = batch
        self.fingerprint = fingerprint(model)
        weight = next(model.parameters())
        self._dtype, self._device = weight.dtype, weight.device
        with torch.no_grad():
            self._seg_size = model.segment(weight.new_zeros(1, model.state_size)).shape[-1]
        self.reset()

    # ---- reading -------------------------------------------------------------------------------------

    @torch.no_grad()
    def observe(self, t, x, u=None, rows=None) -> Tensor:
        """Read one reading per row; update the rows where it carries news.

        Args:
            t: the readings' times (frames): a number, or (R,) one per row; each after
                the row's last reading.
            x: (R, state_dim) the readings (a single row may give (state_dim,)).
            u: (R, input_dim) the known inputs in force at `t`, for a model that reads them.
            rows: which R streams read (default all B).

        Returns (R,) bool: where the model updated. `predicted` holds what each row
        predicted for this reading before reading it. Nothing changes if the input is
        refused (DataError).
        """
        rows = self._rows(rows)
        t = self._times(t, rows)
        x = self._frame(x, len(rows), self.model.config.state_dim, "reading")
        u = self._inputs(u, len(rows))
        seen = self.readings[rows] > 0
        late = (seen & ~(t > self.last_t[rows])).nonzero()
        if len(late):
            r, k = int(rows[late[0, 0]]), late[0, 0]
            raise DataError(
                f"stream {r}'s reading at time {t[k].item():g} does not come after its last reading "
                f"({self.last_t[r].item():g}); give each stream's readings in increasing time"
            )
        span = torch.where(seen, t - self.anchor_t[rows], 0.0).to(self._dtype).unsqueeze(-1)
        anchor_x = self.anchor_x[rows]
        pred = anchor_x + hold_aux(self.model, self.model.along(self.seg[rows], span))
        pred = torch.where(seen.unsqueeze(-1), pred, math.nan)
        update = self.readings[rows] < self.rule.n_burn
        if self.rule.jumps:
            keep = self.model.scored_dims
            err = (pred - x)[:, :keep].pow(2).mean(-1)
            away = None
            if self.rule.event_threshold is not None:
                line = anchor_x + span * self.heading[rows]
                away = torch.where(self.headed[rows], (x - line)[:, :keep].pow(2).mean(-1), 0.0)
            update |= ~self.rule.keeps(err, away)
            if u is not None:
                update |= input_event(u, self.u_read[rows], self.rule.input_threshold)
        else:
            update = torch.ones_like(update)
        # Everything above only reads the state; below it changes.
        held = (~update & ~self.headed[rows]).nonzero().squeeze(-1)
        if len(held):  # the first reading after an anchor fixes the event option's line
            r = rows[held]
            self.heading[r] = (x[held] - anchor_x[held]) / span[held]
            self.headed[r] = True
        if update.any():
            self._update(
                rows[update], t[update], x[update], None if u is None else u[update], span[update], seen[update]
            )
        self.last_t[rows] = t
        self.readings[rows] += 1
        self.predicted[rows] = pred
        return update

    def _update(self, rows: Tensor, t: Tensor, x: Tensor, u: Tensor | None, span: Tensor, seen: Tensor) -> None:
        """The cell update of `rows` from their readings: each opens a new segment there."""
        model = self.model
        moved = self.h[rows]
        if seen.any():  # a row's first update starts from the zero state, as a rollout's burn-in does
            moved[seen] = model.advance(moved[seen], span[seen])
        h = model.update(model.encode(with_inputs(x, u)), moved)
        self.h[rows] = h
        self.seg[rows] = model.segment(h)
        self.anchor_t[rows], self.anchor_x[rows] = t, x
        if u is not None:
            self.u_read[rows] = u
        self.headed[rows] = False
        self.due[rows] = t + self.rule.wait(model, h).squeeze(-1).double()

    @torch.no_grad()
    def at(self, t, rows=None) -> Tensor:
        """The prediction at times `t` off each row's current segment, without an update.

        Args:
            t: a number or (R,) -> (R, state_dim); or (R, Q), Q times per row ->
                (R, Q, state_dim). Times at or after the reading that opened the row's
                segment (its anchor; after `next_update_time` the line runs on past the
                span the model trusted: `forecast` updates there instead).
        """
        rows = self._rows(rows)
        self._need_readings(rows)
        t = self._tensor(t, torch.float64, "times")
        if t.ndim <= 1:
            t = t.expand(len(rows)) if t.ndim == 0 else t
            if t.shape != (len(rows),):
                raise DataError(f"times must be a number, ({len(rows)},) or ({len(rows)}, Q); got {tuple(t.shape)}")
            return self._line(rows, t.unsqueeze(-1))[:, 0]
        if t.ndim != 2 or t.shape[0] != len(rows):
            raise DataError(f"times must be a number, ({len(rows)},) or ({len(rows)}, Q); got {tuple(t.shape)}")
        return self._line(rows, t)

    def _line(self, rows: Tensor, t: Tensor) -> Tensor:
        """Each row's segment read at its times `t` (R, Q) -> (R, Q, state_dim)."""
        if not torch.isfinite(t).all():
            raise DataError("times must be finite")
        early = (t < self.anchor_t[rows].unsqueeze(-1)).any(-1).nonzero()
        if len(early):
            r = int(rows[early[0, 0]])
            raise DataError(
                f"stream {r}'s segment opened at time {self.anchor_t[r].item():g}; read it at that "
                "time or later (earlier readings are in the data)"
            )
        span = (t - self.anchor_t[rows].unsqueeze(-1)).to(self._dtype).unsqueeze(-1)
        seg = self.seg[rows].unsqueeze(1).expand(-1, t.shape[1], -1)
        return self.anchor_x[rows].unsqueeze(1) + hold_aux(self.model, self.model.along(seg, span))

    @property
    def next_update_time(self) -> Tensor:
        """(B,) float64: when each row's segment ends if no reading departs from it first
        (the time of its last update plus the rule's bounded wait); NaN before a row's
        first reading."""
        return self.due.clone()

    @torch.no_grad()
    def forecast(
        self,
        horizon: float | Tensor,
        u: Tensor | None = None,
        t_u: Tensor | None = None,
        rows=None,
        max_updates: int | None = None,
    ) -> Rollout:
        """Roll the model out from each row's current segment up to `horizon` (a time after
        its last update: a number or (R,)), updating where a rollout would.

        A model with known inputs reads the inputs its last update read until the first of
        `u` (R, Q, input_dim) at times `t_u` (R, Q) (frames, after that update): the
        future inputs, if known; without them the last are held (with a RuntimeWarning).

        Returns a `pcnode.Rollout` whose first step starts at each row's last update; the
        stream itself does not change.
        """
        rows = self._rows(rows)
        self._need_readings(rows)
        start = self.anchor_t[rows].to(self._dtype)
        given = {}
        if self.model.config.input_dim:
            if (u is None) != (t_u is None):
                raise DataError("give the future known inputs `u` together with their times `t_u`")
            first, first_t = self.u_read[rows].unsqueeze(1), start.unsqueeze(1)
            if u is not None:
                u, t_u = self._tensor(u, self._dtype, "`u`"), self._tensor(t_u, self._dtype, "`t_u`")
                if u.ndim != 3 or t_u.ndim != 2:
                    raise DataError(
                        f"give `u` shaped ({len(rows)}, readings, {self.model.config.input_dim}) and "
                        f"`t_u` ({len(rows)}, readings)"
                    )
                first, first_t = torch.cat([first, u], 1), torch.cat([first_t, t_u], 1)
            given = {"u": first, "t_u": first_t}
        elif u is not None or t_u is not None:
            raise DataError(
                "known inputs were given but the model reads none (its input_dim is 0); leave out `u` and `t_u`"
            )
        return rollout_from(
            self.model,
            self.h[rows],
            self.anchor_x[rows],
            start,
            horizon,
            rule=self.rule,
            max_updates=max_updates,
            **given,
        )

    # ---- state ---------------------------------------------------------------------------------------

    def reset(self, rows=None) -> None:
        """Forget everything the rows (default all) have read: they start over, burn-in included."""
        if rows is None:
            B, c = self.batch, self.model.config
            dtype, device, clock = self._dtype, self._device, torch.float64
            self.h = torch.zeros(B, self.model.state_size, dtype=dtype, device=device)
            self.seg = torch.zeros(B, self._seg_size, dtype=dtype, device=device)
            self.anchor_x = torch.zeros(B, c.state_dim, dtype=dtype, device=device)
            self.heading = torch.zeros(B, c.state_dim, dtype=dtype, device=device)
            self.u_read = torch.zeros(B, c.input_dim, dtype=dtype, device=device)
            self.predicted = torch.full((B, c.state_dim), math.nan, dtype=dtype, device=device)
            self.anchor_t = torch.zeros(B, dtype=clock, device=device)
            self.last_t = torch.full((B,), -math.inf, dtype=clock, device=device)
            self.due = torch.full((B,), math.nan, dtype=clock, device=device)
            self.headed = torch.zeros(B, dtype=torch.bool, device=self._device)
            self.readings = torch.zeros(B, dtype=torch.long, device=self._device)
            return
        rows = self._rows(rows)
        for name in ("h", "seg", "anchor_x", "heading", "u_read", "anchor_t", "readings"):
            getattr(self, name)[rows] = 0
        self.headed[rows] = False
        self.last_t[rows], self.due[rows], self.predicted[rows] = -math.inf, math.nan, math.nan

    def state(self) -> dict:
        """The stream's state as plain tensors (copies: each row's segment, `h` and its line
        `seg`, its anchor, inputs read, reading count, last time, `next_update_time` and the
        event option's heading), and the model's fingerprint under "model": what
        `from_state` resumes from. Save it with safetensors (the fingerprint
        in the metadata) or `numpy.savez`; `pcnode.runtime.Stream` reads the same dict."""
        out = {name: getattr(self, name).clone() for name in STATE_KEYS}
        out["model"] = self.fingerprint
        return out

    @classmethod
    def from_state(cls, model: SequenceModel, state: dict, rule: SegmentRule | None = None) -> Stream:
        """A stream of `model` that carries on from `state` (`Stream.state()`, or a
        `pcnode.runtime.Stream`'s state of the same model's export). Refused with a
        DataError if the state was written by another model or is malformed."""
        if not isinstance(state, dict) or any(k not in state for k in (*STATE_KEYS, "model")):
            missing = [k for k in (*STATE_KEYS, "model") if not isinstance(state, dict) or k not in state]
            raise DataError(f"not a stream state: it lacks {', '.join(missing)}; save one with `Stream.state()`")
        own = fingerprint(model)
        if str(state["model"]) != own:
            raise DataError(
                f"this stream state was written by another model (fingerprint {str(state['model'])[:12]}, "
                f"this model's {own[:12]}); resume it with the model that wrote it"
            )
        try:
            readings = torch.as_tensor(state["readings"])
        except (TypeError, ValueError, RuntimeError):
            raise DataError("the stream state's `readings` is not a tensor of counts") from None
        if readings.ndim != 1 or len(readings) < 1:
            raise DataError(f"the stream state's `readings` must be shaped (batch,); got {tuple(readings.shape)}")
        stream = cls(model, len(readings), rule)
        for name in STATE_KEYS:
            mine = getattr(stream, name)
            try:
                value = torch.as_tensor(state[name]).to(dtype=mine.dtype, device=mine.device)
            except (TypeError, ValueError, RuntimeError):
                raise DataError(f"the stream state's `{name}` is not a tensor") from None
            if value.shape != mine.shape:
                raise DataError(
                    f"the stream state's `{name}` is shaped {tuple(value.shape)}; this model's streams "
                    f"need {tuple(mine.shape)}"
                )
            setattr(stream, name, value.clone())
        if (stream.readings < 0).any() or not torch.isfinite(stream.h).all():
            raise DataError("the stream state holds negative reading counts or non-finite states; it is damaged")
        return stream

    # ---- checks --------------------------------------------------------------------------------------

    def _rows(self, rows) -> Tensor:
        """The rows an operation concerns as (R,) indices, refusing anything else."""
        every = torch.arange(self.batch, device=self._device)
        if rows is None:
            return every
        rows = torch.as_tensor(self._tensor(rows, None, "rows"), device=self._device)
        if rows.dtype == torch.bool:
            if rows.shape != (self.batch,):
                raise DataError(f"a mask of rows must be shaped ({self.batch},); got {tuple(rows.shape)}")
            return every[rows]
        if (
            rows.is_floating_point()
            or rows.is_complex()
            or rows.ndim != 1
            or len(rows) == 0
            or (rows < 0).any()
            or (rows >= self.batch).any()
            or len(rows.unique()) != len(rows)
        ):
            raise DataError(f"rows must be distinct stream indices in [0, {self.batch}) or a ({self.batch},) bool mask")
        return rows

    def _need_readings(self, rows: Tensor) -> None:
        fresh = (self.readings[rows] == 0).nonzero()
        if len(fresh):
            raise DataError(f"stream {rows[fresh[0, 0]].item()} has read nothing yet; `observe` a reading first")

    def _tensor(self, value, dtype, what: str) -> Tensor:
        try:
            return torch.as_tensor(value, dtype=dtype, device=self._device)
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"{what} must be numbers (a tensor, an array or a list)") from None

    def _times(self, t, rows: Tensor) -> Tensor:
        t = self._tensor(t, torch.float64, "times")
        if t.ndim == 0:
            t = t.expand(len(rows))
        if t.shape != (len(rows),):
            raise DataError(f"give one time per stream read: a number or shaped ({len(rows)},); got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise DataError("reading times must be finite numbers")
        return t

    def _frame(self, x, R: int, width: int, what: str) -> Tensor:
        x = self._tensor(x, self._dtype, f"the {what}s")
        if x.ndim == 1 and R == 1:
            x = x.unsqueeze(0)
        if x.shape != (R, width):
            raise DataError(
                f"the {what}s must be shaped ({R}, {width}): one row of {width} numbers per stream "
                f"read; got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise DataError(f"a {what} holds NaN or inf; fill the gap or skip that reading")
        return x

    def _inputs(self, u, R: int) -> Tensor | None:
        U = self.model.config.input_dim
        if not U:
            if u is not None:
                raise DataError("known inputs were given but the model reads none (its input_dim is 0); leave out `u`")
            return None
        if u is None:
            raise DataError(f"the model reads {U} known input(s) with every reading; give `u` shaped ({R}, {U})")
        return self._frame(u, R, U, "known input")
