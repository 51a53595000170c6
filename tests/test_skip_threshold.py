"""The skip threshold relative to the data: the same decisions in any units, fixed once per run."""
import json

import pytest
import torch

from pcnode import ModelConfig, SkipRule, TrainConfig, build_model, fit, load_run, teacher_forcing
from pcnode.errors import ConfigError
from pcnode.forcing import mean_square_change

torch.set_num_threads(1)


def scaled_copy(model, k):
    """The same model for data in units k times smaller: inputs divided, outputs multiplied by k."""
    other = build_model(model.config)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.encoder.inp.weight /= k
        other.decoder.out.weight *= k
        other.decoder.out.bias *= k
    return other


def test_the_same_data_in_other_units_makes_the_same_skip_decisions_under_the_relative_threshold():
    torch.manual_seed(0)
    model = build_model(ModelConfig(state_dim=3, hidden=32, latent=32))
    seq = torch.cumsum(torch.rand(24, 16, 3) * 0.05, 1)
    rule = SkipRule(relative_epsilon=5.0, jump_prob=0.0)  # an untrained model: about half the rows skip
    a = teacher_forcing(model, seq, rule)
    b = teacher_forcing(scaled_copy(model, 10.0), seq * 10, rule)
    assert 0 < a.updated[:, 4:].float().mean() < 1, "the case should mix skips and updates"
    assert torch.equal(a.updated, b.updated)
    absolute = SkipRule(epsilon=rule.for_data(seq).threshold, jump_prob=0.0)
    c = teacher_forcing(scaled_copy(model, 10.0), seq * 10, absolute)
    assert not torch.equal(a.updated, c.updated)  # an absolute threshold depends on the units


def test_the_mean_square_change_counts_real_transitions_of_the_state_dims_only():
    seq = torch.zeros(2, 4, 2)
    seq[:, :, 0] = torch.tensor([0.0, 1.0, 3.0, 100.0])  # the last transition of row 1 is padding
    seq[:, :, 1] = torch.arange(4.0) * 50                 # an auxiliary dim
    mask = torch.tensor([[True, True, True], [True, True, False]])
    expected = (1 + 4 + 97 ** 2 + 1 + 4) / 5
    assert mean_square_change(seq, mask, aux_dims=1) == pytest.approx(expected)


def small_fit(tmp_path, rule, resume=False, steps=4):
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16), seed=0)
    data = torch.cumsum(torch.rand(40, 12, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)
    cfg = TrainConfig(steps=steps, batch_size=8, eval_every=2, checkpoint_every=2, eval_size=8, rule=rule)
    fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "run", resume=resume)
    return data


def test_a_run_stores_the_threshold_it_measured_and_keeps_it_on_resume_and_reload(tmp_path):
    data = small_fit(tmp_path, SkipRule(relative_epsilon=2.0), steps=2)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["rule"]
    assert stored["relative_epsilon"] == 2.0 and stored["epsilon"] is None
    assert stored["data_change"] == pytest.approx(mean_square_change(data[:32]))
    small_fit(tmp_path, SkipRule(relative_epsilon=2.0), resume=True, steps=4)   # the same run continues
    _, cfg = load_run(tmp_path / "run")
    rule = SkipRule(**cfg["train"]["rule"])
    assert rule.threshold == pytest.approx(2.0 * mean_square_change(data[:32]))


@pytest.mark.parametrize("started", [SkipRule(epsilon=1e-3), SkipRule(relative_epsilon=2.0)])
def test_a_run_resumed_without_a_threshold_continues_with_the_one_it_started_with(tmp_path, started):
    small_fit(tmp_path, started, steps=2)
    before = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["rule"]
    small_fit(tmp_path, SkipRule(), resume=True, steps=4)   # the default would be another threshold
    after = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["rule"]
    assert after == before


def test_a_rule_with_both_forms_of_threshold_is_refused():
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(rule=SkipRule(epsilon=1e-3, relative_epsilon=1.0)).validate()


def test_an_unmeasured_relative_threshold_asks_to_be_fixed_on_the_data():
    with pytest.raises(ConfigError, match="for_data"):
        SkipRule(relative_epsilon=1.0).threshold
