"""The fast teacher forcing computes exactly what the plain per-frame formulation does.

`pcnode.forcing.reference_forcing` is the method written out frame by frame, with
every loss term decoded where it arises and no work skipped; `pcnode.teacher_forcing`
must agree with it in losses, update decisions and gradients.
"""
import pytest
import torch

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, teacher_forcing
from pcnode.data import Trajectories
from pcnode.reference import reference_forcing
from pcnode.segments import mean_square_change

CASES = {
    "pcode": dict(kind="pcode"),
    "pcode-aux": dict(kind="pcode", aux_dims=1),
    "pcode-fed": dict(kind="pcode", feed_predictions=0.5),
    "pcode-aux-fed": dict(kind="pcode", aux_dims=1, feed_predictions=1.0),
    "pcode-inputs": dict(kind="pcode", input_dim=2, input_threshold=0.3),
    "pcode-inputs-fed": dict(kind="pcode", input_dim=2, input_threshold=0.3, feed_predictions=0.5),
    # A threshold that the model's own stretch nearly always meets, so the event line decides.
    "pcode-events": dict(kind="pcode", event_threshold=0.5, epsilon=1e-2),
    "pcode-inputs-events-fed": dict(kind="pcode", input_dim=2, input_threshold=0.3, event_threshold=0.5,
                                    epsilon=1e-2, feed_predictions=0.5),
    "pcode-data-line": dict(kind="pcode", line="data"),
    "pcode-data-line-fed": dict(kind="pcode", line="data", feed_predictions=0.5),
    "pcode-min-dt-fed": dict(kind="pcode", min_dt=2.0, feed_predictions=1.0),
    "rnn": dict(kind="rnn"),
    "rnn-inputs": dict(kind="rnn", input_dim=2),
    "rnn-aux-fed": dict(kind="rnn", aux_dims=1, feed_predictions=0.5),
    "odernn-fed": dict(kind="odernn", feed_predictions=1.0),
    "cfc-inputs-fed": dict(kind="cfc", input_dim=2, feed_predictions=0.5),
    "odernn": dict(kind="odernn"),
    "odernn-torchode": dict(kind="odernn", solver="torchode-tsit5"),
    "cfc": dict(kind="cfc"),
}


def stepped_inputs(rows, frames, dims, device):
    """Inputs that hold a level and jump now and then (in about one frame in four), with
    small wobbles in between, so some changes pass a threshold of 0.3 and some do not."""
    g = torch.Generator().manual_seed(2)
    jumps = (torch.rand(rows, frames, dims, generator=g) < 0.25) * torch.randn(rows, frames, dims, generator=g)
    wobble = torch.rand(rows, frames, dims, generator=g, dtype=torch.float64) * 0.1
    return (torch.cumsum(jumps.double(), 1) + wobble).to(device)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("irregular", [False, True])
