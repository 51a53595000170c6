"""Every model behind one interface, the peers included: CfC (ncps) and the ODE-RNN with
torchode's per-trajectory adaptive steps, plain and with its field regularised."""
import csv
import json
import sys

import pytest
import torch

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, fit, load_run, rollout, teacher_forcing
from pcnode.cli import main
from pcnode.errors import ConfigError
from pcnode.experiments.reproduce import KINETIC_WEIGHT, ReproduceConfig, reproduce
from pcnode.segments import mean_square_change

torch.set_num_threads(1)

# name: (model settings, field penalty)
MODELS = {
    "pcode": (dict(kind="pcode"), 0.0),
    "rnn": (dict(kind="rnn"), 0.0),
    "odernn": (dict(kind="odernn"), 0.0),
    "cfc": (dict(kind="cfc"), 0.0),
    "odernn-torchode-dopri5": (dict(kind="odernn", solver="torchode-dopri5"), 0.0),
    "odernn-torchode-tsit5": (dict(kind="odernn", solver="torchode-tsit5"), 0.0),
    "odernn-kinetic": (dict(kind="odernn", solver="torchode-dopri5"), 1e-2),
}
DATA = torch.cumsum(torch.rand(40, 12, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 1)


def small(name, **kw):
    settings, _ = MODELS[name]
    return build_model(ModelConfig(state_dim=2, hidden=16, latent=16, **settings, **kw), seed=0)


@pytest.mark.parametrize("name", MODELS)
def test_teacher_forcing_trains_every_parameter(name):
    model = small(name)
    rule = SegmentRule.resolve(model.rule, mean_square_change(DATA[:8]))
    losses = teacher_forcing(model, DATA[:8], rule, TrainConfig(field_penalty=MODELS[name][1]))
    assert losses.total.ndim == 0 and torch.isfinite(losses.total)
    losses.total.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith("dt_head")]
    assert not unused


@pytest.mark.parametrize("name", MODELS)
def test_rollout_shapes_and_each_trajectory_reaches_its_own_horizon(name):
    model = small(name).eval()
    horizons = torch.tensor([7.0, 11.0, 9.5])
    ro = rollout(model, DATA[:3, :4], horizons)
    ends = (ro.t + ro.dt).nan_to_num(posinf=-1.0).amax(1)
    assert (ends >= horizons).all()
    assert (ro.t[:, -1:].isinf() | (ro.t[:, -1:] < horizons.unsqueeze(-1))).all()
    assert ro.h.shape[-1] == model.state_size and ro.at(torch.tensor([5.0, 6.5])).shape == (3, 2, 2)


@pytest.mark.parametrize("name", MODELS)
def test_each_trajectory_runs_on_its_own_clock(name):
    """Unevenly timed burn-ins: a trajectory rolls out the same alone as in a batch, so no
    row's clock (or, for torchode, its step sizes) depends on another's."""
    model = small(name).eval()
    t_burn = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 0.5, 2.5, 3.0], [0.0, 2.0, 2.2, 4.0]])
    both = rollout(model, DATA[:3, :4], 12.0, t_burn=t_burn)
    grid = torch.arange(4.0, 12.0, 0.75)
    for b in range(3):
        alone = rollout(model, DATA[b:b + 1, :4], 12.0, t_burn=t_burn[b:b + 1])
        assert torch.allclose(alone.at(grid), both.at(grid)[b:b + 1], atol=1e-5)
        assert alone.updates.item() == both.updates[b].item()


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip_reproduces_rollouts_exactly(tmp_path, name):
    model = small(name)
    cfg = TrainConfig(steps=2, batch_size=8, eval_every=2, checkpoint_every=2, eval_size=8,
                      field_penalty=MODELS[name][1])
    fit(model, DATA[:32], cfg, test=DATA[32:], run_dir=tmp_path / "run", data={"note": "test"})
    loaded, saved = load_run(tmp_path / "run")
    model.eval()
    assert torch.equal(rollout(model, DATA[32:, :4], 11).frames(), rollout(loaded, DATA[32:, :4], 11).frames())
    assert saved["model"]["solver"] == model.config.solver
    assert saved["train"]["field_penalty"] == MODELS[name][1]


