"""The model as the method describes it: exact straight-line latent, skip rule, losses, baselines."""
import pytest
import torch

from pcnode import ODERNN, PCODE, RNN, ModelConfig, SegmentRule, TrainConfig, build_model, teacher_forcing
from pcnode.errors import ConfigError
from pcnode.segments import mean_square_change


def pcode(state_dim=2, **kw):
    torch.manual_seed(0)
    return PCODE(ModelConfig(state_dim=state_dim, **kw))


def test_advance_is_exact_for_any_span():
    model = pcode()
    h = torch.randn(5, 128)
    z, v = h.chunk(2, -1)
    for span in (0.0, 0.37, 1.0, 13.25, 1000.0):
        expected = torch.cat([z + 0.2 * v * span, v], -1)
        assert torch.equal(model.advance(h, span), expected)


def test_advance_composes_over_spans():
    model = pcode()
    h = torch.randn(5, 128, dtype=torch.float64)
    a, b = 2.75, 6.5
    assert torch.allclose(model.advance(model.advance(h, a), b), model.advance(h, a + b), atol=1e-12)


def test_advance_takes_one_span_per_row():
    model = pcode()
    h = torch.randn(3, 128)
    spans = torch.tensor([[0.5], [2.0], [7.0]])
    rows = torch.cat([model.advance(h[i:i + 1], spans[i].item()) for i in range(3)])
    assert torch.allclose(model.advance(h, spans), rows)


def test_dt_head_is_bounded_in_rollouts():
    model = pcode()
    rule = model.rule.replace(min_dt=1.0, max_dt=50.0)
    with torch.no_grad():
        model.dt_head.bias.fill_(-1e4)
        assert rule.wait(model, torch.randn(4, 128)).min().item() == 1.0
        model.dt_head.bias.fill_(1e6)
        assert rule.wait(model, torch.randn(4, 128)).max().item() == 50.0


def test_models_share_encoder_cell_decoder_and_differ_in_time():
    cfg = ModelConfig(state_dim=4)
    kinds = {k: build_model(ModelConfig(kind=k, state_dim=4)) for k in ("pcode", "rnn", "odernn")}
    shared = {"encoder", "cell", "decoder"}
    for model in kinds.values():
        assert shared <= {name for name, _ in model.named_children()}
    assert isinstance(kinds["pcode"], PCODE) and isinstance(kinds["rnn"], RNN) and isinstance(kinds["odernn"], ODERNN)
    assert cfg.kind == "pcode"


def test_unknown_model_name_is_refused():
    with pytest.raises(ConfigError, match="unknown model 'lstm'"):
        build_model(ModelConfig(kind="lstm"))


