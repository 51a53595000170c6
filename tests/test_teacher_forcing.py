"""The fast teacher forcing computes exactly what the plain per-frame formulation does.

`reference` below is the method written out frame by frame, with every loss term
decoded where it arises and no work skipped; `pcnode.teacher_forcing` must agree
with it in losses, update decisions and gradients.
"""
import pytest
import torch

from pcnode import ModelConfig, SkipRule, build_model, teacher_forcing


def reference(model, seq, rule, times=None, mask=None):
    B, T1, D = seq.shape
    T = T1 - 1
    times = torch.arange(T1, dtype=seq.dtype, device=seq.device).expand(B, T1) if times is None else times
    mask = torch.ones(B, T, dtype=torch.bool, device=seq.device) if mask is None else mask
    keep = D - model.config.aux_dims
    h = seq.new_zeros(B, model.config.latent)
    start = times[:, :1]
    carried = seq.new_zeros(B, D)
    disp, zero, dt_terms, seg_lengths, updated = [], [], [], [], []
    last = mask.sum(1) - 1
    open_h, open_len = [None] * B, [None] * B
    for i in range(T):
        t_i, t_next = times[:, i:i + 1], times[:, i + 1:i + 2]
        dx = seq[:, i + 1] - seq[:, i]
        if model.jumpy and i >= rule.n_burn:
            with torch.no_grad():
                guess = model.decode(model.advance(h, t_next - start))
                err = (guess - (carried + dx))[:, :keep].pow(2).mean(-1, keepdim=True)
                skip = (err < rule.epsilon) | (torch.rand_like(err) < rule.jump_prob)
                # Feeding predictions: an updating row reads the frame its segment predicted,
                # `x_i - offset`, and measures the new segment's targets from it.
                offset = torch.zeros_like(carried)
                if rule.feed_predictions > 0:
                    upd = ~skip.squeeze(-1)
                    own = model.decode(model.advance(h, t_i - start))
                    fed = torch.rand(int(upd.sum()), 1, dtype=seq.dtype, device=seq.device) < rule.feed_predictions
                    offset[upd] = torch.where(fed, (carried - own)[upd], 0.0)
                    offset[:, keep:] = 0.0
            h_tick = model.update(model.encode(seq[:, i] - offset), model.advance(h, t_i - start))
            ends = (~skip).squeeze(-1) & mask[:, i]
            dt_terms.append(((model.dt_raw(h) - (t_i - start)).squeeze(-1).pow(2))[ends])
            seg_lengths.append((t_i - start).squeeze(-1)[ends])
            h = torch.where(skip, h, h_tick)
            start = torch.where(skip, start, t_i)
            carried = torch.where(skip, carried + dx, dx + offset)
            updated.append(~skip.squeeze(-1))
        else:
            h_tick = model.update(model.encode(seq[:, i]), model.advance(h, t_i - start))
            h, start, carried = h_tick, t_i, dx
            updated.append(torch.ones(B, dtype=torch.bool, device=seq.device))
        for b in range(B):
            if last[b] == i:  # the segment still open when this row's real data ends
                open_h[b], open_len[b] = h[b], times[b, i + 1] - start[b, 0]
        m = mask[:, i:i + 1].to(seq.dtype)
        disp.append(((model.decode(model.advance(h, t_next - start)) - carried)[:, :keep].pow(2) * m).sum())
        if model.jumpy:
            zero.append((model.decode(model.advance(h, 0.0))[:, :keep].pow(2) * m).sum())
    n = mask.sum() * keep
    displacement = sum(disp) / n
    total = displacement
    if model.jumpy:
        dt_open = model.dt_raw(torch.stack(open_h)).squeeze(-1)
        dt_terms.append((dt_open - torch.stack(open_len)).clamp(max=0).pow(2))
        total = total + rule.zero_span_weight * sum(zero) / n + rule.dt_weight * torch.cat(dt_terms).mean()
    return total, displacement, torch.stack(updated, 1)


CASES = {
    "pcode": dict(kind="pcode"),
    "pcode-aux": dict(kind="pcode", aux_dims=1),
    "pcode-fed": dict(kind="pcode", feed_predictions=0.5),
    "pcode-aux-fed": dict(kind="pcode", aux_dims=1, feed_predictions=1.0),
    "rnn": dict(kind="rnn"),
    "odernn": dict(kind="odernn"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("irregular", [False, True])
def test_fast_teacher_forcing_matches_the_per_frame_reference(case, irregular, device):
    torch.manual_seed(0)
    settings = dict(CASES[case])
    feed = settings.pop("feed_predictions", 0.0)
    model = build_model(ModelConfig(state_dim=3, hidden=32, latent=32, **settings)).double().to(device)
    seq = torch.cumsum(torch.rand(16, 14, 3, dtype=torch.float64) * 0.05, 1).to(device)
    times = torch.cumsum(torch.rand(16, 14, dtype=torch.float64) + 0.5, 1).to(device) if irregular else None
    mask = torch.ones(16, 13, dtype=torch.bool, device=device)
    mask[:4, 9:] = False  # four shorter sequences
    rule = SkipRule(epsilon=2e-4, jump_prob=0.1, feed_predictions=feed)

    torch.manual_seed(1)
    fast = teacher_forcing(model, seq, rule, times=times, mask=mask)
    fast.total.backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    total, displacement, updated = reference(model, seq, rule, times=times, mask=mask)
    total.backward()

    assert torch.equal(fast.updated, updated)
    if model.jumpy:
        assert 0 < updated[:, 4:].float().mean() < 1, "the case should mix skips and updates"
    assert torch.allclose(fast.displacement, displacement.detach(), rtol=1e-10)
    assert torch.allclose(fast.total, total, rtol=1e-10)
    for p, g in zip(model.parameters(), fast_grads):
        assert torch.allclose(p.grad, g, rtol=1e-8, atol=1e-12)
