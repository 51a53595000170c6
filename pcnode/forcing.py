"""Teacher forcing: the training objective of the PC-ODE and of its baselines.

Greydanus, Lee & Fern, "Piecewise-constant Neural ODEs", 2021 (arXiv:2106.06621).

The PC-ODE learns where it can skip updates by *jumpy* teacher forcing. It walks a
batch of true trajectories frame by frame, carrying for every trajectory the segment
it is on: the state `h` of the update that opened it, the time `start` of that update
and the change `carried` of the data since then. At frame `i` (after a burn-in in
which every frame updates) it tries to stretch the segment over one more frame, and
keeps the stretch where the stretched prediction still matches the data:

    err  = mean((change(h, t[i+1] - start) - (carried + dx[i]))**2)    # over the state dims
    skip = err < rule.threshold  or  rand() < jump_prob                  # `rule.keeps`

(ours: a segment that spans fewer than the rule's `min_dt` frames also skips, so that
training's segments are as long as a rollout's jumps must be; the default of 1 never binds).

A row that skips keeps its segment; a row that does not updates its cell from frame
`i` and opens a new segment there. Whichever segment is then in force must predict the
change up to frame `i+1` (the displacement loss); the state of a new segment must
predict no change over a span of zero (the zero-span loss); and the dt head, read at
the state that opened a segment, regresses that segment's length (the dt loss). The RNN
and ODE-RNN baselines update at every frame and have only the displacement loss.

The segment rule (`pcnode.segments.SegmentRule`, the model's own unless given) holds
the burn-in and the thresholds; the training config (`TrainConfig`) the random jumps,
fed predictions and loss weights. With the rule's event option a segment also ends
where the data leaves the straight line through its first frame and first step.

Known inputs (`Trajectories.u`, a model with `input_dim > 0`). Every update reads the
frame's state with the inputs at that frame. A change of input is an event, as in a
rollout: a row also updates at frame `i` when an input there differs from the one its
segment's update read by more than the rule's `input_threshold`, whatever the skip test
says. The length of a segment that only an input ended is a lower bound on the length
the dt head should predict (the dynamics would have kept it), so, like a segment still
open when the data ends, it is penalised only for predicting less.

`pcnode.reference.reference_forcing` is the method written frame by frame, exactly as
above. `teacher_forcing` computes the same losses, decisions and gradients faster (the
tests compare the two):

- only the loop's sequential core runs frame by frame: the skip decisions and the cell
  updates of the rows that do not skip (the encoder, cell and segment head run on those
  rows alone); every loss term is computed after the loop in a few batched operations,
  from the index of the segment each row is on at each frame;
- the decoder's first layer is linear and so is the straight latent path, so a segment
  is kept as its first-layer line `a + span * g` (`PCODE.segment`) and read at any span
  without recomputing that layer;
- on a CPU, decoder calls over many rows go in cache-sized chunks (`in_chunks`).

"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .config import TrainConfig
from .data import Trajectories
from .flows import ODERNN
from .model import PCODE, SequenceModel, evaluating, in_chunks, with_inputs
from .segments import SegmentRule


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

    def forward(self, batch: Trajectories, rule: SegmentRule, config: TrainConfig) -> Losses:
        return teacher_forcing(self.model, batch, rule, config)


def input_event(u: Tensor, u_read: Tensor, threshold: float) -> Tensor:
    """Where the inputs `u` (B, U) differ from those a segment read, `u_read` (B, U), by more
    than `threshold` in some input: the segment must end there. -> (B,) bool"""
    return (u - u_read).abs().amax(-1) > threshold


def teacher_forcing(
    model: SequenceModel,
    batch: Tensor | Trajectories,
    rule: SegmentRule | None = None,
    config: TrainConfig | None = None,
) -> Losses:
    """Jumpy teacher forcing (a model whose rule jumps: the PC-ODE) or plain teacher
    forcing (RNN, ODE-RNN, CfC).

    Args:
        batch: B trajectories of T+1 frames, (B, T+1, state_dim) or `Trajectories`
            with their times, padding mask and known inputs.
        rule: the segment rule (default `model.rule`); a jumping rule needs its
            threshold in the data's units (`fit` resolves it, or `SegmentRule.resolve`).
        config: the random jumps, fed predictions and loss weights (default `TrainConfig()`).

    See the module docstring for the method. With `config.feed_predictions > 0` an update
    may instead read the frame the ending segment predicted (no gradient through it),
    and the new segment's targets are then measured from that prediction, as in a
    rollout: the model learns to recover from its own errors and its segments end where
    a rollout's would.
    """
    batch = Trajectories.of(batch)
    batch.check_inputs(model.config.input_dim, "batch")
    rule = (rule or model.rule).bind(model)
    config = config or TrainConfig()
    if rule.jumps:
        assert isinstance(model, PCODE)  # `bind` refuses a jumping rule for a model without a dt head
        return _jumpy_forcing(model, batch, rule, config)
    return _plain_forcing(model, batch, config.field_penalty, config.feed_predictions, rule.n_burn)


@torch.no_grad()
def forced_mean_dt(
    model: SequenceModel,
    data: Tensor | Trajectories,
    rule: SegmentRule | None = None,
    config: TrainConfig | None = None,
) -> float:
    """The mean length of the segments that ended during teacher forcing on `data`: the
    mean dt the authors' released code reports (1 for models that update every frame)."""
    with evaluating(model):
        return teacher_forcing(model, data, rule, config).mean_dt


