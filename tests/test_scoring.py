"""Scoring beside the paper: the authors' protocol, collisions from the simulator, event recall."""
import math

import numpy as np
import pytest
import torch
from test_rollout import fixed_dt_rollout

from pcnode import PCODE, ModelConfig, evaluate
from pcnode.errors import ConfigError, DataError
from pcnode.evaluate import chance_recall, event_recall, mse_ratio, trajectory_mse, updates_near
from pcnode.forcing import forced_update_times
from pcnode.segments import SegmentRule
from pcnode.tasks import billiards, collisions

torch.set_num_threads(1)


class Quadratic(PCODE):
    """Reads its frame and predicts a change of span**2 * c in every dim, with dt 2.5: its
    prediction jumps at every update, so which step a time is read from matters."""

    C = 0.01

    def encode(self, x):
        return x

    def update(self, e, h):
        return h

    def along(self, seg, span):
        span = torch.as_tensor(span, dtype=seg.dtype)
        return (span ** 2 * self.C).expand(*seg.shape[:-1], self.config.state_dim).clone()

    def dt_raw(self, h):
        return h.new_full((h.shape[0], 1), 2.5)


def authors_by_hand(x, n_burn=4, dt=2.5, c=Quadratic.C):
    """Their protocol written out for one trajectory x (T, D) and the model above."""
    T = len(x)
    steps = [(float(k), x[k]) for k in range(n_burn)]         # burn-in steps read the true frames
    t, frame = float(n_burn - 1), x[n_burn - 1]
    while t < T:                                               # then each step reads its own prediction
        frame, t = frame + dt ** 2 * c, t + dt
        steps.append((t, frame))
    pred = [x[0]]
    for q in range(1, T):
        tk, xk = [s for s in steps if s[0] < q - 0.5][-1]      # the last step that started before q - 0.5
        pred.append(xk + (q - tk) ** 2 * c)
    return float(((np.stack(pred) - x) ** 2).mean())


def pcnode_by_hand(x, n_burn=4, dt=2.5, c=Quadratic.C, min_dt=1.0):
    """The default protocol written out for one trajectory x (T, D) and the model above: a
    rollout from the last burn-in frame, read at every later frame from the step whose span
    holds it, mean squared error over those frames."""
    T = len(x)
    horizon = T - 1
    steps, t, frame = [], float(n_burn - 1), x[n_burn - 1]
    while t < horizon:
        span = dt if horizon - (t + dt) >= min_dt or t + dt >= horizon else horizon - t  # run on to the horizon
        steps.append((t, span, frame))
        frame, t = frame + span ** 2 * c, t + span
    pred = []
    for q in range(n_burn, T):
        tk, _, fk = [s for s in steps if s[0] < q <= s[0] + s[1]][0]
        pred.append(fk + (q - tk) ** 2 * c)
    return float(((np.stack(pred) - x[n_burn:]) ** 2).mean())


