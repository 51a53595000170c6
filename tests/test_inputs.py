"""Known inputs: given with every update, never predicted; a change of input is an event."""
import json

import numpy as np
import pytest
import torch
from test_plan import planted_problems

from pcnode import PCODE, ModelConfig, TrainConfig, build_model, fit, rollout, teacher_forcing
from pcnode import planning as pl
from pcnode.cli import main
from pcnode.data import Trajectories, save_npz
from pcnode.errors import DataError
from pcnode.planning.job import trace
from pcnode.series import forecast, from_arrays, from_csv, from_npz, to_csv, to_npz
from pcnode.series.windows import Scaling
from pcnode.tasks import BALL_RADIUS, billiards

torch.set_num_threads(1)


class Integrator(PCODE):
    """A PC-ODE whose state moves at the speed its last update read as input, jumping 5
    frames at a time: its prediction is the integral of the inputs it was given."""

    def encode(self, x):
        return x

    def update(self, e, h):
        return torch.cat([e, torch.zeros_like(h[:, 2:])], -1)  # [state, input, 0...]

    def segment(self, h):
        return h

    def along(self, seg, span):
        return seg[..., 1:2] * span

    def dt_raw(self, h):
        return h.new_full((h.shape[0], 1), 5.0)


def test_a_rollout_uses_exactly_the_planted_future_inputs():
    model = Integrator(ModelConfig(state_dim=1, input_dim=1, latent=4))
    u = torch.zeros(2, 31, 1)
    u[0, 7:] = 2.0       # steps between the model's own updates (at 3, 8, 13, ...)
    u[0, 13:] = -1.0
    u[1, 11:] = 0.5
    ro = rollout(model, torch.zeros(2, 4, 1), 30.0, u=u)
    truth = torch.cat([torch.zeros(2, 1, 1), torch.cumsum(u[:, :-1], 1)], 1)  # x[t] = sum of u before t
    assert torch.allclose(ro.at(torch.arange(31.0)), truth, atol=1e-5)
    for b, changes in ((0, (7.0, 13.0)), (1, (11.0,))):
        steps = ro.t[b][torch.isfinite(ro.t[b])]
        assert set(changes) <= set(steps.tolist()), "an input change is an update"
        k = torch.isfinite(ro.t[b])
        assert torch.equal(ro.u[b][k], u[b, ro.t[b][k].long()]), "each update read the planted reading"
    assert ro.x.shape[-1] == 1  # the state alone


def test_the_decoder_has_no_output_for_an_input():
    model = build_model(ModelConfig(state_dim=3, input_dim=2, hidden=16, latent=16))
    h = torch.zeros(5, 16)
    assert model.decode(h).shape == (5, 3)
    assert model.encode(torch.zeros(5, 5)).shape == (5, 16)


def test_a_forecast_gives_the_series_own_future_inputs_and_says_when_it_holds_them():
    model = Integrator(ModelConfig(state_dim=1, input_dim=1, latent=4))
    t = np.arange(20.0)
    u = np.where(t >= 9, 3.0, 1.0)
    x = np.stack([np.concatenate([[0.0], np.cumsum(u[:-1])]), u], 1)
    scaling = Scaling(np.zeros(2), np.ones(2), 1.0)
    f = forecast(model, scaling, t, x, n_burn=4, start=5.0, ahead=10.0)
    np.testing.assert_array_equal(f.inputs[:, 0], u[6:16])  # given, not predicted
    np.testing.assert_allclose(f.values[:, 0], x[6:16, 0], atol=1e-4)
    assert f.inputs_held_from is None and 9.0 in f.update_times
    with pytest.warns(RuntimeWarning, match="holds their last reading"):
        held = forecast(model, scaling, t, x, n_burn=4, start=19.0, ahead=4.0, every=1.0)
    assert held.inputs_held_from == 19.0 and (held.inputs[:, 0] == 3.0).all()
    with pytest.raises(DataError, match="known inputs stop at 19"):
        forecast(model, scaling, t, x, n_burn=4, start=12.0, ahead=10.0)


