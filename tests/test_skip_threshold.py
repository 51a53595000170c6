"""The skip threshold relative to the data: the same decisions in any units, fixed once per run and kept
in its segment rule."""
import json

import pytest
import torch

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, fit, load_run, teacher_forcing
from pcnode.errors import ConfigError
from pcnode.segments import mean_square_change

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
    config = TrainConfig(jump_prob=0.0)

    def relative(data):  # an untrained model: about half the rows skip
        return SegmentRule.resolve(SegmentRule(), mean_square_change(data), relative_epsilon=5.0)
    a = teacher_forcing(model, seq, relative(seq), config)
    b = teacher_forcing(scaled_copy(model, 10.0), seq * 10, relative(seq * 10), config)
    assert 0 < a.updated[:, 4:].float().mean() < 1, "the case should mix skips and updates"
    assert torch.equal(a.updated, b.updated)
    absolute = relative(seq)  # the threshold fixed in the first data's units
    c = teacher_forcing(scaled_copy(model, 10.0), seq * 10, absolute, config)
    assert not torch.equal(a.updated, c.updated)  # an absolute threshold depends on the units


def test_the_mean_square_change_counts_real_transitions_of_the_state_dims_only():
    seq = torch.zeros(2, 4, 2)
    seq[:, :, 0] = torch.tensor([0.0, 1.0, 3.0, 100.0])  # the last transition of row 1 is padding
    seq[:, :, 1] = torch.arange(4.0) * 50                 # an auxiliary dim
    mask = torch.tensor([[True, True, True], [True, True, False]])
    expected = (1 + 4 + 97 ** 2 + 1 + 4) / 5
    assert mean_square_change(seq, mask, keep=1) == pytest.approx(expected)


def small_fit(tmp_path, threshold, resume=False, steps=4):
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16), seed=0)
    data = torch.cumsum(torch.rand(40, 12, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)
    cfg = TrainConfig(steps=steps, batch_size=8, eval_every=2, checkpoint_every=2, eval_size=8, **threshold)
    fit(model, data[:32], cfg, test=data[32:], run_dir=tmp_path / "run", resume=resume)
    return data


def test_a_run_stores_the_threshold_it_measured_and_keeps_it_on_resume_and_reload(tmp_path):
    data = small_fit(tmp_path, {"relative_epsilon": 2.0}, steps=2)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["train"]["relative_epsilon"] == 2.0 and stored["train"]["epsilon"] is None
    assert stored["segments"]["threshold"] == pytest.approx(2.0 * mean_square_change(data[:32]))
    small_fit(tmp_path, {"relative_epsilon": 2.0}, resume=True, steps=4)   # the same run continues
    model, cfg = load_run(tmp_path / "run")
    assert model.rule.threshold == pytest.approx(2.0 * mean_square_change(data[:32]))
    assert cfg["segments"]["threshold"] == model.rule.threshold


@pytest.mark.parametrize("started", [{"epsilon": 1e-3}, {"relative_epsilon": 2.0}])
def test_a_run_resumed_without_a_threshold_continues_with_the_one_it_started_with(tmp_path, started):
    small_fit(tmp_path, started, steps=2)
    before = json.loads((tmp_path / "run" / "config.json").read_text())
    small_fit(tmp_path, {}, resume=True, steps=4)   # the default would be another threshold
    after = json.loads((tmp_path / "run" / "config.json").read_text())
    assert after["segments"] == before["segments"]
    assert after["train"] == {**before["train"], "steps": 4}  # the total it went on to, and nothing else
    assert load_run(tmp_path / "run")[0].rule.threshold == before["segments"]["threshold"]


def test_a_rule_with_both_forms_of_threshold_is_refused():
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(epsilon=1e-3, relative_epsilon=1.0).validate()
    with pytest.raises(ConfigError, match="not both"):
        SegmentRule.resolve(SegmentRule(), 1.0, epsilon=1e-3, relative_epsilon=1.0)


def test_an_unresolved_threshold_asks_to_be_fixed_on_the_data():
    with pytest.raises(ConfigError, match="resolve"):
        SegmentRule().keeps(torch.zeros(3))
    seq = torch.cumsum(torch.rand(4, 8, 2), 1)
    with pytest.raises(ConfigError, match="resolve"):
        teacher_forcing(build_model(ModelConfig(state_dim=2, hidden=16, latent=16)), seq)
