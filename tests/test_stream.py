"""Streams: readings one at a time, an update only where a reading carries news."""
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pcnode import ModelConfig, SegmentRule, Stream, build_model, rollout
from pcnode.errors import ConfigError, DataError

torch.set_num_threads(1)

JUMPY = SegmentRule(jumps=True, n_burn=4, threshold=1e-4)


def model_of(kind="pcode", seed=0, rule=JUMPY, **fields):
    model = build_model(ModelConfig(kind=kind, state_dim=2, hidden=16, latent=16, **fields), seed=seed)
    model.rule = (rule if kind == "pcode" else SegmentRule(n_burn=4)).bind(model)
    return model


def walks(n=3, frames=12, seed=0):
    return torch.from_numpy(np.cumsum(np.random.default_rng(seed).normal(0, 0.1, (n, frames, 2)), 1).astype("float32"))


def burned_in(model, x, batch=None):
    """A stream of `batch` rows (default one per trajectory) whose first rows read x's burn-in frames."""
    stream = Stream(model, batch or len(x))
    for i in range(model.rule.n_burn):
        stream.observe(float(i), x[:, i], rows=list(range(len(x))))
    return stream


def same_state(a: dict, b: dict) -> bool:
    """Bit for bit, NaN included."""
    return a["model"] == b["model"] and all(torch.equal(a[k].nan_to_num(7.5), b[k].nan_to_num(7.5))
                                            for k in a if k != "model")


@pytest.mark.parametrize("kind", ["rnn", "odernn"])
def test_a_model_that_does_not_jump_updates_at_every_reading_as_its_burn_in_does(kind):
    model = model_of(kind)
    x = walks(frames=9)
    t = torch.tensor([0.0, 1.0, 2.5, 3.0, 4.75, 6.0, 6.5, 8.0, 10.0]).expand(3, 9)
    ro = rollout(model, x, horizon=12.0, t_burn=t)  # every frame read as burn-in: the states a stream reaches
    stream = Stream(model, 3)
    for i in range(9):
        assert stream.observe(t[:, i], x[:, i]).all()
        assert torch.allclose(stream.h, ro.h[:, i], atol=1e-6)


def test_the_first_n_burn_readings_update_whatever_they_are():
    model = model_of()
    stream = Stream(model, 2)
    for i in range(4):
        assert stream.observe(i, torch.zeros(2, 2)).all()
    assert stream.readings.tolist() == [4, 4]


def test_readings_that_lie_on_the_current_segment_never_update_after_the_burn_in():
    model = model_of()
    stream = burned_in(model, walks())
    for t in [3.5, 4.0, 5.25, 7.0, 11.0, 19.5, 40.0]:  # uneven times and long gaps alike
        assert not stream.observe(t, stream.at(t)).any()
    assert stream.readings.tolist() == [11, 11, 11] and (stream.anchor_t == 3.0).all()


def test_a_reading_far_off_the_segment_updates_and_becomes_the_anchor():
    model = model_of()
    stream = burned_in(model, walks())
    far = stream.at(5.5) + torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, -1.0]])
    assert stream.observe(5.5, far).tolist() == [True, False, True]
    assert torch.equal(stream.anchor_x[[0, 2]], far[[0, 2]])
    assert stream.anchor_t.tolist() == [5.5, 3.0, 5.5]
    wait = model.rule.wait(model, stream.h).squeeze(-1).double()
    assert torch.allclose(stream.next_update_time, stream.anchor_t + wait)
    # The new segments are read from their readings: the decoder predicts the change since them.
    assert torch.allclose(stream.at(7.0)[[0, 2]], far[[0, 2]] + model.change(stream.h[[0, 2]], 1.5))


def test_predicted_is_what_the_stream_expected_before_it_read():
    model = model_of()
    stream = burned_in(model, walks())
    expected = stream.at(6.0)
    stream.observe(6.0, expected + 5.0)
    assert torch.equal(stream.predicted, expected)


def test_rows_read_on_their_own_clocks_and_the_others_stay_as_they_were():
    model = model_of()
    stream = burned_in(model, walks())
    before = stream.state()
    stream.observe([4.5, 9.0], torch.ones(2, 2) * 3, rows=[2, 0])
    after = stream.state()
    assert after["last_t"].tolist() == [9.0, 3.0, 4.5]
    assert all(torch.equal(before[k][1], after[k][1]) for k in before if k != "model")