def step_series(n, frames=30, seed=0):
    """A state that relaxes towards +1 or -1 as its input is 1 or 0; the input steps once,
    at a random frame in [8, 22). -> x (n, frames, 1), u (n, frames, 1), step frames (n,)"""
    g = np.random.default_rng(seed)
    at, up = g.integers(8, 22, n), g.random(n) < 0.5
    u = np.where(np.arange(frames)[None] >= at[:, None], up[:, None], ~up[:, None]).astype(np.float32)
    x = np.zeros((n, frames), np.float32)
    x[:, 0] = 2 * u[:, 0] - 1
    for i in range(1, frames):
        x[:, i] = x[:, i - 1] + 0.3 * (2 * u[:, i - 1] - 1 - x[:, i - 1])
    return torch.from_numpy(x[..., None]), torch.from_numpy(u[..., None]), at


def test_a_state_that_reacts_to_a_step_in_its_input_is_learned_with_an_update_at_the_step():
    x, u, _ = step_series(256)
    model = build_model(ModelConfig(state_dim=1, input_dim=1, hidden=32, latent=32), seed=0)
    cfg = TrainConfig(steps=80, batch_size=32, lr=3e-3, eval_every=80, checkpoint_every=80, eval_size=8)
    fit(model, Trajectories(x, u=u), cfg)
    # Teacher forcing updates at every step, as a rollout does.
    losses = teacher_forcing(model, Trajectories(x[:16], u=u[:16]))  # the rule `fit` resolved
    steps = (u[:16, 1:, 0] != u[:16, :-1, 0]).nonzero()
    assert losses.updated[steps[:, 0], steps[:, 1] + 1].all()

    xt, ut, at = step_series(16, seed=5)
    ro = rollout(model, xt[:, :4], 29.0, u=ut)
    pred = ro.at(torch.arange(30.0))
    for b in range(16):
        assert float(at[b]) in ro.t[b].tolist(), "the rollout updates at the step"
        # Eight frames after the step the true state has moved 94% of the way; the model
        # must have moved at least half as far, in the same direction.
        true, seen = xt[b, at[b] + 8, 0] - xt[b, at[b], 0], pred[b, at[b] + 8, 0] - pred[b, at[b], 0]
        assert seen / true > 0.5


class Billiards(PCODE):
    """A planning model that reads one frame (the balls at rest) and the cue velocity as
    its input, and predicts by simulating: it can plan only if the action reaches it as
    an input, since its frame says nothing of the shot."""

    def encode(self, x):
        return x

    def update(self, e, h):
        return e  # [cue, object ball, cue velocity]

    def segment(self, h):
        return h

    def along(self, seg, span):
        rows = seg.reshape(-1, 6).double().numpy()
        span = torch.as_tensor(span, dtype=torch.float64).expand(*seg.shape[:-1], 1).reshape(-1).numpy()
        pos, vel = rows[:, :4].reshape(-1, 2, 2), np.zeros((len(rows), 2, 2))
        vel[:, 0] = rows[:, 4:]
        path = billiards(pos, vel, pl.HORIZON + 2, radius=BALL_RADIUS, sim_dt=pl.SIM_DT * pl.EVERY, every=1)
        lo = np.clip(np.floor(span).astype(int), 0, pl.HORIZON)
        w = (span - lo)[:, None]
        at = path[np.arange(len(rows)), lo] * (1 - w) + path[np.arange(len(rows)), lo + 1] * w
        return torch.from_numpy(at - path[:, 0]).to(seg.dtype).reshape(*seg.shape[:-1], 4)

    def dt_raw(self, h):
        return h.new_full((h.shape[0], 1), float(pl.HORIZON))


def test_planning_with_actions_as_inputs_solves_the_planted_straight_shots():
    model = Billiards(ModelConfig(state_dim=4, input_dim=pl.ACTION_INPUTS, latent=6))
    assert pl.reads_actions(model)
    res = pl.compare({"model": pl.model_predictor(model)}, planted_problems(),
                     pl.PlanConfig(candidates=16, rounds=2))["model"]
    assert res.success.all()
    assert res.summary()["updates_per_rollout"] == 1  # one frame read, one jump to the horizon
    # The animation's trace runs the same rollout: from one frame, the path the simulator gives.
    p = planted_problems()
    times = np.arange(0, pl.HORIZON + 1e-6, 0.4)
    true, pred = trace(p.cue[0], p.obj[0], res.actions[0], times, model)
    np.testing.assert_allclose(pred, true, atol=0.02)


