"""Your own series: files round-trip, real times reach the model, units come back, padding stays out of the loss."""
import numpy as np
import pytest
import torch

import pcnode.forcing
from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, evaluate, fit, rollout, teacher_forcing
from pcnode.cli import main
from pcnode.data import Trajectories
from pcnode.errors import DataError
from pcnode.segments import mean_square_change
from pcnode.series import Scaling, cut, forecast, from_arrays, from_csv, from_npz, jena_climate, to_csv, to_npz

torch.set_num_threads(1)


def ragged(lengths=(7, 12)):
    rng = np.random.default_rng(0)
    ts = [np.cumsum(rng.uniform(0.5, 2.0, n)) for n in lengths]
    xs = [rng.normal(size=(len(t), 2)) * 10 + 100 for t in ts]
    return from_arrays(xs, ts, columns=["a", "b"], ids=["u", "v"])


def tiny_model(state_dim=2, kind="pcode"):
    torch.manual_seed(0)
    return build_model(ModelConfig(kind=kind, state_dim=state_dim, hidden=16, latent=16))


def test_csv_round_trip_keeps_every_series_time_and_value(tmp_path):
    s = ragged()
    to_csv(s, tmp_path / "s.csv")
    back = from_csv(tmp_path / "s.csv", time_column="t", id_column="series")
    assert back.ids == s.ids and back.columns == s.columns
    for a, b in zip(s.x + s.t, back.x + back.t):
        np.testing.assert_array_equal(a, b)


def test_npz_round_trip_keeps_times_columns_and_ids(tmp_path):
    s = from_arrays(np.random.default_rng(1).normal(size=(3, 9, 2)), np.sort(np.random.default_rng(2).uniform(
        0, 50, (3, 9)), axis=1), columns=["p", "q"], ids=["a", "b", "c"])
    to_npz(s, tmp_path / "s.npz")
    back = from_npz(tmp_path / "s.npz")
    assert back.columns == ["p", "q"] and back.ids == ["a", "b", "c"]
    np.testing.assert_allclose(np.stack(back.x), np.stack(s.x), rtol=1e-6)  # x is stored as float32
    np.testing.assert_array_equal(np.stack(back.t), np.stack(s.t))


def test_jena_loader_reads_its_date_format_and_drops_repeated_stamps(tmp_path):
    f = tmp_path / "jena_climate_2009_2016.csv"
    f.write_text('"Date Time","p (mbar)","T (degC)","rh (%)"\n'
                 "01.01.2009 00:10:00,996.52,-8.02,93.3\n"
                 "01.01.2009 00:20:00,996.57,-8.41,93.4\n"
                 "01.01.2009 00:20:00,996.57,-8.41,93.4\n"
                 "01.01.2009 00:30:00,996.53,-8.51,93.9\n")
    s = jena_climate(f, columns=["p (mbar)", "T (degC)"])
    assert s.columns == ["p (mbar)", "T (degC)"] and s.dates
    np.testing.assert_array_equal(np.diff(s.t[0]), [600.0, 600.0])
    assert s.x[0][2].tolist() == [996.53, -8.51]


def test_irregular_times_become_frames_of_the_median_interval():
    s = from_arrays([np.zeros((5, 1))], [np.array([100.0, 110.0, 120.0, 145.0, 150.0])])
    scaling = Scaling.fit(s)
    assert scaling.time_scale == 10.0
    torch.testing.assert_close(cut(s, scaling).t[0], torch.tensor([0.0, 1.0, 2.0, 4.5, 5.0]))


def test_fit_hands_the_real_times_and_masks_to_teacher_forcing(monkeypatch):
    seen = []
    model = tiny_model()

    def spy(model, batch, *settings):
        seen.append((batch.t, batch.mask))
        return teacher_forcing(model, batch, *settings)
    monkeypatch.setattr(pcnode.forcing, "teacher_forcing", spy)
    w = cut(ragged(), Scaling.fit(ragged()))
    fit(model, w, TrainConfig(steps=2, batch_size=2, eval_every=2))
    times, mask = seen[0]
    assert times is not None and mask is not None
    assert {tuple(r.tolist()) for r in times} <= {tuple(r.tolist()) for r in w.t}
    assert times.diff(dim=1).ne(1).any()  # real gaps, not 0, 1, 2, ...