@torch.no_grad()
def forced_update_times(
    model: SequenceModel,
    data: Tensor | Trajectories,
    rule: SegmentRule | None = None,
) -> Tensor:
    """Where teacher forcing on `data` updates: (B, T) the time of each frame whose cell
    update ran, inf elsewhere (the true frames are read, no random jumps). Beside a
    rollout's updates it tells two shortfalls apart: with
    `pcnode.evaluate.updates_near(times, events, rule.n_burn)`, a low share of events
    means the rule (its threshold, the event option) does not end segments at them; a
    high one where a rollout's `event_recall` is low means the dt head mistimes them."""
    data = Trajectories.of(data)
    with evaluating(model):
        updated = teacher_forcing(model, data, rule, TrainConfig(jump_prob=0.0)).updated
    times = data.times[:, : updated.shape[1]].to(torch.float32)
    return torch.where(updated.bool(), times, torch.full_like(times, math.inf))


def _plain_forcing(
    model: SequenceModel, batch: Trajectories, field_penalty: float = 0.0, feed: float = 0.0, burn: int = 0
) -> Losses:
    """The cell updates at every frame; the state advanced to the next frame decodes its change.
    An ODE-RNN with `field_penalty > 0` adds that multiple of its field's regulariser, per
    real transition. With `feed > 0`, the cell at a frame after the `burn`-in reads, with
    that probability, the frame its last step predicted (no gradient through it) instead of
    the true one, and the step's target is measured from what it read, as in a rollout."""
    seq, times, mask, u = batch.x, batch.times, batch.real, batch.u
    B, T1, D = seq.shape
    T = T1 - 1
    keep = model.scored_dims
    # Frames are encoded and decoded all at once, time-major so that each frame's rows
    # are one contiguous block (a per-frame slice of a batch-major tensor would cost a
    # full-size gradient buffer per frame in the backward pass). With fed predictions only
    # the burn-in's frames are known before the loop; the later ones are encoded in it.
    given = T if feed == 0 else min(max(burn, 1), T)
    frames = with_inputs(seq[:, :given], None if u is None else u[:, :given])
    enc = in_chunks(model.encode, frames.transpose(0, 1).reshape(given * B, -1)).view(given, B, -1).unbind(0)
    # The regulariser only shapes training; it needs autograd, so a pass without is left without it.
    field = model.field if field_penalty > 0 and isinstance(model, ODERNN) and torch.is_grad_enabled() else None
    dx = seq[:, 1:] - seq[:, :-1]
    h, advanced, regulariser, targets = seq.new_zeros(B, model.state_size), [], [], []
    for i in range(T):
        target = dx[:, i]
        if i < given:
            e = enc[i]
        else:
            with torch.no_grad():  # the frame the last step predicted: what it read plus its change
                offset = targets[-1] - model.decode(advanced[-1])
                offset = torch.where(torch.rand(B, 1, dtype=seq.dtype, device=seq.device) < feed, offset, 0.0)
                offset[:, keep:] = 0.0  # auxiliary inputs are given, never predicted
            e = model.encode(with_inputs(seq[:, i] - offset, None if u is None else u[:, i]))
            target = target + offset
        h, span = model.update(e, h), (times[:, i + 1] - times[:, i]).unsqueeze(-1)
        if field is not None:  # one point per span, at the state it starts from
            regulariser.append((span * field.regulariser(h)).squeeze(-1) * mask[:, i])
        h = model.advance(h, span)
        advanced.append(h)
        targets.append(target)
    pred = in_chunks(model.decode, torch.stack(advanced, 1).flatten(0, 1)).view(B, T, D)
    displacement = _displacement_loss(pred, torch.stack(targets, 1), mask, keep)
    total = displacement
    if field is not None:
        total = total + field_penalty * torch.stack(regulariser).sum() / mask.sum()
    zero = seq.new_zeros(())
    return Losses(total, displacement.detach(), zero, zero, 1.0, mask.new_ones(mask.shape))