def test_the_default_protocol_gives_the_hand_computed_value():
    model = Quadratic(ModelConfig(state_dim=2)).eval()
    x = torch.cumsum(torch.rand(3, 12, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)
    got = evaluate(model, x)
    expected = np.mean([pcnode_by_hand(x[b].double().numpy()) for b in range(3)])
    assert got["mse"] == pytest.approx(expected, rel=1e-5)
    # From t = 3: jumps of 2.5 to 5.5 and 8, then one of 3 runs on to the horizon (11) instead of
    # stopping 0.5 short of it: three updates, the last spans 3 frames.
    assert got["updates"] == 3 and got["mean_dt"] == pytest.approx((2.5 + 2.5 + 3.0) / 3)


def test_the_authors_protocol_gives_the_hand_computed_value():
    model = Quadratic(ModelConfig(state_dim=2)).eval()
    x = torch.cumsum(torch.rand(3, 12, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)
    got = evaluate(model, x, protocol="authors")["mse"]
    expected = np.mean([authors_by_hand(x[b].double().numpy()) for b in range(3)])
    assert got == pytest.approx(expected, rel=1e-5)
    assert evaluate(model, x)["mse"] != pytest.approx(expected, rel=1e-3)  # our protocol scores differently


def test_the_simulator_counts_the_collisions_it_resolves():
    # One ball heads for the right wall 0.15 away at speed 1: it hits at time 0.15, in frame 3
    # (a frame is 0.05); the other ball stands still far away.
    pos = np.array([[[0.75, 0.5], [0.2, 0.2]]])
    vel = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    _, events = billiards(pos, vel, 6, return_events=True)
    assert events.tolist() == [[0, 0, 0, 1, 0, 0]]


def test_billiards_tasks_have_collisions_and_others_none():
    events = collisions("billiards2d", 50, seed=0)
    assert events.shape == (50, 45) and events[:, 0].sum() == 0 and events.sum() > 50
    with pytest.raises(ValueError):
        collisions("circles", 5)


def test_event_recall_counts_the_events_with_an_update_within_a_frame():
    ro = fixed_dt_rollout([5.0, 5.0], horizon=20.0)  # two trajectories updating at 3, 8, 13 and 18
    events = torch.zeros(2, 21, dtype=torch.long)
    events[0, 9] = 1    # in (8, 9]: the update at 8 lies in [8, 10]       -> recalled
    events[0, 15] = 2   # in (14, 15]: nothing in [14, 16]                  -> missed (twice)
    events[1, 12] = 1   # in (11, 12]: the update at 13 lies in [11, 13]    -> recalled
    events[1, 2] = 5    # during the burn-in: not counted
    assert event_recall(ro, events) == pytest.approx(2 / 4)
    assert math.isnan(event_recall(ro, torch.zeros(2, 21, dtype=torch.long)))


def test_chance_recall_is_what_as_many_random_updates_recall():
    inf = math.inf
    events = torch.zeros(1, 21, dtype=torch.long)
    events[0, 10] = 1
    # One update after the burn-in (n_burn 4: the span (3, 20], 17 frames long), the window [9, 11]:
    # hit with probability 2 / 17, whatever the update's own time.
    one = torch.tensor([[3.0, 15.0, inf]])
    assert chance_recall(one, events, 4) == pytest.approx(2 / 17)
    # A burn-in update in the window recalls the event whatever the others do.
    events[0, 10], events[0, 4] = 0, 1
    assert chance_recall(one, events, 4) == 1.0
    # Against updates drawn at random: many rows, a window clipped at either end of the span.
    g = torch.Generator().manual_seed(0)
    events = (torch.rand(4000, 21, generator=g) < 0.2).long()
    n = torch.randint(0, 6, (4000, 1), generator=g)
    drawn = 3 + 17 * (1 - torch.rand(4000, 5, generator=g, dtype=torch.float64))
    drawn[torch.arange(5).expand(4000, 5) >= n] = inf
    times = torch.cat([torch.full((4000, 1), 3.0, dtype=torch.float64), drawn], 1)
    assert chance_recall(times, events, 4) == pytest.approx(updates_near(times, events, 4), abs=0.01)
    assert math.isnan(chance_recall(times, torch.zeros_like(events), 4))


def test_forced_update_times_show_whether_the_training_rule_ends_segments_at_the_events():
    # Straight lines that bounce off x = 0.5 between frames 11 and 12, the event at frame 12.
    t = torch.arange(21.0).view(1, -1, 1)
    v = torch.tensor([[0.04, 0.01], [0.05, -0.02], [0.06, 0.0]]).unsqueeze(1)
    free = 0.5 - v[..., :1] * 11.5 + v[..., :1] * t  # reaches 0.5 at t = 11.5
    x = torch.cat([0.5 - (free - 0.5).abs(), 0.2 + v[..., 1:] * t], dim=-1)
    events = torch.zeros(3, 21, dtype=torch.long)
    events[:, 12] = 1
    model = PCODE(ModelConfig(state_dim=2))
    loose = SegmentRule(threshold=1e9)  # the model's own test never fails: one segment after the burn-in
    times = forced_update_times(model, x, rule=loose)
    assert times.shape == (3, 20) and torch.isfinite(times).sum() == 3 * 4  # the burn-in's updates alone
    assert updates_near(times, events, 4) == 0.0
    assert updates_near(forced_update_times(model, x, rule=loose.replace(event_threshold=1e-6)), events, 4) == 1.0


def test_evaluating_restores_the_mode_the_model_was_in_also_on_an_error():
    from pcnode.model import evaluating

    model = PCODE(ModelConfig(state_dim=2))
    model.train()
    with pytest.raises(RuntimeError), evaluating(model):
        assert not model.training
        raise RuntimeError
    assert model.training
    model.eval()
    with evaluating(model):
        pass
    assert not model.training


def test_trajectory_mse_is_what_evaluate_averages_and_mse_ratio_brackets_the_ratio():
    torch.manual_seed(0)
    model = PCODE(ModelConfig(state_dim=2, hidden=16, latent=8))
    x = torch.randn(40, 12, 2).cumsum(1) * 0.1
    each = trajectory_mse(model, x, batch_size=16)
    assert each.shape == (40,) and each.dtype == torch.float64
    assert each.mean().item() == pytest.approx(evaluate(model, x, progress=False)["mse"], rel=1e-6)
    # A model twice as wrong on every trajectory: the ratio and its whole interval are 2.
    assert mse_ratio(2 * each, each) == pytest.approx((2.0, 2.0, 2.0))
    # Noisy ratios: the interval holds the ratio of the means and tightens with more trajectories.
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(400, generator=g), torch.rand(400, generator=g)
    ratio, lo, hi = mse_ratio(a, b)
    assert lo < ratio < hi and ratio == pytest.approx((a.mean() / b.mean()).item())
    _, lo4, hi4 = mse_ratio(a.repeat(4), b.repeat(4))
    assert hi4 - lo4 < hi - lo
    with pytest.raises(DataError):
        mse_ratio(a, b[:10])


def test_chance_recall_of_a_rollout_judges_the_updates_event_recall_judges():
    ro = fixed_dt_rollout([5.0, 3.0], horizon=20.0)
    events = torch.zeros(2, 21, dtype=torch.long)
    events[0, 9], events[1, 12], events[1, 4] = 1, 2, 1
    assert chance_recall(ro, events) == chance_recall(ro.t[:, ro.n_burn - 1 :], events, ro.n_burn)
    with pytest.raises(ConfigError):
        chance_recall(ro.t, events)