def test_rollout_with_evenly_spaced_burn_in_times_matches_the_default():
    model = tiny_model().eval()
    x = torch.randn(3, 4, 2)
    a = rollout(model, x, 12)
    b = rollout(model, x, 12, t_burn=torch.arange(4.0).expand(3, 4))
    assert torch.equal(a.t, b.t) and torch.equal(a.at(torch.linspace(4, 12, 17)), b.at(torch.linspace(4, 12, 17)))


def test_rollout_clock_starts_at_the_last_real_burn_in_time():
    model = tiny_model().eval()
    t_burn = torch.tensor([[0.0, 0.5, 2.0, 3.5], [0.0, 1.0, 2.0, 3.0]])
    ro = rollout(model, torch.randn(2, 4, 2), torch.tensor([10.0, 6.0]), t_burn=t_burn)
    torch.testing.assert_close(ro.t[:, 3], t_burn[:, -1])
    last = torch.where(torch.isfinite(ro.t), ro.t + ro.dt, torch.zeros_like(ro.t)).amax(1)
    assert last[0] >= 10 and 6 <= last[1] < 10  # each row stops at its own horizon


def test_forecast_comes_back_in_your_units():
    model = tiny_model(state_dim=1).eval()
    with torch.no_grad():  # a decoder that predicts no change: the forecast must hold the last reading
        model.decoder.out.weight.zero_()
        model.decoder.out.bias.zero_()
    t = np.arange(20.0) * 60 + 3600
    x = (np.arange(20.0) * 5 + 1000)[:, None]
    scaling = Scaling.fit(from_arrays([x], [t]))
    f = forecast(model, scaling, t, x, n_burn=4, start=t[5], ahead=300, every=30)
    np.testing.assert_allclose(f.values, np.full((10, 1), x[5, 0]), rtol=1e-6)
    np.testing.assert_allclose(f.times, t[5] + 30 * np.arange(1, 11))


def test_evaluate_reports_errors_in_your_units():
    model = tiny_model(state_dim=1)
    x = torch.randn(4, 10, 1)
    data = Trajectories(x, t=torch.arange(10.0).expand(4, 10))
    plain = evaluate(model, data)["mse"]
    scaled = evaluate(model, data, scale=torch.tensor([3.0]))["mse"]
    assert scaled == pytest.approx(9 * plain, rel=1e-5)


def test_windows_cover_every_reading_and_pad_only_short_series():
    s = from_arrays([np.arange(25.0)[:, None], np.arange(6.0)[:, None]])
    w = cut(s, Scaling([0.0], [1.0], 1.0), window=10, stride=7)
    starts = w.x[:, 0, 0].tolist()
    assert starts == [0.0, 7.0, 14.0, 15.0, 0.0]  # the last long window is aligned to the end
    assert w.lengths.tolist() == [10, 10, 10, 10, 6]


def test_padded_frames_do_not_reach_the_loss():
    w = cut(ragged(), Scaling.fit(ragged()))
    assert not w.mask[0, 6:].any()  # the 7-reading series is padded to 12
    garbage = w.x.clone()
    garbage[0, 7:] = 1e3
    rule, config = SegmentRule.resolve(SegmentRule(), mean_square_change(w.x, w.mask)), TrainConfig(jump_prob=0.0)
    model = tiny_model()
    a = teacher_forcing(model, w, rule, config)
    b = teacher_forcing(model, Trajectories(garbage, w.t, w.mask), rule, config)
    assert a.displacement == b.displacement and a.zero_span == b.zero_span
    assert a.displacement < 1e2


BAD_CSVS = {
    "missing column": ("t,a\n0,1\n1,2\n", ["--columns", "a,b"], "'b'"),
    "non-numeric value": ("t,a\n0,1\n1,oops\n2,3\n", [], "row 3, column 'a'"),
    "duplicate time": ("t,a\n0,1\n1,2\n1,3\n", [], "row 4"),
    "decreasing time": ("t,a\n0,1\n2,2\n1,3\n", [], "row 4"),
    "single-row series": ("id,t,a\nx,0,1\nx,1,2\ny,0,5\n", ["--id-column", "id"], "'y'"),
    "NaN gap": ("t,a,b\n0,1,1\n1,,2\n2,3,3\n", [], "row 3, column 'a'"),
}