def test_plan_command_trains_models_that_read_the_action_from_one_frame(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--problems", "2", "--models", "pcode", "--out", "out", "--train-steps", "2",
                 "--train-n", "50", "--candidates", "8", "--rounds", "1", "--budgets", "--gifs", "0",
                 "--hidden", "16", "--actions-as-inputs"]) == 0
    run = json.loads((tmp_path / "out" / "pcode" / "config.json").read_text())
    assert run["model"]["input_dim"] == pl.ACTION_INPUTS and run["segments"]["n_burn"] == 1
    results = json.loads((tmp_path / "out" / "plan_results.json").read_text())
    assert results["setup"]["actions_as_inputs"] == {"pcode": [True]}


def thermo_csv(path, frames=120):
    """A room temperature that follows a heater switched on and off every 15 readings."""
    t = np.arange(frames)
    heater = ((t // 15) % 2).astype(float)
    temp = np.zeros(frames)
    for i in range(1, frames):
        temp[i] = temp[i - 1] + 0.3 * (2 * heater[i - 1] - temp[i - 1])
    path.write_text("t,temp,heater\n" + "".join(f"{a},{b:.6f},{c:g}\n" for a, b, c in zip(t, temp, heater)))
    return path


@pytest.fixture(scope="module")
def thermo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("thermo")
    data = thermo_csv(root / "thermo.csv")
    assert main(["--threads", "1", "train", "--data", str(data), "--time-column", "t", "--input-columns", "heater",
                 "--out", str(root / "run"), "--steps", "2", "--batch-size", "2", "--window", "30", "--hidden", "16",
                 "--latent", "16"]) == 0
    return root


def test_cli_reads_input_columns_and_never_predicts_them(thermo_run, capsys):
    cfg = json.loads((thermo_run / "run" / "config.json").read_text())
    assert cfg["model"]["input_dim"] == 1 and cfg["model"]["state_dim"] == 1
    assert cfg["data"]["columns"] == ["temp"] and cfg["data"]["input_columns"] == ["heater"]
    capsys.readouterr()
    assert main(["rollout", str(thermo_run / "run"), "--from", "50", "--ahead", "20"]) == 0
    assert "read from the series" in capsys.readouterr().out
    lines = (thermo_run / "run" / "forecast.csv").read_text().splitlines()
    assert lines[0] == "time,temp,heater (given)"
    given = [float(line.split(",")[2]) for line in lines[1:]]
    assert given == [float((t // 15) % 2) for t in range(51, 71)]  # exactly the data's


def test_cli_forecast_past_the_data_holds_the_last_inputs_and_says_so(thermo_run, capsys):
    assert main(["rollout", str(thermo_run / "run"), "--from", "119", "--ahead", "5", "--every", "1",
                 "--out", str(thermo_run / "held")]) == 0
    assert "no known inputs after 119" in capsys.readouterr().out
    lines = (thermo_run / "held.csv").read_text().splitlines()
    assert lines[0] == "time,temp,heater (held)" and {line.split(",")[2] for line in lines[1:]} == {"1"}


@pytest.mark.parametrize("args, words", [
    (["--from", "100", "--ahead", "30"], "known inputs stop at 119"),
    (["--from", "50", "--ahead", "5", "--input-columns", ""], "gives 0 known input(s) but the run's model reads 1"),
    (["--from", "50", "--ahead", "5", "--columns", "temp,heater"], "named both as state and as a known input"),
])
def test_bad_inputs_for_a_forecast_are_one_line_and_exit_2(thermo_run, capsys, args, words):
    out = thermo_run / "bad"
    assert main(["rollout", str(thermo_run / "run"), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (thermo_run / "bad.csv").exists()


def test_a_file_with_the_wrong_number_of_inputs_for_the_run_is_refused(thermo_run, tmp_path, capsys):
    other = tmp_path / "two.csv"
    other.write_text("t,temp,heater,fan\n" + "".join(f"{i},0.5,1,0\n" for i in range(40)))
    assert main(["eval", str(thermo_run / "run"), "--data", str(other), "--input-columns", "heater,fan"]) == 2
    err = capsys.readouterr().err
    assert "gives 2 known input(s) but the run's model reads 1 (heater)" in err and err.count("\n") == 1


def test_aux_columns_train_a_new_run_with_known_inputs(thermo_run):
    out = thermo_run / "aux"
    assert main(["--threads", "1", "train", "--data", str(thermo_run / "thermo.csv"), "--time-column", "t",
                 "--aux-columns", "heater", "--out", str(out), "--steps", "1", "--batch-size", "2", "--window", "30",
                 "--hidden", "16", "--latent", "16"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["input_dim"] == 1 and cfg["model"]["aux_dims"] == 0 and cfg["data"]["aux_columns"] == []


def test_npz_inputs_round_trip_and_train_a_run_that_reads_them(tmp_path):
    x, u, _ = step_series(12)
    s = from_arrays(x.numpy(), columns=["level"], inputs=u.numpy(), input_columns=["switch"])
    to_npz(s, tmp_path / "s.npz")
    back = from_npz(tmp_path / "s.npz")
    assert back.state_columns == ["level"] and back.input_columns == ["switch"]
    np.testing.assert_array_equal(np.stack(back.x)[..., 1], u.numpy()[..., 0])
    assert main(["--threads", "1", "train", "--data", str(tmp_path / "s.npz"), "--out", str(tmp_path / "run"),
                 "--steps", "1", "--batch-size", "2", "--hidden", "16", "--latent", "16"]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["input_dim"] == 1 and cfg["data"]["input_columns"] == ["switch"]


def test_npz_inputs_of_the_wrong_shape_are_one_line_and_exit_2(tmp_path, capsys):
    save_npz(tmp_path / "bad.npz", x=np.zeros((3, 10, 1), np.float32), inputs=np.zeros((3, 9, 1), np.float32))
    assert main(["train", "--data", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "inputs must be a real array of shape (sequences, frames, inputs)" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_rollout_refuses_inputs_of_the_wrong_count():
    model = build_model(ModelConfig(state_dim=1, input_dim=2, hidden=16, latent=16))
    with pytest.raises(DataError, match="reads 2 known input"):
        rollout(model, torch.zeros(3, 4, 1), 10.0, u=torch.zeros(3, 11, 1))
    with pytest.raises(DataError, match="reads 2 known input"):
        rollout(model, torch.zeros(3, 4, 1), 10.0)


def test_scheduled_inputs_past_the_last_reading_drive_a_forecast_and_never_train(thermo_run, capsys):
    data = thermo_run / "scheduled.csv"
    text = thermo_csv(data).read_text()
    plan = [1, 1, 0, 0, 1, 0]  # the heater's schedule for times 120..125, the temperature not yet known
    data.write_text(text + "".join(f"{120 + k},,{h}\n" for k, h in enumerate(plan)))
    series = from_csv(data, time_column="t", input_columns=["heater"])
    assert len(series.t[0]) == 120 and np.isfinite(series.x[0]).all()
    assert series.scheduled[0][0].tolist() == list(range(120, 126)) and series.scheduled[0][1][:, 0].tolist() == plan
    to_csv(series, thermo_run / "again.csv")
    again = from_csv(thermo_run / "again.csv", time_column="t", id_column="series", input_columns=["heater"])
    assert np.array_equal(again.scheduled[0][1], series.scheduled[0][1])

    capsys.readouterr()
    assert main(["rollout", str(thermo_run / "run"), "--data", str(data), "--from", "119", "--ahead", "6",
                 "--out", str(thermo_run / "scheduled-forecast")]) == 0
    assert "no known inputs after" not in capsys.readouterr().out
    lines = (thermo_run / "scheduled-forecast.csv").read_text().splitlines()
    assert lines[0] == "time,temp,heater (given)"
    assert [float(line.split(",")[0]) for line in lines[1:]] == list(range(120, 126))
    assert [float(line.split(",")[2]) for line in lines[1:]] == plan  # exactly the schedule


@pytest.mark.parametrize("rows, words", [
    ("120,,\n", "column 'heater' of series (the whole file) is blank in a row that gives no state"),
    ("118.5,,1\n", "does not come after the one before it"),
])
def test_bad_scheduled_inputs_are_one_line_and_exit_2(thermo_run, capsys, rows, words):
    data = thermo_run / "bad-scheduled.csv"
    data.write_text(thermo_csv(thermo_run / "base.csv").read_text() + rows)
    assert main(["rollout", str(thermo_run / "run"), "--data", str(data), "--from", "119", "--ahead", "2",
                 "--every", "1", "--out", str(thermo_run / "bad-scheduled-forecast")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (thermo_run / "bad-scheduled-forecast.csv").exists()


def test_a_blank_state_before_the_last_reading_is_a_gap_not_a_schedule(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("t,temp,heater\n0,0.1,0\n1,,1\n2,0.3,1\n")
    with pytest.raises(DataError, match="row 3, column 'temp' of series \\(the whole file\\) is nan \\(a gap\\)"):
        from_csv(path, time_column="t", input_columns=["heater"])