def test_torchode_takes_fewer_steps_where_the_field_is_flat_within_one_batch():
    """f(h) = R tanh(10 h): near 0 a fast rotation, far out a constant (tanh saturates), so
    the first row's path bends and the second's is a straight line."""
    model = build_model(ModelConfig(kind="odernn", state_dim=2, hidden=2, latent=2, solver="torchode-dopri5"))
    with torch.no_grad():
        first, second = model.field.net[0], model.field.net[2]
        first.weight.copy_(10 * torch.eye(2))
        first.bias.zero_()
        second.weight.copy_(torch.tensor([[0.0, -3.0], [3.0, 0.0]]))
        second.bias.zero_()
        h = torch.tensor([[0.05, 0.0], [50.0, 50.0]])
        steps = model.solve(h, torch.full((2, 1), 4.0)).steps
    assert steps[1] < steps[0], steps.tolist()


def test_torchdiffeq_adaptive_solvers_report_no_per_trajectory_steps():
    model = small("odernn", solver="dopri5").eval()
    ro = rollout(model, DATA[:2, :4], 11)
    assert ro.nfe > 0 and ro.solver_steps != ro.solver_steps  # NaN: they share their steps across the batch


def test_the_field_penalty_shrinks_the_regulariser():
    def trained(penalty):
        model = small("odernn")
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            teacher_forcing(model, DATA[:16], config=TrainConfig(field_penalty=penalty)).total.backward()
            opt.step()
        torch.manual_seed(0)
        return model.field.regulariser((torch.randn(256, 16) * 0.5).requires_grad_()).mean().item()
    assert trained(1.0) < 0.5 * trained(0.0)


def test_a_missing_peer_package_is_named_with_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ncps", None)  # makes `import ncps...` fail
    monkeypatch.setitem(sys.modules, "ncps.torch", None)
    monkeypatch.setitem(sys.modules, "torchode", None)
    with pytest.raises(ConfigError, match=r"ncps: pip install 'pcnode\[peers\]'"):
        build_model(ModelConfig(kind="cfc", state_dim=2))
    with pytest.raises(ConfigError, match=r"torchode: pip install 'pcnode\[peers\]'"):
        build_model(ModelConfig(kind="odernn", state_dim=2, solver="torchode-tsit5"))


def test_the_command_line_trains_a_cfc_and_a_regularised_torchode_odernn(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the generated data is cached under ./data
    assert main(["train", "--task", "lines", "--n", "40", "--model", "cfc", "--steps", "2", "--batch-size", "8",
                 "--eval-every", "2", "--eval-size", "4", "--hidden", "16", "--latent", "16",
                 "--out", str(tmp_path / "cfc")]) == 0
    assert main(["train", "--task", "lines", "--n", "40", "--model", "odernn", "--solver", "torchode-tsit5",
                 "--field-penalty", "0.001", "--steps", "2", "--batch-size", "8", "--eval-every", "2",
                 "--eval-size", "4", "--hidden", "16", "--latent", "16", "--out", str(tmp_path / "ode")]) == 0
    saved = json.loads((tmp_path / "ode" / "config.json").read_text())
    assert saved["model"]["solver"] == "torchode-tsit5" and saved["train"]["field_penalty"] == 0.001
    assert main(["train", "--task", "lines", "--model", "odernn", "--solver", "rk5", "--steps", "1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "unknown ODE solver 'rk5'" in capsys.readouterr().err
    assert main(["train", "--task", "lines", "--n", "40", "--model", "cfc", "--field-penalty", "0.1", "--steps", "1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--field-penalty regularises an ODE-RNN's vector field; the cfc model" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["lines-n40-seed0.npz"]


def test_reproduce_runs_the_peers_beside_the_paper_models(tmp_path):
    out = reproduce(ReproduceConfig(tasks=["lines"], models=["pcode", "cfc", "odernn-kinetic"], steps=2, n=20),
                    tmp_path, data_dir=None)
    rows = {r["model"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert set(rows) == {"pcode", "cfc", "odernn-kinetic"}
    assert float(rows["odernn-kinetic"]["solver_steps"]) >= float(rows["odernn-kinetic"]["updates"])
    assert rows["cfc"]["solver_steps"] == "nan"
    saved = json.loads((out / "runs" / "lines-odernn-kinetic" / "config.json").read_text())
    assert saved["train"]["field_penalty"] == KINETIC_WEIGHT
    assert saved["model"]["solver"] == "torchode-dopri5"
    assert "ODE-RNN, torchode dopri5, regularised" in (out / "results.md").read_text()
    with pytest.raises(ConfigError, match="unknown or no models"):
        ReproduceConfig(models=["gru"]).validate()
