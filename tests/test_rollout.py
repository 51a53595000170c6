"""Rollouts: a clock per trajectory, honest update counts, queries at any real time."""
import math

import pytest
import torch

from pcnode import PCODE, RNN, ModelConfig, rollout
from pcnode.errors import ConfigError, DataError


class DtFromData(PCODE):
    """A PC-ODE that waits as many frames as its input's first number says and
    predicts no change, so each trajectory keeps its own fixed dt."""

    def encode(self, x):
        return x

    def update(self, e, h):
        return torch.cat([e[:, :1], torch.zeros_like(h[:, 1:])], -1)

    def along(self, seg, span):
        return torch.zeros(*seg.shape[:-1], 2)

    def dt_raw(self, h):
        return h[:, :1]


def fixed_dt_rollout(dts, horizon=20.0, n_burn=4):
    model = DtFromData(ModelConfig(state_dim=2))
    x = torch.zeros(len(dts), n_burn, 2)
    x[..., 0] = torch.tensor(dts).unsqueeze(-1)
    return rollout(model, x, horizon)


def test_each_trajectory_stops_when_its_clock_reaches_the_horizon():
    dts = [2.0, 1.0, 5.0, 3.0]
    ro = fixed_dt_rollout(dts, horizon=20.0)
    # from t = 3 to 20 is 17 frames: ceil(17 / dt) updates
    assert ro.updates.tolist() == [math.ceil(17 / d) for d in dts]


def test_a_jump_that_would_stop_less_than_min_dt_short_of_the_horizon_runs_on_to_it():
    # min_dt is 1 frame. From t = 3: 16.99 frames would stop at 19.99 and update again
    # there for the last 0.01 frame; 1.5 frames reach 19.5 after 11 jumps.
    ro = fixed_dt_rollout([16.99, 1.5, 8.5, 17.5], horizon=20.0)
    assert ro.updates.tolist() == [1, 11, 2, 1]
    assert ro.t[0, 3].item() == 3.0 and ro.dt[0, 3].item() == pytest.approx(17.0)
    # The same jumps with a horizon further on stop where they chose to.
    ro = fixed_dt_rollout([16.99, 1.5], horizon=40.0)
    assert ro.t[0, 4].item() == pytest.approx(19.99) and ro.updates[1].item() == math.ceil(37 / 1.5)


def test_padding_steps_have_infinite_times():
    ro = fixed_dt_rollout([5.0, 1.0, 2.0], horizon=20.0)
    used = 3 + ro.updates  # three burn-in steps before the last burn-in frame
    for b in range(3):
        assert torch.isfinite(ro.t[b, : used[b]]).all()
        assert torch.isinf(ro.t[b, used[b]:]).all()


def test_rnn_updates_once_per_frame(device):
    ro = rollout(RNN(ModelConfig(state_dim=2)).to(device), torch.rand(5, 4, 2, device=device), horizon=20)
    assert ro.updates.tolist() == [17] * 5
    assert torch.equal(ro.dt[:, 3:20].cpu(), torch.ones(5, 17))


def test_query_at_an_update_time_equals_that_updates_prediction(device):
    torch.manual_seed(0)
    model = PCODE(ModelConfig(state_dim=2)).to(device)
    with torch.no_grad():
        model.dt_head.bias.fill_(1.5)  # dt about 2.5 frames: a few jumps
    ro = rollout(model, torch.rand(4, 4, 2, device=device), horizon=30)
    for b in range(4):
        n = 3 + ro.updates[b].item()
        for k in range(3, n - 1):
            got = ro.at(ro.t[b:b + 1, k + 1:k + 2].expand(4, 1))[b, 0]
            assert torch.allclose(got, ro.x[b, k + 1], atol=1e-6)


def test_latent_moves_on_a_straight_line_between_updates():
    torch.manual_seed(0)
    model = PCODE(ModelConfig(state_dim=2))
    with torch.no_grad():
        model.dt_head.bias.fill_(5.0)
    ro = rollout(model, torch.rand(3, 4, 2), horizon=40)
    t0, dt = ro.t[:, 3:4], ro.dt[:, 3:4]
    a, b = ro.latent(t0 + 0.1 * dt), ro.latent(t0 + 0.9 * dt)
    mid = ro.latent(t0 + 0.5 * dt)
    assert torch.allclose(mid, (a + b) / 2, atol=1e-5)
    assert not torch.allclose(a, b)


def test_queries_accept_a_scalar_a_grid_or_times_per_trajectory():
    ro = rollout(PCODE(ModelConfig(state_dim=2)), torch.rand(5, 4, 2), horizon=20)
    assert ro.at(7.5).shape == (5, 2)
    assert ro.at(torch.linspace(4, 20, 33)).shape == (5, 33, 2)
    per_traj = ro.at(torch.tensor([[4.0], [5.0], [6.0], [7.0], [8.0]]))
    assert per_traj.shape == (5, 1, 2)
    assert torch.allclose(per_traj[2, 0], ro.at(6.0)[2])


def test_queries_can_be_finer_than_the_data():
    torch.manual_seed(0)
    model = PCODE(ModelConfig(state_dim=2))
    ro = rollout(model, torch.rand(2, 4, 2), horizon=10)
    fine = ro.at(torch.arange(3, 10.001, 0.25))
    assert fine.shape == (2, 29, 2)
    assert torch.isfinite(fine).all()


def test_frames_reads_the_rollout_at_integer_times_after_burn_in():
    ro = rollout(RNN(ModelConfig(state_dim=2)), torch.rand(2, 4, 2), horizon=12)
    assert ro.frames().shape == (2, 9, 2)
    assert torch.allclose(ro.frames()[:, 0], ro.at(4.0))


def test_a_selection_reads_like_those_rows_of_the_whole_batch():
    torch.manual_seed(0)
    ro = rollout(PCODE(ModelConfig(state_dim=2, hidden=16, latent=16)), torch.rand(5, 4, 2), horizon=20)
    rows = torch.tensor([3, 0])
    grid = torch.arange(3, 20.001, 0.5)
    assert torch.equal(ro.select(rows).at(grid), ro.at(grid)[rows])
    assert torch.equal(ro.select(rows).updates, ro.updates[rows])


@pytest.mark.parametrize("x, horizon, error", [
    (torch.rand(2, 4, 3), 10, DataError),                              # wrong state dim
    (torch.rand(4, 2), 10, DataError),                                 # missing batch dim
    (torch.full((2, 4, 2), float("nan")), 10, DataError),              # NaN
    (torch.rand(0, 4, 2), 10, DataError),                              # empty
    (torch.rand(2, 4, 2), 3, ConfigError),                             # horizon inside burn-in
    (torch.rand(2, 4, 2), -5, ConfigError),                            # negative horizon
    (torch.rand(2, 4, 2), float("inf"), ConfigError),                  # endless
])
def test_bad_rollout_input_is_refused(x, horizon, error):
    with pytest.raises(error):
        rollout(PCODE(ModelConfig(state_dim=2)), x, horizon)


def test_a_runaway_rollout_stops_with_a_warning():
    model = PCODE(ModelConfig(state_dim=2))
    model.rule = model.rule.replace(min_dt=0.01)
    with torch.no_grad():
        model.dt_head.bias.fill_(-1e4)
    with pytest.warns(RuntimeWarning, match="stopped after 5 updates"):
        ro = rollout(model, torch.rand(2, 4, 2), horizon=20, max_updates=5)
    assert ro.updates.max().item() == 5
