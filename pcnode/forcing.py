"""Teacher forcing: the training objective of the PC-ODE and of its baselines.

Greydanus, Lee & Fern, "Piecewise-constant Neural ODEs", 2021 (arXiv:2106.06621).

The PC-ODE learns where it can skip updates by *jumpy* teacher forcing. It walks a
batch of true trajectories frame by frame, carrying for every trajectory the segment
it is on: the state `h` of the update that opened it, the time `start` of that update
and the change `carried` of the data since then. At frame `i` (after a burn-in in
which every frame updates) it tries to stretch the segment over one more frame, and
keeps the stretch where the stretched prediction still matches the data:

    err  = mean((change(h, t[i+1] - start) - (carried + dx[i]))**2)    # over the state dims
    skip = err < epsilon  or  rand() < jump_prob                         # `skip_decision`

A row that skips keeps its segment; a row that does not updates its cell from frame
`i` and opens a new segment there. Whichever segment is then in force must predict the
change up to frame `i+1` (the displacement loss); the state of a new segment must
predict no change over a span of zero (the zero-span loss); and the dt head, read at
the state that opened a segment, regresses that segment's length (the dt loss). The RNN
and ODE-RNN baselines update at every frame and have only the displacement loss.

Known inputs (`Trajectories.u`, a model with `input_dim > 0`). Every update reads the
frame's state with the inputs at that frame. A change of input is an event, as in a
rollout: a row also updates at frame `i` when an input there differs from the one its
segment's update read by more than `model.config.input_threshold`, whatever the skip rule
says. The length of a segment that only an input ended is a lower bound on the length
the dt head should predict (the dynamics would have kept it), so, like a segment still
open when the data ends, it is penalised only for predicting less.

`reference_forcing` is the method written frame by frame, exactly as above.
`teacher_forcing` computes the same losses, decisions and gradients faster (the tests
compare the two):

- only the loop's sequential core runs frame by frame: the skip decisions and the cell
  updates of the rows that do not skip (the encoder, cell and segment head run on those
  rows alone); every loss term is computed after the loop in a few batched operations,
  from the index of the segment each row is on at each frame;
- the decoder's first layer is linear and so is the straight latent path, so a segment
  is kept as its first-layer line `a + span * g` (`PCODE.segment`) and read at any span
  without recomputing that layer;
- on a CPU, decoder calls over many rows go in cache-sized chunks (`in_chunks`).

The file is long on purpose: the method, its reference and its fast form sit side by
side so that a reader can check one against the other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor

from .data import Trajectories
from .errors import ConfigError
from .model import ODERNN, PCODE, SequenceModel, in_chunks, with_inputs


# The authors' skip threshold, a squared error in the units of their data.
AUTHORS_EPSILON = 3e-3
# The skip threshold used when a rule gives neither form: this multiple of the training
# data's mean squared change per frame. On the billiards tasks (a frame's change 1.2e-3)
# it is the authors' 3e-3, on pixel frames (2.4e-2) the 6e-2 that lets a PC-ODE skip on
# pixels at all, and on Circles it scored better than the authors' value; measured by
# benchmarks/skip_threshold.py (results in docs/training.md).
DEFAULT_RELATIVE_EPSILON = 2.5


@dataclass
class SkipRule:
    """When the PC-ODE may skip a cell update during jumpy teacher forcing, and its loss weights.

    The skip threshold is given in one of two forms: `epsilon`, a squared error in the
    data's units (the authors' form; 3e-3 on their tasks), or `relative_epsilon`, a
    multiple of the training data's mean squared change over one frame
    (`mean_square_change`), which means the same thing in any units. A run measures
    that change once, when it starts, and keeps it in `data_change`, so the threshold
    of a run never moves. With neither form given the default applies
    (`DEFAULT_RELATIVE_EPSILON`).

    The other defaults are the authors'. `feed_predictions` is ours: the probability
    that an update after the burn-in reads the model's own prediction of the frame
    instead of the true frame, as every update of a rollout does (0: the authors'
    teacher forcing). `field_penalty` is ours too and concerns the ODE-RNN alone: the
    weight of the regulariser of Finlay et al. (2020), the kinetic energy of its vector
    field plus the squared Frobenius norm of the field's Jacobian (`VectorField.regulariser`),
    which rewards fields that an adaptive solver crosses in few steps (0: none, as in
    the paper). Finlay et al. integrate it along the path; we take it once per span, at
    the state the span starts from, times the span, so the solver's steps are not spent on it.

    `event_threshold` is ours too (None: off, the authors' rule): with it a segment also
    ends where the data's own motion turns, so that a rollout's updates land on events
    (contacts, regime changes). A segment opened at frame s is stretched over frame i+1
    only while the data stays near the straight line through x[s] with the velocity
    of the data's first step, x[s] + (t - t[s]) * (x[s+1] - x[s]) / (t[s+1] - t[s]):
    within `event_threshold` times `data_change`, as a mean squared error over the state
    dims. The model's own skip test still applies; the line adds a condition, never
    removes one.
    """

    n_burn: int = 4                          # frames at the start where every row updates
    epsilon: float | None = None             # skip threshold: a squared error in the data's units...
    relative_epsilon: float | None = None    # ...or a multiple of the data's mean squared change per frame
    data_change: float | None = None         # that change, measured on the training data when a run starts
    jump_prob: float = 0.01                  # also skip at random with this probability
    zero_span_weight: float = 0.1            # weight of the zero-span loss
    dt_weight: float = 1e-5                  # weight of the dt head's loss
    feed_predictions: float = 0.0            # probability that an update reads its own predicted frame
    field_penalty: float = 0.0               # ODE-RNN: weight of the field's regulariser (Finlay et al. 2020)
    event_threshold: float | None = None     # events: also end a segment where the data leaves a straight line

    def validate(self) -> "SkipRule":
        if isinstance(self.n_burn, bool) or not isinstance(self.n_burn, int) or self.n_burn < 1:
            raise ConfigError(f"`n_burn` must be a positive integer, got {self.n_burn!r}")
        # Written as `not (x >= 0)` so that NaN, which compares false, is refused too.
        numbers = {name: getattr(self, name) for name in ("epsilon", "relative_epsilon", "data_change", "jump_prob",
                                                          "zero_span_weight", "dt_weight", "feed_predictions",
                                                          "field_penalty", "event_threshold")
                   if getattr(self, name) is not None}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"`{name}` must be a finite number, got {value!r}")
        if not (all(v >= 0 for v in numbers.values()) and self.jump_prob <= 1 and self.feed_predictions <= 1):
            raise ConfigError("need `epsilon` >= 0, `relative_epsilon` >= 0, 0 <= `jump_prob` <= 1, "
                              "`zero_span_weight` >= 0, `dt_weight` >= 0, 0 <= `feed_predictions` <= 1, "
                              "`field_penalty` >= 0 and `event_threshold` >= 0")
        if self.epsilon is not None and self.relative_epsilon is not None:
            raise ConfigError("give the skip threshold as `epsilon` (a squared error in the data's units) or as "
                              "`relative_epsilon` (a multiple of the data's mean squared change per frame), not both")
        return self

    def for_data(self, seq: Tensor, mask: Tensor | None = None, aux_dims: int = 0) -> "SkipRule":
        """This rule with its threshold fixed for training on `seq` (N, T, D): a relative
        threshold (given or default) gets the data's `data_change`; an absolute one is kept
        (and the data's change measured all the same when the event line needs it)."""
        if self.data_change is not None or (self.epsilon is not None and self.event_threshold is None):
            return self
        relative = self.relative_epsilon
        if self.epsilon is None and relative is None:
            relative = DEFAULT_RELATIVE_EPSILON
        return replace(self, relative_epsilon=relative, data_change=mean_square_change(seq, mask, aux_dims))

    @property
    def threshold(self) -> float:
        """The skip threshold as a squared error in the data's units (after `for_data`)."""
        if self.epsilon is not None:
            return self.epsilon
        if self.relative_epsilon is None or self.data_change is None:
            raise ConfigError("this skip rule's threshold depends on the data; fix it with rule.for_data(sequences)")
        return self.relative_epsilon * self.data_change

    @property
    def event_level(self) -> float | None:
        """How far (a squared error in the data's units) the data may leave a segment's
        straight line before the segment must end; None when the event option is off."""
        if self.event_threshold is None:
            return None
        if self.data_change is None:
            raise ConfigError("the event threshold depends on the data; fix it with rule.for_data(sequences)")
        return self.event_threshold * self.data_change


def mean_square_change(seq: Tensor, mask: Tensor | None = None, aux_dims: int = 0) -> float:
    """The mean squared change of the state over one transition of `seq` (N, T, D): over
    the real transitions (`mask`, (N, T-1)) and the non-auxiliary dims."""
    keep = seq.shape[-1] - aux_dims
    total, count = 0.0, 0
    for lo in range(0, len(seq), 256):  # a few MB at a time, even for pixel frames
        sq = seq[lo:lo + 256, :, :keep].diff(dim=1).double().pow(2).mean(-1)
        if mask is not None:
            sq = sq[mask[lo:lo + 256]]
        total, count = total + sq.sum().item(), count + sq.numel()
    return total / max(count, 1)


class Losses(NamedTuple):
    """What one pass of teacher forcing returns. `total` is what the optimiser minimises."""

    total: Tensor
    displacement: Tensor
    zero_span: Tensor
    dt: Tensor
    mean_dt: float
    updated: Tensor  # (B, T) bool: where the cell updated


class Objective(torch.nn.Module):
    """A model's teacher-forcing losses as a module's forward pass, which is what
    DistributedDataParallel hooks to average gradients across processes."""

    def __init__(self, model: SequenceModel):
        super().__init__()
        self.model = model

    def forward(self, batch: Trajectories, rule: SkipRule) -> Losses:
        return teacher_forcing(self.model, batch, rule)


def skip_decision(err: Tensor, rule: SkipRule, away: Tensor | None = None) -> Tensor:
    """The skip rule: keep the current segment where stretching it over one more frame
    predicts the data with mean squared error `err` below `rule.threshold` (and, with the
    event option, where the data stays within `rule.event_level` of the segment's straight
    line, `away` being its mean squared distance from it), or at random with probability
    `rule.jump_prob`. (B,) -> (B,) bool, True = skip the update."""
    fits = err < rule.threshold
    if away is not None:
        fits = fits & (away < rule.event_level)
    return fits | (torch.rand_like(err) < rule.jump_prob)


def input_event(u: Tensor, u_read: Tensor, threshold: float) -> Tensor:
    """Where the inputs `u` (B, U) differ from those a segment read, `u_read` (B, U), by more
    than `threshold` in some input: the segment must end there. -> (B,) bool"""
    return (u - u_read).abs().amax(-1) > threshold


def teacher_forcing(model: SequenceModel, batch: Tensor | Trajectories, rule: SkipRule) -> Losses:
    """Jumpy teacher forcing (the PC-ODE) or plain teacher forcing (RNN, ODE-RNN).

    Args:
        batch: B trajectories of T+1 frames, (B, T+1, state_dim) or `Trajectories`
            with their times, padding mask and known inputs.

    See the module docstring for the method. A threshold relative to the data that
    `rule.for_data` has not fixed (`fit` fixes it on the whole training set) is measured
    on this batch. With `rule.feed_predictions > 0` an update
    may instead read the frame the ending segment predicted (no gradient through it),
    and the new segment's targets are then measured from that prediction, as in a
    rollout: the model learns to recover from its own errors and its segments end where
    a rollout's would.
    """
    batch = Trajectories.of(batch)
    batch.check_inputs(model.config.input_dim, "batch")
    seq, times, mask, u = batch.x, batch.times, batch.real, batch.u
    if isinstance(model, PCODE):
        return _jumpy_forcing(model, seq, rule.for_data(seq, mask, model.config.aux_dims), times, mask, u)
    return _plain_forcing(model, seq, times, mask, u, rule.field_penalty)


def _plain_forcing(model: SequenceModel, seq: Tensor, times: Tensor, mask: Tensor, u: Tensor | None,
                   field_penalty: float = 0.0) -> Losses:
    """The cell updates at every frame; the state advanced to the next frame decodes its change.
    An ODE-RNN with `field_penalty > 0` adds that multiple of its field's regulariser, per
    real transition."""
    B, T1, D = seq.shape
    T = T1 - 1
    # Frames are encoded and decoded all at once, time-major so that each frame's rows
    # are one contiguous block (a per-frame slice of a batch-major tensor would cost a
    # full-size gradient buffer per frame in the backward pass).
    frames = with_inputs(seq[:, :-1], None if u is None else u[:, :-1])
    enc = in_chunks(model.encode, frames.transpose(0, 1).reshape(T * B, -1)).view(T, B, -1).unbind(0)
    # The regulariser only shapes training; it needs autograd, so a pass without is left without it.
    regularise = field_penalty > 0 and isinstance(model, ODERNN) and torch.is_grad_enabled()
    h, advanced, regulariser = seq.new_zeros(B, model.state_size), [], []
    for i in range(T):
        h, span = model.update(enc[i], h), (times[:, i + 1] - times[:, i]).unsqueeze(-1)
        if regularise:  # one point per span, at the state it starts from
            regulariser.append((span * model.field.regulariser(h)).squeeze(-1) * mask[:, i])
        h = model.advance(h, span)
        advanced.append(h)
    pred = in_chunks(model.decode, torch.stack(advanced, 1).flatten(0, 1)).view(B, T, D)
    displacement = _displacement_loss(pred, seq[:, 1:] - seq[:, :-1], mask, model.config.aux_dims)
    total = displacement
    if regularise:
        total = total + field_penalty * torch.stack(regulariser).sum() / mask.sum()
    zero = seq.new_zeros(())
    return Losses(total, displacement.detach(), zero, zero, 1.0, mask.new_ones(mask.shape))


def _jumpy_forcing(model: PCODE, seq: Tensor, rule: SkipRule, times: Tensor, mask: Tensor,
                   u: Tensor | None) -> Losses:
    """The PC-ODE's pass; `teacher_forcing` documents it and `reference_forcing` is its plain form."""
    B, T1, D = seq.shape
    T = T1 - 1
    keep = D - model.config.aux_dims
    x, dx = seq[:, :-1], seq[:, 1:] - seq[:, :-1]
    burn = min(rule.n_burn, T)
    device = seq.device
    every_row = torch.arange(B, device=device)
    first = with_inputs(x[:, :burn], None if u is None else u[:, :burn])
    burn_enc = model.encode(first.transpose(0, 1).reshape(burn * B, -1)).view(burn, B, -1).unbind(0)
    # The inputs each row's current segment read when it opened (no inputs: None).
    u_read = None

    # With autograd, the loop keeps only the recurrent state `h` and the segments it
    # opens (their lines and dt guesses, in the order opened).
    h = seq.new_zeros(B, model.config.latent)
    opened, opened_dt = [], []
    # Without autograd, what the skip decisions read: each row's current segment (its
    # line, start time, and the data's change since it began) and that segment's index
    # among all opened ones.
    start, carried = times[:, :1], torch.zeros_like(dx[:, 0])
    line = seg = None
    n_opened = 0
    segs, starts, targets, updated, by_input = [], [], [], [], []
    no_row = torch.zeros(B, dtype=torch.bool, device=device)
    # The event option's straight line in data space per row: its segment's first frame and velocity.
    events = rule.event_threshold is not None
    velocity = dx / (times[:, 1:] - times[:, :-1]).unsqueeze(-1) if events else None
    origin = heading = None
    for i in range(T):
        t_i, t_next = times[:, i:i + 1], times[:, i + 1:i + 2]
        offset = None
        forced = no_row
        with torch.no_grad():
            if i < burn:
                upd = None  # every row updates
            else:
                target = carried + dx[:, i]
                stretch = model.along(line, t_next - start) - target
                away = None
                if events:
                    away = (seq[:, i + 1] - origin - (t_next - start) * heading)[:, :keep].pow(2).mean(-1)
                skip = skip_decision(stretch[:, :keep].pow(2).mean(-1), rule, away)
                if u is not None:  # an input event ends the segment whatever the rule says
                    event = input_event(u[:, i], u_read, model.config.input_threshold)
                    forced, skip = skip & event, skip & ~event
                upd = ~skip if skip.any() else None
                if rule.feed_predictions > 0:
                    rows = every_row if upd is None else upd.nonzero().squeeze(-1)
                    own = model.along(line[rows], (t_i - start)[rows])
                    fed = torch.rand_like(own[:, :1]) < rule.feed_predictions
                    offset = torch.where(fed, carried[rows] - own, 0.0)
                    offset[:, keep:] = 0.0  # auxiliary inputs are given, never predicted
        # The cell update of the rows that do not skip (all of them in the burn-in).
        if upd is not None and not upd.any():  # every row keeps its segment
            carried = target
        else:
            if upd is None:
                rows = every_row
                if i < burn:
                    e = burn_enc[i]
                else:
                    x_in = x[:, i] if offset is None else x[:, i] - offset
                    e = model.encode(with_inputs(x_in, None if u is None else u[:, i]))
                h = new = model.update(e, model.advance(h, t_i - start))
            else:
                rows = upd.nonzero().squeeze(-1)
                x_in = x[rows, i] if offset is None else x[rows, i] - offset
                x_in = with_inputs(x_in, None if u is None else u[rows, i])
                new = model.update(model.encode(x_in), model.advance(h[rows], (t_i - start)[rows]))
                h = h.index_copy(0, rows, new)
            new_line = model.segment(new)
            opened.append(new_line)
            opened_dt.append(model.dt_raw(new))
            with torch.no_grad():  # bookkeeping: the new segments replace the old on their rows
                new_seg = torch.arange(n_opened, n_opened + len(rows), device=device)
                fresh = dx[:, i] if offset is None else dx[:, i].index_add(0, rows, offset)
                if upd is None:
                    line, start, carried, seg = new_line.detach(), t_i, fresh, new_seg
                    u_read = None if u is None else u[:, i]
                    upd = torch.ones(B, dtype=torch.bool, device=device)
                    if events:
                        origin, heading = x[:, i], velocity[:, i]
                else:
                    line = line.index_copy(0, rows, new_line.detach().to(line.dtype))
                    start = torch.where(upd.unsqueeze(-1), t_i, start)
                    carried = torch.where(upd.unsqueeze(-1), fresh, target)
                    seg = seg.index_copy(0, rows, new_seg)
                    u_read = None if u is None else torch.where(upd.unsqueeze(-1), u[:, i], u_read)
                    if events:
                        origin = torch.where(upd.unsqueeze(-1), x[:, i], origin)
                        heading = torch.where(upd.unsqueeze(-1), velocity[:, i], heading)
                n_opened += len(rows)
        segs.append(seg)
        starts.append(start)
        targets.append(carried)
        updated.append(upd)
        by_input.append(forced)

    # The losses, batched over every frame: frame i is predicted by the segment in force
    # after it, `seg_at[:, i]`, read at the span from its start to frame i+1.
    lines, dt_raw = torch.cat(opened), torch.cat(opened_dt).squeeze(-1)
    seg_at, start_at = torch.stack(segs, 1), torch.cat(starts, 1)          # (B, T) each
    span = (times[:, 1:] - start_at).reshape(B * T, 1)
    pred = in_chunks(model.along, lines.index_select(0, seg_at.flatten()), span).view(B, T, D)
    at_zero = in_chunks(model.along, lines, span.new_zeros(len(lines), 1))   # each new segment at span 0
    displacement = _displacement_loss(pred, torch.stack(targets, 1), mask, model.config.aux_dims)
    # A segment stays in force over several frames: its zero-span term counts once per real frame.
    frames_in_force = seq.new_zeros(len(lines)).index_add_(0, seg_at.flatten(), mask.flatten().to(seq.dtype))
    zero_span = (at_zero[:, :keep].pow(2).sum(-1) * frames_in_force).sum() / (mask.sum().clamp(min=1) * keep)
    updated = torch.stack(updated, 1)
    dt_loss, mean_dt = _dt_loss(dt_raw, seg_at, start_at, times, updated, torch.stack(by_input, 1), mask, burn)
    total = displacement + rule.zero_span_weight * zero_span + rule.dt_weight * dt_loss
    return Losses(total, displacement.detach(), zero_span.detach(), dt_loss.detach(), mean_dt, updated)


def _displacement_loss(pred: Tensor, target: Tensor, mask: Tensor, aux_dims: int) -> Tensor:
    """Mean squared error over the real (unmasked) frames and the non-auxiliary dims. (B, T, D) each."""
    keep = pred.shape[-1] - aux_dims
    w = mask.to(pred.dtype).unsqueeze(-1)
    n = w.sum().clamp(min=1) * keep
    return ((pred[..., :keep] - target[..., :keep]).pow(2) * w).sum() / n


def _dt_loss(dt_raw: Tensor, seg_at: Tensor, start_at: Tensor, times: Tensor, updated: Tensor, by_input: Tensor,
             mask: Tensor, burn: int) -> tuple[Tensor, float]:
    """Regress the dt head on the lengths of the segments that ended; also return their mean length.

    `dt_raw` (S,) is the head's raw guess at the state that opened each segment;
    `seg_at`, `start_at` (B, T) the segment in force after each frame and its start;
    `by_input` (B, T) where an update happened only because an input changed.
    A segment ends at frame i >= burn where its row updates. A segment still open when
    a row's data ends, or ended only by an input, has only a lower bound on its length
    and is penalised only for predicting less than that. Without this the head never
    learns that a segment can outlast the window (on Lines nothing else ends).
    """
    B, T = seg_at.shape
    if T <= burn:
        return dt_raw.new_zeros(()), 1.0
    length = times[:, burn:T] - start_at[:, burn - 1:T - 1]       # of the segment in force before frame i
    ended = updated[:, burn:] & mask[:, burn:]
    miss = dt_raw[seg_at[:, burn - 1:T - 1][ended]] - length[ended]
    closed = torch.where(by_input[:, burn:][ended], miss.clamp(max=0), miss).pow(2)
    last = (mask.long().sum(1) - 1).unsqueeze(1)                 # each row's last real transition
    open_len = (times.gather(1, last + 1) - start_at.gather(1, last)).squeeze(1)
    still_open = (dt_raw[seg_at.gather(1, last).squeeze(1)] - open_len).clamp(max=0).pow(2)
    mean_dt = length[ended].mean().item() if ended.any() else open_len.mean().item()
    return torch.cat([closed, still_open]).mean(), mean_dt


def reference_forcing(model: SequenceModel, batch: Tensor | Trajectories, rule: SkipRule) -> Losses:
    """Teacher forcing written frame by frame as the method states it (slow; for reading and testing).

    Every row runs the cell at every frame and every loss term is decoded where it
    arises. `teacher_forcing` must give the same losses, decisions and gradients, and
    draws its random numbers in the same order.
    """
    batch = Trajectories.of(batch)
    batch.check_inputs(model.config.input_dim, "batch")
    seq, times, mask, u = batch.x, batch.times, batch.real, batch.u
    rule = rule.for_data(seq, mask, model.config.aux_dims)
    B, T1, D = seq.shape
    T = T1 - 1
    jumpy = isinstance(model, PCODE)
    keep = D - model.config.aux_dims
    times = times.unsqueeze(-1)
    h = seq.new_zeros(B, model.state_size)
    start, carried = times[:, 0], seq.new_zeros(B, D)
    u_read = None if u is None else u[:, 0]  # the inputs the current segment's update read
    disp, zero, dt_terms, lengths, updated = [], [], [], [], []
    last = mask.sum(1) - 1
    open_h, open_len = [None] * B, [None] * B
    origin, heading = seq[:, 0], seq.new_zeros(B, D)  # the event option's line, set at every update
    for i in range(T):
        t_i, t_next, dx = times[:, i], times[:, i + 1], seq[:, i + 1] - seq[:, i]
        skip = torch.zeros(B, dtype=torch.bool, device=seq.device)
        forced = torch.zeros_like(skip)  # updates that only an input change caused
        offset = torch.zeros_like(carried)
        if jumpy and i >= rule.n_burn:
            with torch.no_grad():
                err = (model.decode(model.advance(h, t_next - start)) - (carried + dx))[:, :keep].pow(2).mean(-1)
                away = None
                if rule.event_threshold is not None:  # the data's distance from its segment's straight line
                    away = (seq[:, i + 1] - (origin + (t_next - start) * heading))[:, :keep].pow(2).mean(-1)
                skip = skip_decision(err, rule, away)
                if u is not None:
                    event = input_event(u[:, i], u_read, model.config.input_threshold)
                    forced, skip = skip & event, skip & ~event
                if rule.feed_predictions > 0:  # an updating row may read the frame its segment predicted
                    own = model.decode(model.advance(h, t_i - start))
                    fed = torch.rand(int((~skip).sum()), 1, dtype=seq.dtype, device=seq.device) < rule.feed_predictions
                    offset[~skip] = torch.where(fed, (carried - own)[~skip], 0.0)
                    offset[:, keep:] = 0.0
            ends = ~skip & mask[:, i]
            miss = (model.dt_raw(h) - (t_i - start)).squeeze(-1)
            dt_terms.append(torch.where(forced, miss.clamp(max=0), miss).pow(2)[ends])
            lengths.append((t_i - start).squeeze(-1)[ends])
        frame = with_inputs(seq[:, i] - offset, None if u is None else u[:, i])
        h_tick = model.update(model.encode(frame), model.advance(h, t_i - start) if i else h)
        s = skip.unsqueeze(-1)
        h = torch.where(s, h, h_tick)
        start = torch.where(s, start, t_i)
        carried = torch.where(s, carried + dx, dx + offset)
        origin = torch.where(s, origin, seq[:, i])
        heading = torch.where(s, heading, dx / (t_next - t_i))
        if u is not None:
            u_read = torch.where(s, u_read, u[:, i])
        updated.append(~skip)
        for b in range(B):
            if last[b] == i:  # the segment still open when this row's real data ends
                open_h[b], open_len[b] = h[b], times[b, i + 1, 0] - start[b, 0]
        m = mask[:, i:i + 1].to(seq.dtype)
        disp.append(((model.decode(model.advance(h, t_next - start)) - carried)[:, :keep].pow(2) * m).sum())
        if jumpy:
            zero.append((model.decode(model.advance(h, 0.0))[:, :keep].pow(2) * m).sum())
    n = mask.sum() * keep
    displacement = sum(disp) / n
    total, zero_span, dt_loss, mean_dt = displacement, seq.new_zeros(()), seq.new_zeros(()), 1.0
    if jumpy:
        zero_span = sum(zero) / n
        if T > rule.n_burn:
            dt_open = model.dt_raw(torch.stack(open_h)).squeeze(-1)
            dt_terms.append((dt_open - torch.stack(open_len)).clamp(max=0).pow(2))
            dt_loss = torch.cat(dt_terms).mean()
            ended = torch.cat(lengths)
            mean_dt = ended.mean().item() if len(ended) else torch.stack(open_len).mean().item()
        total = total + rule.zero_span_weight * zero_span + rule.dt_weight * dt_loss
    return Losses(total, displacement.detach(), zero_span.detach(), dt_loss.detach(), mean_dt,
                  torch.stack(updated, 1))