class Walk(NamedTuple):
    """The segments of one jumpy pass (S opened in all), for the losses to read.

    lines (S, L): each segment's line (`PCODE.segment`); dt_raw (S,): the dt head at the
    state that opened it; seg_at, start_at (B, T): the segment in force after each frame
    and its start time; targets (B, T, D): the change each frame's segment must predict;
    updated, by_input (B, T): where a row updated, and where only an input change made it.
    """

    lines: Tensor
    dt_raw: Tensor
    seg_at: Tensor
    start_at: Tensor
    targets: Tensor
    updated: Tensor
    by_input: Tensor


def _jumpy_forcing(model: PCODE, batch: Trajectories, rule: SegmentRule, config: TrainConfig) -> Losses:
    """The PC-ODE's pass; `teacher_forcing` documents it and `pcnode.reference` holds its plain form."""
    walk = _walk(model, batch, rule, config)
    seq, times, mask = batch.x, batch.times, batch.real
    B, T1, D = seq.shape
    T = T1 - 1
    keep = model.scored_dims
    # Batched over every frame: frame i is predicted by the segment in force after it,
    # `seg_at[:, i]`, read at the span from its start to frame i+1.
    span = (times[:, 1:] - walk.start_at).reshape(B * T, 1)
    pred = in_chunks(model.along, walk.lines.index_select(0, walk.seg_at.flatten()), span).view(B, T, D)
    at_zero = in_chunks(model.along, walk.lines, span.new_zeros(len(walk.lines), 1))  # each segment at span 0
    displacement = _displacement_loss(pred, walk.targets, mask, keep)
    # A segment stays in force over several frames: its zero-span term counts once per real frame.
    in_force = seq.new_zeros(len(walk.lines)).index_add_(0, walk.seg_at.flatten(), mask.flatten().to(seq.dtype))
    zero_span = (at_zero[:, :keep].pow(2).sum(-1) * in_force).sum() / (mask.sum().clamp(min=1) * keep)
    dt_loss, mean_dt = _dt_loss(walk, times, mask, min(rule.n_burn, T))
    total = displacement + config.zero_span_weight * zero_span + config.dt_weight * dt_loss
    return Losses(total, displacement.detach(), zero_span.detach(), dt_loss.detach(), mean_dt, walk.updated)


