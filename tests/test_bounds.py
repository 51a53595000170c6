"""Rollouts stay bounded whatever the weights, and bad input through the Python API raises a specific error."""
import math

import pytest
import torch

from pcnode import PCODE, ModelConfig, SegmentRule, TrainConfig, build_model, fit, rollout
from pcnode.config import load_config
from pcnode.errors import ConfigError, DataError

torch.set_num_threads(1)


# ---- numerical safety ------------------------------------------------------------------------------


def pcode(**bounds):
    """A small PC-ODE whose segment rule bounds its jumps by `bounds` (min_dt, max_dt)."""
    torch.manual_seed(0)
    model = PCODE(ModelConfig(state_dim=2, hidden=16, latent=16)).eval()
    model.rule = model.rule.replace(**bounds)
    return model


@pytest.mark.parametrize("bias, dt", [(1e30, "max"), (-1e30, "min")])
def test_extreme_dt_head_stays_within_its_bounds(bias, dt):
    model = pcode(min_dt=0.5, max_dt=7.0)
    with torch.no_grad():
        model.dt_head.bias.fill_(bias)
    ro = rollout(model, torch.rand(3, 4, 2), horizon=30)
    chosen = ro.dt[:, 3:][torch.isfinite(ro.t[:, 3:])]
    assert torch.all(chosen == (7.0 if dt == "max" else 0.5))
    assert ro.updates.tolist() == [math.ceil(27 / (7.0 if dt == "max" else 0.5))] * 3
    assert torch.isfinite(ro.frames()).all()


def test_huge_weights_everywhere_never_give_nan_times():
    model = pcode(max_dt=50.0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 1e6)
    ro = rollout(model, torch.rand(4, 4, 2), horizon=40)
    finite = torch.isfinite(ro.t)
    assert torch.isfinite(ro.dt[finite]).all()
    assert ((ro.dt[:, 3:][finite[:, 3:]] >= 1.0) & (ro.dt[:, 3:][finite[:, 3:]] <= 50.0)).all()


def test_a_rollout_that_would_run_too_long_stops_with_a_warning():
    model = pcode(min_dt=1e-6)
    with torch.no_grad():
        model.dt_head.bias.fill_(-1e30)  # every step as short as allowed
    with pytest.warns(RuntimeWarning, match="stopped after 20 updates"):
        ro = rollout(model, torch.rand(2, 4, 2), horizon=1e6, max_updates=20)
    assert ro.updates.tolist() == [20, 20]


def test_unbounded_dt_settings_are_refused():
    for bad in ({"max_dt": math.inf}, {"min_dt": 0.0}, {"min_dt": math.nan}, {"min_dt": 2.0, "max_dt": 1.0}):
        with pytest.raises(ConfigError):
            SegmentRule(**bad)
    with pytest.raises(ConfigError, match="max_updates"):
        rollout(pcode(), torch.rand(2, 4, 2), horizon=10, max_updates=0)


# ---- the same kinds of bad input through the Python API: specific exception types ---------------------

SEQ = torch.cumsum(torch.rand(6, 10, 2) * 0.1, 1)


def tiny():
    return build_model(ModelConfig(state_dim=2, hidden=16, latent=16))


API_CASES = [
    ("unknown-model", lambda: build_model(ModelConfig(kind="lstm")), ConfigError),
    ("unknown-setting", lambda: load_config(ModelConfig, {"depth": 3}, "model"), ConfigError),
    ("unknown-rule-setting", lambda: load_config(TrainConfig, {"rule": {"temperature": 1}}, "training"), ConfigError),
    ("non-integer-hidden", lambda: ModelConfig(hidden=16.5).validate(), ConfigError),
    ("nan-time-constant", lambda: ModelConfig(time_constant=math.nan).validate(), ConfigError),
    ("negative-lr", lambda: TrainConfig(lr=-1e-3).validate(), ConfigError),
    ("negative-batch-size", lambda: TrainConfig(batch_size=-8).validate(), ConfigError),
    ("nan-epsilon", lambda: TrainConfig(epsilon=math.nan).validate(), ConfigError),
    ("unknown-device", lambda: TrainConfig(device="abacus").validate(), ConfigError),
    ("non-tensor-data", lambda: fit(tiny(), SEQ.numpy(), TrainConfig(steps=1)), DataError),
    ("integer-data", lambda: fit(tiny(), SEQ.long(), TrainConfig(steps=1)), DataError),
    ("wrong-state-dim", lambda: fit(tiny(), torch.rand(6, 10, 3), TrainConfig(steps=1)), DataError),
    ("inf-in-data", lambda: fit(tiny(), SEQ.index_fill(1, torch.tensor([2]), math.inf), TrainConfig(steps=1)),
     DataError),
    ("shorter-than-burn-in", lambda: fit(tiny(), SEQ[:, :4], TrainConfig(steps=1)), DataError),
    ("zero-horizon", lambda: rollout(tiny(), SEQ[:, :4], horizon=0), ConfigError),
    ("negative-horizon", lambda: rollout(tiny(), SEQ[:, :4], horizon=-5), ConfigError),
    ("horizon-inside-burn-in", lambda: rollout(tiny(), SEQ[:, :4], horizon=3), ConfigError),
    ("wrong-dtype-burn-in", lambda: rollout(tiny(), SEQ[:, :4].double(), horizon=9), DataError),
    ("nan-burn-in", lambda: rollout(tiny(), SEQ[:, :4] * math.nan, horizon=9), DataError),
    ("nan-query-time", lambda: rollout(tiny(), SEQ[:, :4], horizon=9).at(math.nan), DataError),
    ("query-of-wrong-shape", lambda: rollout(tiny(), SEQ[:, :4], horizon=9).at(torch.zeros(2, 2, 2)), DataError),
    ("zero-eval-batch", lambda: __import__("pcnode").evaluate(tiny(), SEQ, batch_size=0), ConfigError),
    ("eval-on-too-short", lambda: __import__("pcnode").evaluate(tiny(), SEQ[:, :4]), DataError),
]


@pytest.mark.parametrize("call, error", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_input_through_the_api_raises_a_specific_error(call, error):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error and str(info.value) and "\n" not in str(info.value)


def test_non_increasing_burn_in_times_are_refused():
    times = torch.tensor([[0.0, 1.0, 1.0, 2.0]] * 6)
    with pytest.raises(DataError, match="increasing"):
        rollout(tiny(), SEQ[:, :4], horizon=9, t_burn=times)