@pytest.mark.parametrize("name", BAD_CSVS)
def test_bad_csv_is_one_line_naming_the_row_or_column_and_exit_2(tmp_path, capsys, name):
    text, flags, named = BAD_CSVS[name]
    f = tmp_path / "bad.csv"
    f.write_text(text)
    code = main(["train", "--data", str(f), "--time-column", "t", "--steps", "1", "--out", str(tmp_path / "r"),
                 *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and named in err, err


def test_from_arrays_names_the_frame_of_a_gap():
    x = np.ones((2, 6, 1))
    x[1, 4, 0] = np.nan
    with pytest.raises(DataError, match="frame 4.*'1'"):
        from_arrays(x)


def test_cli_trains_evaluates_and_rolls_out_a_series_in_your_units(tmp_path, capsys):
    to_csv(ragged((12, 20)), tmp_path / "s.csv")
    run = tmp_path / "run"
    common = ["--hidden", "16", "--latent", "16"]
    assert main(["train", "--data", str(tmp_path / "s.csv"), "--time-column", "t", "--id-column", "series",
                 "--split", "time", "--test-fraction", "0.5", "--steps", "2", "--batch-size", "2",
                 "--out", str(run), *common]) == 0
    assert main(["eval", str(run), "--json"]) == 0
    assert main(["rollout", str(run), "--id", "v", "--from", "12", "--ahead", "5", "--every", "0.5"]) == 0
    lines = (run / "forecast.csv").read_text().splitlines()
    assert lines[0] == "time,a,b" and len(lines) == 11 and (run / "forecast.png").stat().st_size > 0
    assert abs(float(lines[1].split(",")[1]) - 100) < 60  # near the data's level of 100, not its z-scores


def test_eval_refuses_a_file_with_more_columns_than_the_run(tmp_path, capsys):
    to_csv(ragged((12, 20)), tmp_path / "s.csv")
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "s.csv"), "--time-column", "t", "--id-column", "series",
                 "--split", "time", "--test-fraction", "0.5", "--steps", "1", "--batch-size", "2",
                 "--hidden", "8", "--latent", "8", "--out", str(run)]) == 0
    to_npz(from_arrays(np.zeros((2, 9, 3)), columns=["a", "b", "c"]), tmp_path / "wide.npz")
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(tmp_path / "wide.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "3 columns" in err and "expects 2 (a, b)" in err


def test_lines_sampled_at_random_times_are_learned_in_a_jump_or_two():
    # Straight paths read at uneven times. The best a model blind to the real gaps
    # could do is extrapolate each path's true velocity over evenly spaced readings;
    # the PC-ODE, whose clock runs in real time, must beat that and cross each held-out
    # path in one or two jumps (one update per reading would be 17).
    rng = torch.Generator().manual_seed(0)
    n, frames = 1200, 21
    gaps = torch.rand(n, frames, generator=rng) + 0.5           # 0.5 to 1.5 frames apart
    t = torch.cumsum(gaps, 1) - gaps[:, :1]
    start = torch.rand(n, 1, 2, generator=rng)
    velocity = (torch.rand(n, 1, 2, generator=rng) - 0.5) * 0.2
    x = start + velocity * t.unsqueeze(-1)
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="pcode", state_dim=2))
    fit(model, Trajectories(x[:1000], t[:1000]), TrainConfig(steps=1200, eval_every=1200))
    metrics = evaluate(model, Trajectories(x[1000:], t[1000:]))

    test_x, test_t = x[1000:], t[1000:]
    even = test_t[:, 3:4] + torch.arange(1, frames - 3) * gaps.mean()
    blind = test_x[:, 3:4] + velocity[1000:] * (even - test_t[:, 3:4]).unsqueeze(-1)
    blind_mse = (blind - test_x[:, 4:]).pow(2).mean().item()
    assert metrics["updates"] <= 2, metrics
    assert metrics["mse"] < blind_mse / 3, (metrics, blind_mse)