def test_the_event_option_updates_where_the_data_leaves_its_straight_line():
    model = model_of(rule=SegmentRule(jumps=True, threshold=1e9, event_threshold=1e-3))  # the model's own test off
    line = lambda t: torch.tensor([[0.1 * t, -0.05 * t]])  # noqa: E731
    stream = Stream(model, 1)
    decided = [stream.observe(t, line(t)).item() for t in range(10)]
    assert decided == [True] * 4 + [False] * 6
    assert stream.observe(10.0, line(10.0) + torch.tensor([[0.0, 0.2]])).item()  # the bounce


def test_a_change_of_known_input_past_the_input_threshold_updates():
    model = model_of(input_dim=1, rule=SegmentRule(jumps=True, threshold=1e9, input_threshold=0.5))
    stream = Stream(model, 2)
    for i in range(4):
        stream.observe(i, torch.zeros(2, 2), torch.zeros(2, 1))
    assert stream.observe(4, torch.zeros(2, 2), torch.tensor([[0.4], [0.6]])).tolist() == [False, True]


def test_a_resumed_stream_makes_the_same_decisions_as_the_one_that_carried_on(tmp_path):
    model, x = model_of(), walks(frames=20)
    stream = burned_in(model, x)
    for i in range(4, 10):
        stream.observe(i, x[:, i] * 1.5)
    state = stream.state()
    save_file({k: v for k, v in state.items() if k != "model"}, tmp_path / "s.safetensors",
              metadata={"model": state["model"]})
    saved = {**load_file(tmp_path / "s.safetensors"), "model": state["model"]}
    resumed = Stream.from_state(model, saved)
    for i in range(10, 20):
        assert torch.equal(stream.observe(i, x[:, i] * 1.5), resumed.observe(i, x[:, i] * 1.5))
        assert torch.equal(stream.predicted, resumed.predicted)


def test_a_state_written_by_another_model_is_refused():
    stream = burned_in(model_of(seed=0), walks())
    with pytest.raises(DataError, match="another model"):
        Stream.from_state(model_of(seed=1), stream.state())


def test_forecast_is_the_rollout_from_the_current_segment():
    model, x = model_of(), walks(frames=10)
    stream = burned_in(model, x)
    ro = rollout(model, x[:, :4], horizon=30.0)
    f = stream.forecast(30.0)
    assert torch.equal(f.updates, ro.updates) and torch.equal(f.t, ro.t[:, 3:])
    later = torch.linspace(3.5, 30, 19)  # (the rollout reads time 3 off its last burn-in step)
    assert torch.allclose(f.at(later), ro.at(later), atol=1e-6)


def test_a_model_whose_rule_has_no_threshold_is_refused():
    with pytest.raises(ConfigError, match="threshold"):
        Stream(model_of(rule=SegmentRule()))


BAD = {
    "a reading of the wrong width": (dict(t=5.0, x=torch.zeros(3, 3)), "shaped \\(3, 2\\)"),
    "a time earlier than the last": (dict(t=2.0, x=torch.zeros(3, 2)), "does not come after"),
    "a time equal to the last": (dict(t=3.0, x=torch.zeros(3, 2)), "does not come after"),
    "NaN in a reading": (dict(t=5.0, x=torch.tensor([[0.0, math.nan], [0, 0], [0, 0]])), "NaN"),
    "a NaN time": (dict(t=[5.0, math.nan, 6.0], x=torch.zeros(3, 2)), "finite"),
    "one time too few": (dict(t=[5.0, 6.0], x=torch.zeros(3, 2)), "one time per stream"),
    "inputs to a model that reads none": (dict(t=5.0, x=torch.zeros(3, 2), u=torch.zeros(3, 1)), "reads none"),
    "a row out of range": (dict(t=5.0, x=torch.zeros(1, 2), rows=[3]), "stream indices"),
    "a row named twice": (dict(t=5.0, x=torch.zeros(2, 2), rows=[1, 1]), "distinct"),
    "words for numbers": (dict(t="soon", x=torch.zeros(3, 2)), "must be numbers"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_readings_are_refused_with_one_line_and_change_nothing(case):
    stream = burned_in(model_of(), walks())
    before = stream.state()
    kwargs, message = BAD[case]
    with pytest.raises(DataError, match=message) as e:
        stream.observe(**kwargs)
    assert "\n" not in str(e.value)
    assert same_state(before, stream.state())


def test_reading_before_the_segment_began_or_before_any_reading_is_refused():
    stream = burned_in(model_of(), walks(), batch=4)
    with pytest.raises(DataError, match="read nothing yet"):
        stream.at(5.0)
    with pytest.raises(DataError, match="opened at time 3"):
        stream.at(2.0, rows=[0, 1, 2])