class Oracle(PCODE):
    """A PC-ODE whose latent velocity is read straight from the data, so its
    straight-line predictions are exact wherever the data moves in a straight line.

    Frames are [position (2), velocity (2)]; the velocity dims are auxiliary. The
    decoder is a real one whose weights read the first two latent dims back out
    (`relu(u) - relu(-u) = u`), so teacher forcing decodes it like any trained model.
    """

    def __init__(self, config):
        super().__init__(config)
        c, dec = config.time_constant, self.decoder
        with torch.no_grad():
            for p in dec.parameters():
                p.zero_()
            for k in range(2):
                dec.inp.weight[k, k], dec.inp.weight[2 + k, k] = 1 / c, -1 / c
                dec.out.weight[k, k], dec.out.weight[k, 2 + k] = 1.0, -1.0

    def encode(self, x):
        return x

    def update(self, e, h):
        c = self.config.time_constant
        z = torch.zeros_like(h[:, : self.config.latent // 2])
        v = torch.zeros_like(z)
        v[:, :2] = e[:, 2:] / c
        return torch.cat([z, v], -1)


def frames_with_velocity(velocities):
    """(T, 2) per-step velocities -> (1, T+1, 4) frames [position, velocity of the next step]."""
    pos = torch.cat([torch.zeros(1, 2), torch.cumsum(velocities, 0)])
    vel = torch.cat([velocities, velocities[-1:]])
    return torch.cat([pos, vel], -1).unsqueeze(0)


def oracle():
    return Oracle(ModelConfig(state_dim=4, latent=8, aux_dims=2))


def forcing(model, seq, n_burn=4, epsilon=None, jump_prob=0.0):
    """Teacher forcing with the threshold fixed on `seq` itself (relative by default)."""
    rule = SegmentRule.resolve(SegmentRule(n_burn=n_burn), mean_square_change(seq, keep=model.scored_dims),
                               epsilon=epsilon)
    return teacher_forcing(model, seq, rule, TrainConfig(jump_prob=jump_prob))


def test_skip_rule_skips_every_frame_of_linear_data_after_burn_in():
    seq = frames_with_velocity(torch.tensor([[0.1, 0.05]]).repeat(20, 1))
    out = forcing(oracle(), seq)
    assert out.updated[0, :4].all()
    assert not out.updated[0, 4:].any()
    assert out.displacement.item() < 1e-12


def test_skip_rule_updates_at_a_kink():
    v = torch.tensor([[0.1, 0.0]]).repeat(20, 1)
    v[10:] = torch.tensor([0.0, 0.1])  # the path turns a corner at frame 10
    seq = frames_with_velocity(v)
    # One frame past the corner the straight segment is off by 0.1 in each position dim
    # (squared error 1e-2); a threshold below that ends the segment there.
    out = forcing(oracle(), seq, epsilon=3e-3)
    assert out.updated[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 10]


def test_skip_rule_never_skips_during_burn_in():
    seq = frames_with_velocity(torch.tensor([[0.1, 0.05]]).repeat(12, 1))
    out = forcing(oracle(), seq, n_burn=6, jump_prob=1.0)
    assert out.updated[0, :6].all() and not out.updated[0, 6:].any()


def test_baselines_update_every_frame_and_have_no_dt_loss():
    seq = torch.rand(3, 12, 2)
    for kind in ("rnn", "odernn"):
        out = forcing(build_model(ModelConfig(kind=kind, state_dim=2)), seq, jump_prob=0.01)
        assert out.updated.all()
        assert out.dt.item() == 0 and out.zero_span.item() == 0


class BlindToAux(PCODE):
    """A PC-ODE whose encoder never sees the last dim, so only the losses could."""

    def encode(self, x):
        return super().encode(torch.cat([x[..., :-1], torch.zeros_like(x[..., -1:])], -1))


def test_losses_leave_out_auxiliary_dims():
    torch.manual_seed(0)
    model = BlindToAux(ModelConfig(state_dim=3, aux_dims=1))
    seq = torch.rand(4, 10, 3)
    noisy = seq.clone()
    noisy[..., 2] = torch.randn(4, 10) * 100
    a = forcing(model, seq)
    b = forcing(model, noisy)
    assert torch.equal(a.total, b.total)
    model.config.aux_dims = 0
    c = forcing(model, noisy)
    assert c.displacement > 10 * a.displacement


def test_teacher_forcing_trains_the_dt_head():
    model = pcode()
    out = forcing(model, torch.rand(8, 16, 2), epsilon=10.0, jump_prob=0.01)
    out.total.backward()
    assert model.dt_head.weight.grad is not None and model.dt_head.weight.grad.abs().sum() > 0


def test_odernn_dopri5_counts_function_evaluations():
    model = ODERNN(ModelConfig(state_dim=2, solver="dopri5"))
    before = model.nfe
    model.advance(torch.randn(4, 128), 1.0)
    assert model.nfe > before


def test_odernn_rk4_and_dopri5_agree_on_a_smooth_field():
    torch.manual_seed(0)
    rk4 = ODERNN(ModelConfig(state_dim=2, solver="rk4", solver_steps=8))
    dopri = ODERNN(ModelConfig(state_dim=2, solver="dopri5", rtol=1e-7, atol=1e-9))
    dopri.load_state_dict(rk4.state_dict())
    h = torch.randn(6, 128, dtype=torch.float64)
    rk4.double(), dopri.double()
    assert torch.allclose(rk4.advance(h, 1.0), dopri.advance(h, 1.0), atol=1e-6)
    assert not torch.allclose(rk4.advance(h, 1.0), h, atol=1e-3)  # the field really moved the state


def test_odernn_integrates_one_span_per_row():
    torch.manual_seed(0)
    model = ODERNN(ModelConfig(state_dim=2, solver="rk4", solver_steps=4)).double()
    h = torch.randn(2, 128, dtype=torch.float64)
    both = model.advance(h, torch.tensor([[0.5], [2.0]], dtype=torch.float64))
    assert torch.allclose(both[0], model.advance(h[:1], 0.5)[0])
    assert torch.allclose(both[1], model.advance(h[1:], 2.0)[0])


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
def test_a_pcode_segment_decodes_the_straight_path_at_any_span(encoder):
    torch.manual_seed(0)
    size = dict(state_dim=64, image_size=8) if encoder == "conv" else dict(state_dim=3)
    model = PCODE(ModelConfig(encoder=encoder, latent=16, hidden=32, **size)).double()
    h = torch.randn(5, 16, dtype=torch.float64)
    seg = model.segment(h)
    for span in (0.0, 1.0, 2.75, torch.rand(5, 1, dtype=torch.float64) * 9):
        assert torch.allclose(model.along(seg, span), model.decode(model.advance(h, span)), atol=1e-12)


def test_a_seeded_build_starts_from_the_same_weights_whatever_the_global_random_state():
    cfg = ModelConfig(kind="pcode", state_dim=3, hidden=8, latent=8)
    torch.manual_seed(1)
    a = build_model(cfg, seed=5).state_dict()
    torch.rand(100)
    before = torch.get_rng_state()
    b = build_model(cfg, seed=5).state_dict()
    assert torch.equal(torch.get_rng_state(), before)  # the global state is left alone
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build_model(cfg, seed=6).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_data_line_segment_is_straight_in_data_space_and_the_decoder_gives_its_velocity():
    torch.manual_seed(0)
    model = PCODE(ModelConfig(state_dim=3, latent=16, hidden=32, line="data")).double()
    h = torch.randn(5, 16, dtype=torch.float64)
    seg = model.segment(h)
    assert seg.shape == (5, 3) and torch.equal(seg, model.decode(h))
    spans = torch.rand(5, 1, dtype=torch.float64) * 9
    assert torch.equal(model.along(seg, 0.0), torch.zeros_like(seg))  # no change at span 0, by construction
    assert torch.allclose(model.along(seg, spans), spans * model.along(seg, 1.0), atol=1e-12)  # no bend


def test_line_is_a_pcode_setting_with_two_values():
    with pytest.raises(ConfigError, match="unknown line 'curved'"):
        ModelConfig(line="curved").validate()
    with pytest.raises(ConfigError, match="the rnn has no segments"):
        ModelConfig(kind="rnn", line="data").validate()
    assert ModelConfig().line == "latent"  # the authors' stays the default