def _walk(model: PCODE, batch: Trajectories, rule: SegmentRule, config: TrainConfig) -> Walk:
    """The frame loop: the skip decisions, and the cell updates of the rows that do not skip.

    With autograd, the loop keeps only the recurrent state `h` and the segments it opens
    (their lines and dt guesses, in the order opened). Without autograd, what the skip
    decisions read: each row's current segment (its line, start time, and the data's
    change since it began), that segment's index among all opened ones, the inputs its
    update read and, with the event option, its straight line in data space.
    """
    seq, times, u = batch.x, batch.times, batch.u
    B, T1, D = seq.shape
    T = T1 - 1
    keep = model.scored_dims
    x, dx = seq[:, :-1], seq[:, 1:] - seq[:, :-1]
    burn = min(rule.n_burn, T)
    device = seq.device
    every_row = torch.arange(B, device=device)
    first = with_inputs(x[:, :burn], None if u is None else u[:, :burn])
    burn_enc = model.encode(first.transpose(0, 1).reshape(burn * B, -1)).view(burn, B, -1).unbind(0)
    # With the event option, each step's velocity in the data, for the segments' straight lines.
    velocity = None if rule.event_threshold is None else dx / (times[:, 1:] - times[:, :-1]).unsqueeze(-1)

    h = seq.new_zeros(B, model.config.latent)
    opened: list[Tensor] = []
    opened_dt: list[Tensor] = []
    start, carried = times[:, :1], torch.zeros_like(dx[:, 0])
    opened_at = torch.zeros(B, dtype=torch.long, device=device)  # the frame each row's segment began at
    # Set at the first frame, which every row updates (the burn-in is at least one frame).
    line: Tensor | None = None
    seg: Tensor | None = None
    u_read: Tensor | None = None
    origin: Tensor | None = None
    heading: Tensor | None = None
    target = carried
    n_opened = 0
    segs: list[Tensor] = []
    starts: list[Tensor] = []
    targets: list[Tensor] = []
    updated: list[Tensor] = []
    by_input: list[Tensor] = []
    no_row = torch.zeros(B, dtype=torch.bool, device=device)
    for i in range(T):
        t_i, t_next = times[:, i : i + 1], times[:, i + 1 : i + 2]
        offset = None
        forced = no_row
        with torch.no_grad():
            if i < burn:
                upd = None  # every row updates
            else:
                assert line is not None
                target = carried + dx[:, i]
                err = (model.along(line, t_next - start) - target)[:, :keep].pow(2).mean(-1)
                away = None
                if origin is not None and heading is not None:  # the event option's line
                    away = (seq[:, i + 1] - origin - (t_next - start) * heading)[:, :keep].pow(2).mean(-1)
                skip = rule.keeps(err, away, i - opened_at) | (torch.rand_like(err) < config.jump_prob)
                if u is not None and u_read is not None:  # an input event ends the segment whatever the rule says
                    event = input_event(u[:, i], u_read, rule.input_threshold)
                    forced, skip = skip & event, skip & ~event
                upd = ~skip if skip.any() else None
                if config.feed_predictions > 0:
                    rows = every_row if upd is None else upd.nonzero().squeeze(-1)
                    own = model.along(line[rows], (t_i - start)[rows])
                    fed = torch.rand_like(own[:, :1]) < config.feed_predictions
                    offset = torch.where(fed, carried[rows] - own, 0.0)
                    offset[:, keep:] = 0.0  # auxiliary inputs are given, never predicted
        if upd is not None and not upd.any():  # every row keeps its segment
            carried = target
        else:  # the cell update of the rows that do not skip (all of them in the burn-in)
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
                    opened_at = torch.full_like(opened_at, i)
                    u_read = None if u is None else u[:, i]
                    upd = torch.ones(B, dtype=torch.bool, device=device)
                    if velocity is not None:
                        origin, heading = x[:, i], velocity[:, i]
                else:
                    assert line is not None and seg is not None
                    now = upd.unsqueeze(-1)
                    line = line.index_copy(0, rows, new_line.detach().to(line.dtype))
                    start = torch.where(now, t_i, start)
                    opened_at = torch.where(upd, i, opened_at)
                    carried = torch.where(now, fresh, target)
                    seg = seg.index_copy(0, rows, new_seg)
                    u_read = None if u is None or u_read is None else torch.where(now, u[:, i], u_read)
                    if velocity is not None and origin is not None and heading is not None:
                        origin, heading = torch.where(now, x[:, i], origin), torch.where(now, velocity[:, i], heading)
                n_opened += len(rows)
        assert seg is not None  # every row has a segment from the first frame on
        segs.append(seg)
        starts.append(start)
        targets.append(carried)
        updated.append(upd)
        by_input.append(forced)
    return Walk(
        torch.cat(opened),
        torch.cat(opened_dt).squeeze(-1),
        torch.stack(segs, 1),
        torch.cat(starts, 1),
        torch.stack(targets, 1),
        torch.stack(updated, 1),
        torch.stack(by_input, 1),
    )


def _displacement_loss(pred: Tensor, target: Tensor, mask: Tensor, keep: int) -> Tensor:
    """Mean squared error over the real (unmasked) frames and the first `keep` dims. (B, T, D) each."""
    w = mask.to(pred.dtype).unsqueeze(-1)
    n = w.sum().clamp(min=1) * keep
    return ((pred[..., :keep] - target[..., :keep]).pow(2) * w).sum() / n


def _dt_loss(walk: Walk, times: Tensor, mask: Tensor, burn: int) -> tuple[Tensor, float]:
    """Regress the dt head on the lengths of the segments that ended; also return their mean length.

    A segment ends at frame i >= burn where its row updates. A segment still open when
    a row's data ends, or ended only by an input, has only a lower bound on its length
    and is penalised only for predicting less than that. Without this the head never
    learns that a segment can outlast the window (on Lines nothing else ends).
    """
    seg_at, start_at, dt_raw = walk.seg_at, walk.start_at, walk.dt_raw
    B, T = seg_at.shape
    if T <= burn:
        return dt_raw.new_zeros(()), 1.0
    length = times[:, burn:T] - start_at[:, burn - 1 : T - 1]  # of the segment in force before frame i
    ended = walk.updated[:, burn:] & mask[:, burn:]
    miss = dt_raw[seg_at[:, burn - 1 : T - 1][ended]] - length[ended]
    closed = torch.where(walk.by_input[:, burn:][ended], miss.clamp(max=0), miss).pow(2)
    last = (mask.long().sum(1) - 1).unsqueeze(1)  # each row's last real transition
    open_len = (times.gather(1, last + 1) - start_at.gather(1, last)).squeeze(1)
    still_open = (dt_raw[seg_at.gather(1, last).squeeze(1)] - open_len).clamp(max=0).pow(2)
    mean_dt = length[ended].mean().item() if ended.any() else open_len.mean().item()
    return torch.cat([closed, still_open]).mean(), mean_dt
