"""Autoregressive rollouts with a clock per trajectory, and queries at any real time.

A rollout reads the burn-in frames, then repeats: update the cell from the current
(predicted) frame, ask the model how long to wait (`dt`), predict the frame `dt`
later, move the clock. Each trajectory stops as soon as its clock reaches the
horizon, so a PC-ODE that jumps spends few updates and nothing is computed for
trajectories that are done.

The latent path is known between updates, so `Rollout.at(t)` decodes the state at
any real time `t` (in frames), finer than the data if asked.

Known inputs (a model with `input_dim > 0`) are given to a rollout as readings with
their times, each reading in force until the next: an update at time `t` reads the last
reading at or before `t`, so the state is predicted from the true future inputs. A
change of input is an event: a PC-ODE's jump ends at the next reading where an input
moves more than its rule's `input_threshold` from the value its last update read, and it updates
there, as teacher forcing trains it to. Given no reading after the last burn-in frame,
a rollout holds the last one (and warns). Auxiliary dims of runs from before inputs
existed (`aux_dims`) are held at their last observed value: no loss ever trained the
decoder's output for them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import torch
from torch import Tensor

from .errors import ConfigError, DataError
from .model import SequenceModel, in_chunks, with_inputs
from .readings import Readings, check_readings
from .segments import SegmentRule


@dataclass
class Rollout:
    """The steps of a batch of rollouts, padded to the longest.

    Step `k` of trajectory `b` started at time `t[b, k]` from frame `x[b, k]` with
    state `h[b, k]` (after its update) and lasted `dt[b, k]` frames. The first
    `n_burn - 1` steps are teacher-forced burn-in steps; `updates[b]` counts the
    steps from the last burn-in frame on, the ones the model chose. Padding steps
    have `t = inf`. For a model with known inputs, `u[b, k]` are the inputs step `k`'s
    update read (None for a model without). `nfe` counts the vector-field evaluations
    over the batch and `solver_steps` the accepted solver steps per trajectory (ODE-RNN;
    0 for models that need no solver).

    Shapes: t, dt (B, K); x (B, K, state_dim); h (B, K, model.state_size); updates (B,);
    u (B, K, input_dim).
    """

    model: SequenceModel
    t: Tensor
    dt: Tensor
    x: Tensor
    h: Tensor
    updates: Tensor
    n_burn: int
    horizon: float
    nfe: int
    u: Tensor | None = None
    solver_steps: float = 0.0

    @property
    def mean_dt(self) -> float:
        """Mean span between the updates the model chose, over the batch."""
        chosen = self.dt[:, self.n_burn - 1 :]
        return chosen[torch.isfinite(self.t[:, self.n_burn - 1 :])].mean().item()

    @torch.no_grad()
    def at(self, t: Tensor | float, offset: float = 0.0) -> Tensor:
        """Decode the rollout at real times `t` (frames).

        Args:
            t: a scalar -> (B, state_dim); a grid (Q,) shared by every trajectory ->
                (B, Q, state_dim); or (B, Q) one row of times per trajectory -> (B, Q, state_dim).
            offset: read each time from the last step that started more than `offset`
                frames before it. With the default 0, a time in `(t_k, t_k + dt_k]` is read
                from step `k`, and a query at the end of a step after the burn-in returns
                exactly the frame that step predicted. (The authors read their rollouts
                with an offset of 0.5.)

        Times before the first step are read from the first step.
        """
        squeeze = torch.as_tensor(t).ndim == 0
        rows, k, span = self._locate(t, offset)
        K = self.t.shape[1]
        out = self.x[rows, (k + 1).clamp(max=K - 1)]
        # A time at the end of a step is the frame the rollout predicted there and read next;
        # only the others are decoded (a model that steps frame by frame decodes nothing again).
        stored = (k + 1 >= self.n_burn) & (k + 1 < K) & (span.squeeze(-1) == self.dt[rows, k])
        stored &= torch.isfinite(self.t[rows, (k + 1).clamp(max=K - 1)])
        todo = (~stored).nonzero(as_tuple=True)
        if len(todo[0]):
            step = rows.expand_as(k)[todo] * K + k[todo]
            read = hold_aux(
                self.model,
                in_chunks(lambda s, dt: self.model.along(self._segments.index_select(0, s), dt), step, span[todo]),
            )
            out[todo] = self.x[rows.expand_as(k)[todo], k[todo]] + read
        return out[:, 0] if squeeze else out

    @cached_property
    def _segments(self) -> Tensor:
        """`model.segment` of every step, flattened to (B * K, S): computed once however many
        times are read from a step."""
        return self.model.segment(self.h).flatten(0, 1)

    @torch.no_grad()
    def latent(self, t: Tensor | float) -> Tensor:
        """The hidden state at real times `t`, shaped like `at`'s output with `latent` last.

        For a PC-ODE this is `advance(h_k, t - t_k)`: a straight line between updates.
        """
        squeeze = torch.as_tensor(t).ndim == 0
        rows, k, span = self._locate(t)
        out = self.model.advance(self.h[rows, k], span)
        return out[:, 0] if squeeze else out

    def _locate(self, t, offset: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """For query times, the step each is read from: (rows (B,1), step (B,Q), span (B,Q,1))."""
        t = torch.as_tensor(t, dtype=self.t.dtype, device=self.t.device)
        B = self.t.shape[0]
        if t.ndim == 0:
            t = t.reshape(1)
        if t.ndim == 1:
            t = t.expand(B, -1)
        if t.ndim != 2 or t.shape[0] != B:
            raise DataError(f"query times must be a scalar, (Q,) or ({B}, Q); got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise DataError("query times must be finite")
        k = (torch.searchsorted(self.t.contiguous(), (t - offset).contiguous(), right=False) - 1).clamp(min=0)
        rows = torch.arange(B, device=t.device).unsqueeze(-1)
        return rows, k, (t - self.t[rows, k]).unsqueeze(-1)

    def select(self, rows: Tensor) -> Rollout:
        """The rollouts of the trajectories `rows` (indices or a bool mask over the batch)."""
        return replace(
            self,
            t=self.t[rows],
            dt=self.dt[rows],
            x=self.x[rows],
            h=self.h[rows],
            updates=self.updates[rows],
            u=None if self.u is None else self.u[rows],
        )

    def frames(self, start: int | None = None) -> Tensor:
        """The rollout read at the integer frame times `start..horizon`: (B, frames, state_dim)."""
        first = self.n_burn if start is None else start
        grid = torch.arange(first, math.floor(self.horizon) + 1, dtype=self.t.dtype, device=self.t.device)
        return self.at(grid)


def hold_aux(model: SequenceModel, change: Tensor) -> Tensor:
    """A predicted change (..., state_dim) with the auxiliary dims of an old run (`aux_dims`)
    set to no change: those dims hold the value they were last observed at."""
    aux = model.config.aux_dims
    if aux:
        change = change.clone()
        change[..., change.shape[-1] - aux :] = 0.0
    return change


@torch.no_grad()
def rollout(
    model: SequenceModel,
    x_burn: Tensor,
    horizon: float | Tensor,
    max_updates: int | None = None,
    t_burn: Tensor | None = None,
    u: Tensor | None = None,
    t_u: Tensor | None = None,
    rule: SegmentRule | None = None,
) -> Rollout:
    """Roll `model` out from burn-in frames until `horizon`.

    Args:
        x_burn: (B, n_burn, state_dim) observed frames at times 0, 1, ..., n_burn-1.
        horizon: the time each trajectory's clock must reach, on the burn-in's clock
            (frames, counted from the first burn-in frame): a number, or (B,) one per
            trajectory. A PC-ODE's jump that would stop less than the rule's `min_dt`
            short of it runs on to it: no update is made for a last stretch shorter than
            any step the model may choose.
        max_updates: safety bound on model-chosen updates per trajectory; by default
            enough for `min_dt`-sized steps (and one per input reading). Hitting it warns.
        t_burn: (B, n_burn) real times of the burn-in frames, strictly increasing
            along each row, for unevenly sampled data; None means 0, 1, ..., n_burn-1.
        u: (B, Q, input_dim) known inputs, for a model that reads them (`input_dim > 0`):
            Q readings per trajectory, each in force until the next. Every update (the
            burn-in's too) reads the last reading at or before its time, so readings must
            begin at or before the first burn-in frame; a PC-ODE's jump ends at the next
            reading where an input moves more than the rule's `input_threshold` from
            the value its last update read. With no reading after the last burn-in frame
            the last one is held to the horizon, with a RuntimeWarning.
        t_u: (B, Q) the readings' times, non-decreasing along each row, on the burn-in's
            clock (frames); None means 0, 1, ..., Q-1 (one reading per frame from frame 0).
        rule: where the model's updates happen (default `model.rule`, the run's).

    Returns a `Rollout`; query it with `.at(t)`.
    """
    rule = (rule or model.rule).bind(model)
    t_burn, hz = _check_burn(model, x_burn, horizon, t_burn, max_updates)
    readings = check_readings(model, u, t_u, t_burn)
    events = readings is not None and bool(rule.jumps)  # models that step frame by frame read inputs as they come
    if max_updates is None:
        max_updates = math.ceil((hz - t_burn[:, -1]).max().item() / rule.min_dt) + 1
        if readings is not None and events:  # each reading may end a jump early
            max_updates += int((readings.t > t_burn[:, -1:]).sum(1).max().item())
    nfe0, steps0 = model.nfe, model.solver_steps
    u_burn = None if readings is None else readings.at(torch.arange(len(x_burn), device=x_burn.device), t_burn)
    burn, h = _burn_in(model, x_burn, t_burn, u_burn)
    chosen, updates = _jumps(
        model,
        rule,
        h,
        x_burn[:, -1],
        t_burn[:, -1:].clone(),
        None if u_burn is None else u_burn[:, -1],
        hz,
        readings,
        events,
        max_updates,
    )
    t, dt, x, hh, uu = _pack(burn + chosen, len(x_burn), x_burn, model.state_size, u_burn)
    return Rollout(
        model,
        t,
        dt,
        x,
        hh,
        updates,
        x_burn.shape[1],
        hz.max().item(),
        model.nfe - nfe0,
        uu,
        (model.solver_steps - steps0) / len(x_burn),
    )


@torch.no_grad()
def rollout_from(
    model: SequenceModel,
    h: Tensor,
    x: Tensor,
    t: Tensor | float,
    horizon: float | Tensor,
    u: Tensor | None = None,
    t_u: Tensor | None = None,
    rule: SegmentRule | None = None,
    max_updates: int | None = None,
) -> Rollout:
    """Roll `model` out from states it already holds, as `rollout` does after its burn-in.

    Args:
        h: (B, model.state_size) each trajectory's state just after an update (the
            update that opened its current segment, as a `Stream` keeps it).
        x: (B, state_dim) the frame that update read, and t: (B,) or a number, its time
            (frames): the rollout's first step starts there.
        horizon: the time each clock must reach, after `t` (a number or (B,)).
        u: known inputs as readings, for a model that reads them, as `rollout` takes
            them: the first at or before `t` (the one the update read).
        t_u: their times, as `rollout`'s.
        rule: where the model's updates happen (default `model.rule`).
        max_updates: as `rollout`'s.

    Returns a `Rollout` whose first step (k = 0) starts at `t` (its `n_burn` is 1).
    """
    rule = (rule or model.rule).bind(model)
    dtype = next(model.parameters()).dtype
    if not isinstance(h, Tensor) or h.ndim != 2 or h.shape[1] != model.state_size or h.dtype != dtype:
        raise DataError(
            f"states must be a {dtype} tensor shaped (batch, {model.state_size}); got "
            f"{tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__}"
        )
    t = torch.as_tensor(t, dtype=dtype, device=h.device)
    if t.shape not in ((), (len(h),)):
        raise DataError(f"start times must be a number or shaped ({len(h)},); got {tuple(t.shape)}")
    t = t.expand(len(h)).reshape(len(h), 1)
    t_burn, hz = _check_burn(model, x.unsqueeze(1) if isinstance(x, Tensor) else x, horizon, t, max_updates)
    readings = check_readings(model, u, t_u, t_burn)
    events = readings is not None and rule.jumps
    if max_updates is None:
        max_updates = math.ceil((hz - t_burn[:, -1]).max().item() / rule.min_dt) + 1
        if events:
            assert readings is not None
            max_updates += int((readings.t > t_burn).sum(1).max().item())
    if not torch.isfinite(h).all():
        raise DataError("states contain NaN or inf; start from the states a model's updates gave")
    nfe0, steps0 = model.nfe, model.solver_steps
    u_cur = None if readings is None else readings.at(torch.arange(len(h), device=h.device), t_burn)[:, 0]
    chosen, updates = _jumps(model, rule, h, x, t_burn.clone(), u_cur, hz, readings, bool(events), max_updates)
    tt, dt, xx, hh, uu = _pack(chosen, len(h), x, model.state_size, u_cur)
    return Rollout(
        model, tt, dt, xx, hh, updates, 1, hz.max().item(), model.nfe - nfe0, uu, (model.solver_steps - steps0) / len(h)
    )


def _check_burn(
    model: SequenceModel, x_burn: Tensor, horizon: float | Tensor, t_burn: Tensor | None, max_updates: int | None
) -> tuple[Tensor, Tensor]:
    """Refuse malformed burn-in frames, times or horizons; return the burn-in times and the horizons (B,)."""
    dtype = next(model.parameters()).dtype
    if not isinstance(x_burn, Tensor) or x_burn.dtype != dtype:
        raise DataError(
            f"burn-in frames must be a {dtype} tensor like the model's weights; got "
            f"{getattr(x_burn, 'dtype', type(x_burn).__name__)}; convert with .to({dtype})"
        )
    if max_updates is not None and max_updates < 1:
        raise ConfigError(f"max_updates must be at least 1, got {max_updates}")
    if x_burn.ndim != 3 or x_burn.shape[-1] != model.config.state_dim:
        raise DataError(
            f"burn-in frames must have shape (batch, frames, {model.config.state_dim}); got {tuple(x_burn.shape)}"
        )
    B, n_burn, _ = x_burn.shape
    if B == 0 or n_burn == 0:
        raise DataError(f"need at least one trajectory and one burn-in frame; got shape {tuple(x_burn.shape)}")
    if not torch.isfinite(x_burn).all():
        raise DataError("burn-in frames contain NaN or inf; clean the data first")
    if t_burn is None:
        t_burn = torch.arange(n_burn, dtype=x_burn.dtype, device=x_burn.device).expand(B, n_burn)
    elif t_burn.shape != (B, n_burn) or not torch.isfinite(t_burn).all() or (t_burn.diff(dim=1) <= 0).any():
        raise DataError(
            f"burn-in times must be finite, strictly increasing and shaped ({B}, {n_burn}); "
            f"got shape {tuple(t_burn.shape)}"
        )
    t_burn = t_burn.to(x_burn.dtype)
    hz = torch.as_tensor(horizon, dtype=x_burn.dtype, device=x_burn.device).expand(B)
    if not torch.isfinite(hz).all() or (hz <= t_burn[:, -1]).any():
        raise ConfigError(
            f"horizon must be a finite time after the last burn-in frame "
            f"({t_burn[:, -1].max().item():g}); got {horizon}"
        )
    return t_burn, hz


# One step of a rollout for the rows still running: (rows, t, dt, x, h, u), as `Rollout` keeps them.
Step = tuple


def _burn_in(model: SequenceModel, x_burn: Tensor, t_burn: Tensor, u_burn: Tensor | None) -> tuple[list[Step], Tensor]:
    """The cell reads the true burn-in frames one by one: the burn-in's steps (all but
    the last frame's) and the state after the last frame's update."""
    B, n_burn, _ = x_burn.shape
    rows = torch.arange(B, device=x_burn.device)
    enc = model.encode(with_inputs(x_burn, u_burn))
    h = x_burn.new_zeros(B, model.state_size)
    gaps = t_burn.diff(dim=1).unsqueeze(-1)  # (B, n_burn - 1, 1)
    steps = []
    for i in range(n_burn):
        h = model.update(enc[:, i], model.advance(h, gaps[:, i - 1]) if i else h)
        if i < n_burn - 1:
            steps.append(
                (rows, t_burn[:, i : i + 1], gaps[:, i], x_burn[:, i], h, None if u_burn is None else u_burn[:, i])
            )
    return steps, h


def _jumps(
    model: SequenceModel,
    rule: SegmentRule,
    h: Tensor,
    x_cur: Tensor,
    t_cur: Tensor,
    u_cur: Tensor | None,
    hz: Tensor,
    readings: Readings | None,
    events: bool,
    max_updates: int,
) -> tuple[list[Step], Tensor]:
    """From the last burn-in frame on, the model chooses when to update next: the steps,
    and each trajectory's count of them. Each trajectory stops once its clock reaches its horizon."""
    B = len(hz)
    rows = torch.arange(B, device=h.device)
    updates = torch.zeros(B, dtype=torch.long, device=h.device)
    steps = []
    while True:
        dt = rule.wait(model, h)
        t_next, t_end = t_cur + dt, hz[rows].unsqueeze(-1)
        if rule.jumps:  # a jump that would stop less than min_dt short of the horizon runs on to it
            short = (t_next < t_end) & (t_end - t_next < rule.min_dt)
            t_next, dt = torch.where(short, t_end, t_next), torch.where(short, t_end - t_cur, dt)
        if events:  # the jump ends early at the next input event, exactly at its reading's time
            assert readings is not None and u_cur is not None
            t_next = torch.minimum(t_next, readings.next_change(rows, t_cur, u_cur, rule.input_threshold))
            dt = t_next - t_cur
        steps.append((rows, t_cur, dt, x_cur, h, u_cur))
        updates[rows] += 1
        change, moved = model.step(h, dt)
        x_next = x_cur + hold_aux(model, change)
        going = (t_next < t_end).squeeze(-1)
        if not going.any():
            break
        if len(steps) >= max_updates:
            warnings.warn(
                f"rollout stopped after {max_updates} updates before reaching the horizon; raise max_updates or min_dt",
                RuntimeWarning,
                stacklevel=3,
            )
            break
        rows, x_cur, t_cur = rows[going], x_next[going], t_next[going]
        if readings is not None:
            u_cur = readings.at(rows, t_cur)[:, 0]
        h = model.update(model.encode(with_inputs(x_cur, u_cur)), moved[going])
    return steps, updates


def _pack(steps: list[Step], B: int, like: Tensor, state_size: int, u_like: Tensor | None):
    """The steps as (B, K) tensors padded with t = inf: (t, dt, x, h, u)."""
    K = len(steps)
    dtype, device = like.dtype, like.device
    t = torch.full((B, K), math.inf, dtype=dtype, device=device)
    dt = torch.zeros(B, K, dtype=dtype, device=device)
    x = torch.zeros(B, K, like.shape[-1], dtype=dtype, device=device)
    h = torch.zeros(B, K, state_size, dtype=dtype, device=device)
    u = None if u_like is None else u_like.new_zeros(B, K, u_like.shape[-1])
    for k, (r, tc, dtc, xc, hc, uc) in enumerate(steps):
        t[r, k], dt[r, k], x[r, k], h[r, k] = tc.reshape(-1), dtc.reshape(-1), xc, hc
        if u is not None:
            u[r, k] = uc
    return t, dt, x, h, u