def test_fast_teacher_forcing_matches_the_per_frame_reference(case, irregular, device):
    torch.manual_seed(0)
    settings = dict(CASES[case])
    feed = settings.pop("feed_predictions", 0.0)
    events = settings.pop("event_threshold", None)
    epsilon = settings.pop("epsilon", 2e-4)
    inputs = SegmentRule(input_threshold=settings.pop("input_threshold", 0.0), min_dt=settings.pop("min_dt", 1.0))
    model = build_model(ModelConfig(state_dim=3, hidden=32, latent=32, **settings)).double().to(device)
    # 12 rows, not 16 (half the latent): a (B,) tensor mistaken for (B, 1) would then fail to broadcast.
    seq = torch.cumsum(torch.rand(12, 14, 3, dtype=torch.float64) * 0.05, 1).to(device)
    times = torch.cumsum(torch.rand(12, 14, dtype=torch.float64) + 0.5, 1).to(device) if irregular else None
    mask = torch.ones(12, 13, dtype=torch.bool, device=device)
    mask[:4, 9:] = False  # four shorter sequences
    rule = SegmentRule.resolve(inputs, mean_square_change(seq, mask), epsilon=epsilon, events=events)
    config = TrainConfig(jump_prob=0.1, feed_predictions=feed)
    u = stepped_inputs(12, 14, model.config.input_dim, device) if model.config.input_dim else None

    torch.manual_seed(1)
    batch = Trajectories(seq, times, mask, u)
    fast = teacher_forcing(model, batch, rule, config)
    fast.total.backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    ref = reference_forcing(model, batch, rule, config)
    ref.total.backward()

    assert torch.equal(fast.updated, ref.updated)
    if model.jumpy:
        assert 0 < ref.updated[:, 4:].float().mean() < 1, "the case should mix skips and updates"
    if events is not None:
        # Some updates come from the data leaving its straight line alone: rerun without the option.
        torch.manual_seed(1)
        blind = reference_forcing(model, batch, rule.replace(event_threshold=None), config)
        assert (ref.updated & ~blind.updated).any(), "the case should have updates that only the event line causes"
        assert not (blind.updated & ~ref.updated)[:, :5].any()
    if model.jumpy and u is not None:
        # Some updates come from input events alone: rerun with no change counting as an event.
        torch.manual_seed(1)
        deaf = reference_forcing(model, batch, rule.replace(input_threshold=1e9), config)
        assert (ref.updated & ~deaf.updated).any(), "the case should have updates forced by inputs"
    for name in ("displacement", "zero_span", "dt", "total"):
        assert torch.allclose(getattr(fast, name), getattr(ref, name), rtol=1e-10), name
    assert fast.mean_dt == pytest.approx(ref.mean_dt, rel=1e-12)
    for p, g in zip(model.parameters(), fast_grads):
        assert torch.allclose(p.grad, g, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "odernn", "cfc"])
def test_every_frame_models_read_their_own_predictions_after_the_burn_in(kind):
    model = build_model(ModelConfig(kind=kind, state_dim=2, hidden=16, latent=16), seed=0)
    seq = torch.cumsum(torch.rand(4, 10, 2) * 0.05, 1)
    plain, fed = (teacher_forcing(model, seq, config=TrainConfig(feed_predictions=p)).total for p in (0.0, 1.0))
    assert fed != plain
    short = seq[:, :5]  # four transitions, all in the burn-in of 4: nothing is fed
    plain, fed = (teacher_forcing(model, short, config=TrainConfig(feed_predictions=p)).total for p in (0.0, 1.0))
    assert fed == plain


