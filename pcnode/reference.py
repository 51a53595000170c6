"""Teacher forcing written frame by frame, as the method states it: the check of `pcnode.forcing`.

`reference_forcing` runs every row's cell at every frame and decodes every loss term
where it arises, with no work skipped, so that it reads like the method in
`pcnode.forcing`'s docstring. `pcnode.forcing.teacher_forcing` must give the same
losses, update decisions and gradients (tests/test_teacher_forcing.py compares them, and
benchmarks/train_speed.py --reference times this one).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import TrainConfig
from .data import Trajectories
from .forcing import Losses, input_event
from .model import PCODE, SequenceModel, with_inputs
from .segments import SegmentRule


def reference_forcing(
    model: SequenceModel,
    batch: Tensor | Trajectories,
    rule: SegmentRule | None = None,
    config: TrainConfig | None = None,
) -> Losses:
    """Teacher forcing written frame by frame as the method states it (slow; for reading and testing).

    Every row runs the cell at every frame and every loss term is decoded where it
    arises. `teacher_forcing` must give the same losses, decisions and gradients, and
    draws its random numbers in the same order.
    """
    batch = Trajectories.of(batch)
    batch.check_inputs(model.config.input_dim, "batch")
    seq, times, mask, u = batch.x, batch.times, batch.real, batch.u
    rule = (rule or model.rule).bind(model)
    config = config or TrainConfig()
    B, T1, D = seq.shape
    T = T1 - 1
    # A jumping rule is bound only to a model with a dt head (`SegmentRule.bind`): a PC-ODE.
    pcode = model if rule.jumps and isinstance(model, PCODE) else None
    keep = model.scored_dims
    times = times.unsqueeze(-1)
    h = seq.new_zeros(B, model.state_size)
    start, carried = times[:, 0], seq.new_zeros(B, D)
    opened_at = torch.zeros(B, dtype=torch.long, device=seq.device)  # the frame the segment began at
    u_read = None if u is None else u[:, 0]  # the inputs the current segment's update read
    disp, zero, dt_terms, lengths, updated = [], [], [], [], []
    last = mask.sum(1) - 1
    open_h: dict[int, Tensor] = {}
    open_len: dict[int, Tensor] = {}
    origin, heading = seq[:, 0], seq.new_zeros(B, D)  # the event option's line, set at every update
    for i in range(T):
        t_i, t_next, dx = times[:, i], times[:, i + 1], seq[:, i + 1] - seq[:, i]
        skip = torch.zeros(B, dtype=torch.bool, device=seq.device)
        forced = torch.zeros_like(skip)  # updates that only an input change caused
        offset = torch.zeros_like(carried)
        if i >= rule.n_burn:
            with torch.no_grad():
                if pcode is not None:
                    err = (predicted(model, h, t_next - start) - (carried + dx))[:, :keep].pow(2).mean(-1)
                    away = None
                    if rule.event_threshold is not None:  # the data's distance from its segment's straight line
                        away = (seq[:, i + 1] - (origin + (t_next - start) * heading))[:, :keep].pow(2).mean(-1)
                    skip = rule.keeps(err, away, i - opened_at) | (torch.rand_like(err) < config.jump_prob)
                    if u is not None and u_read is not None:
                        event = input_event(u[:, i], u_read, rule.input_threshold)
                        forced, skip = skip & event, skip & ~event
                if config.feed_predictions > 0:  # an updating row may read the frame its segment predicted
                    own = predicted(model, h, t_i - start)
                    fed = (
                        torch.rand(int((~skip).sum()), 1, dtype=seq.dtype, device=seq.device) < config.feed_predictions
                    )
                    offset[~skip] = torch.where(fed, (carried - own)[~skip], 0.0)
                    offset[:, keep:] = 0.0
            if pcode is not None:
                ends = ~skip & mask[:, i]
                miss = (pcode.dt_raw(h) - (t_i - start)).squeeze(-1)
                dt_terms.append(torch.where(forced, miss.clamp(max=0), miss).pow(2)[ends])
                lengths.append((t_i - start).squeeze(-1)[ends])
        frame = with_inputs(seq[:, i] - offset, None if u is None else u[:, i])
        h_tick = model.update(model.encode(frame), model.advance(h, t_i - start) if i else h)
        s = skip.unsqueeze(-1)
        h = torch.where(s, h, h_tick)
        start = torch.where(s, start, t_i)
        opened_at = torch.where(skip, opened_at, i)
        carried = torch.where(s, carried + dx, dx + offset)
        origin = torch.where(s, origin, seq[:, i])
        heading = torch.where(s, heading, dx / (t_next - t_i))
        if u is not None and u_read is not None:
            u_read = torch.where(s, u_read, u[:, i])
        updated.append(~skip)
        for b in range(B):
            if last[b] == i:  # the segment still open when this row's real data ends
                open_h[b], open_len[b] = h[b], times[b, i + 1, 0] - start[b, 0]
        m = mask[:, i : i + 1].to(seq.dtype)
        disp.append(((predicted(model, h, t_next - start) - carried)[:, :keep].pow(2) * m).sum())
        if pcode is not None:
            zero.append((predicted(model, h, 0.0)[:, :keep].pow(2) * m).sum())
    n = mask.sum() * keep
    displacement = sum(disp) / n
    total, zero_span, dt_loss, mean_dt = displacement, seq.new_zeros(()), seq.new_zeros(()), 1.0
    if pcode is not None:
        zero_span = sum(zero) / n
        if T > rule.n_burn:
            still_open = torch.stack([open_len[b] for b in range(B)])
            dt_open = pcode.dt_raw(torch.stack([open_h[b] for b in range(B)])).squeeze(-1)
            dt_terms.append((dt_open - still_open).clamp(max=0).pow(2))
            dt_loss = torch.cat(dt_terms).mean()
            ended = torch.cat(lengths)
            mean_dt = ended.mean().item() if len(ended) else still_open.mean().item()
        total = total + config.zero_span_weight * zero_span + config.dt_weight * dt_loss
    return Losses(total, displacement.detach(), zero_span.detach(), dt_loss.detach(), mean_dt, torch.stack(updated, 1))


def predicted(model: SequenceModel, h: Tensor, span: Tensor | float) -> Tensor:
    """The change a segment opened by the update that gave `h` predicts `span` frames on:
    the latent advanced along its straight line and decoded (the authors'), or with
    `line="data"` the decoded velocity times the span, a straight line in data space."""
    if model.config.line == "data":
        return model.decode(h) * span
    return model.decode(model.advance(h, span))