@pytest.mark.parametrize("feed", [0.0, 1.0])
def test_segments_are_at_least_min_dt_long_as_in_a_rollout(feed):
    """A threshold of 0 would end every segment at once; min_dt 3 stretches each over three frames."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16))
    seq = torch.cumsum(torch.rand(5, 17, 2) * 0.05, 1)
    rule = SegmentRule(threshold=0.0, min_dt=3.0)
    losses = teacher_forcing(model, seq, rule, TrainConfig(jump_prob=0.0, feed_predictions=feed))
    after = losses.updated[:, 3:].nonzero()[:, 1] + 3  # the last burn-in frame opens the first segment
    assert after.view(5, -1)[0].tolist() == [3, 6, 9, 12, 15]
    assert losses.mean_dt == 3.0
    assert teacher_forcing(model, seq, rule.replace(min_dt=1.0), TrainConfig(jump_prob=0.0)).updated.all()


@pytest.mark.parametrize("epsilon, jump_prob", [(0.0, 0.0), (1e9, 0.0)], ids=["every-row-updates", "every-row-skips"])
@pytest.mark.parametrize("feed", [0.0, 0.5])
def test_fast_teacher_forcing_matches_the_reference_when_no_row_or_every_row_skips(epsilon, jump_prob, feed):
    torch.manual_seed(0)
    model = build_model(ModelConfig(state_dim=3, hidden=32, latent=32)).double()
    seq = torch.cumsum(torch.rand(12, 10, 3, dtype=torch.float64) * 0.05, 1)
    rule, config = SegmentRule(threshold=epsilon), TrainConfig(jump_prob=jump_prob, feed_predictions=feed)
    torch.manual_seed(1)
    fast = teacher_forcing(model, seq, rule, config)
    fast.total.backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    ref = reference_forcing(model, seq, rule, config)
    ref.total.backward()
    assert torch.equal(fast.updated, ref.updated)
    assert ref.updated[:, 4:].all() if epsilon == 0 else not ref.updated[:, 4:].any()
    assert torch.allclose(fast.total, ref.total, rtol=1e-10) and fast.mean_dt == pytest.approx(ref.mean_dt)
    for p, g in zip(model.parameters(), fast_grads):
        assert torch.allclose(p.grad, g, rtol=1e-8, atol=1e-12)


def test_a_conv_pcode_trains_through_frames_where_every_row_skips():
    torch.manual_seed(0)
    model = build_model(ModelConfig(state_dim=64, encoder="conv", image_size=8, hidden=16, latent=16)).double()
    seq = torch.rand(3, 8, 64, dtype=torch.float64)
    rule, config = SegmentRule(threshold=1e9), TrainConfig(jump_prob=0.0)
    fast, ref = teacher_forcing(model, seq, rule, config), reference_forcing(model, seq, rule, config)
    assert not fast.updated[:, 4:].any()
    assert torch.allclose(fast.total, ref.total, rtol=1e-10)


@pytest.mark.parametrize("kind", ["pcode", "rnn"])
def test_fast_teacher_forcing_matches_the_reference_when_the_decoder_runs_in_chunks(kind, monkeypatch):
    """Over CPU_CHUNK_ROWS rows the decoder runs chunk by chunk (`in_chunks`); a small chunk
    size makes these 12 x 13 rows take that path."""
    import pcnode.model
    monkeypatch.setattr(pcnode.model, "CPU_CHUNK_ROWS", 7)
    calls = []
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, state_dim=3, hidden=32, latent=32)).double()
    name = "along" if kind == "pcode" else "decode"  # what the losses read predictions through
    read = getattr(model, name)
    monkeypatch.setattr(model, name, lambda *args: (calls.append(len(args[0])), read(*args))[1])
    seq = torch.cumsum(torch.rand(12, 14, 3, dtype=torch.float64) * 0.05, 1)
    rule, config = SegmentRule(threshold=2e-4), TrainConfig(jump_prob=0.1)
    torch.manual_seed(1)
    fast = teacher_forcing(model, seq, rule, config)
    fast.total.backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    assert sum(n for n in calls if n <= 7) >= 12 * 13, "the losses' predictions should be read in chunks"
    model.zero_grad()
    torch.manual_seed(1)
    ref = reference_forcing(model, seq, rule, config)
    ref.total.backward()
    assert torch.equal(fast.updated, ref.updated)
    assert torch.allclose(fast.total, ref.total, rtol=1e-10)
    for p, g in zip(model.parameters(), fast_grads):
        assert torch.allclose(p.grad, g, rtol=1e-8, atol=1e-12)


def test_the_event_option_is_refused_for_a_model_that_updates_at_every_frame(tmp_path):
    from pcnode import fit
    from pcnode.errors import ConfigError

    x = torch.cumsum(torch.rand(12, 10, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)
    rnn = build_model(ModelConfig(kind="rnn", state_dim=2, hidden=8, latent=8), seed=0)
    with pytest.raises(ConfigError, match="`events` ends a PC-ODE's training segments"):
        fit(rnn, x, TrainConfig(steps=1, batch_size=4, events=0.25), run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    pcode = build_model(ModelConfig(kind="pcode", state_dim=2, hidden=8, latent=8), seed=0)
    fit(pcode, x, TrainConfig(steps=1, batch_size=4, events=0.25), progress=False)
    assert pcode.rule.event_threshold is not None and pcode.rule.event_threshold > 0
