"""A new user's own series: a long one is cut into windows by default and the summary
says how, each message about lengths and scale says which way to go, and a forecast
from past the last reading is refused unless asked for."""
import json
import warnings

import numpy as np
import pytest
import torch

from pcnode.cli import main
from pcnode.series import AUTO_STRIDE, AUTO_WINDOW, Scaling, SeriesSpec, choose_window, forecast, from_arrays

torch.set_num_threads(1)
SMALL = ["--steps", "1", "--batch-size", "4", "--hidden", "8", "--latent", "8", "--eval-size", "2"]


def write_csv(path, n, value=lambda t: np.sin(t / 20)):
    t = np.arange(n)
    path.write_text("t,level\n" + "".join(f"{a},{value(a):.6g}\n" for a in t))
    return path


def test_a_long_series_is_cut_into_windows_by_default_and_the_summary_says_so(tmp_path, capsys):
    csv = write_csv(tmp_path / "readings.csv", 600)
    assert main(["train", "--data", str(csv), "--time-column", "t", *SMALL, "--out", str(tmp_path / "run")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"50 training windows of {AUTO_WINDOW} readings every {AUTO_STRIDE} (chosen" in line, line
    data = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert (data["window"], data["stride"]) == (AUTO_WINDOW, AUTO_STRIDE)  # the run stores what was chosen


def test_window_whole_keeps_a_long_series_whole_and_the_count_reads_in_the_singular(tmp_path, capsys):
    csv = write_csv(tmp_path / "readings.csv", 300)
    assert main(["train", "--data", str(csv), "--time-column", "t", "--window", "whole", *SMALL,
                 "--out", str(tmp_path / "run")]) == 0
    assert "1 training window (each series whole, the longest 270 readings)" in capsys.readouterr().out


def test_series_no_longer_than_two_windows_stay_whole_and_a_spec_chooses_by_default():
    assert SeriesSpec(file="readings.csv").window == "auto"
    assert choose_window(from_arrays(np.zeros((3, 2 * AUTO_WINDOW, 1)))) == (None, None)
    assert choose_window(from_arrays(np.zeros((1, 2 * AUTO_WINDOW + 1, 1)))) == (AUTO_WINDOW, AUTO_STRIDE)


def test_a_run_trained_whole_resumes_whole_without_naming_the_window_again(tmp_path, capsys):
    csv = write_csv(tmp_path / "readings.csv", 300)
    args = ["train", "--data", str(csv), "--time-column", "t", *SMALL, "--out", str(tmp_path / "run")]
    assert main([*args, "--window", "whole"]) == 0
    assert main([*args[:-2], "--steps", "2", *args[-2:], "--resume"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["window"] is None


@pytest.mark.parametrize("rows, fraction, says", [
    (6, "0.1", "has 6 readings; split in time it needs at least 7"),
    (6, "0.9", "has 6 readings; split in time it needs at least 7"),
    (20, "0.1", "keeps 2 readings in the test split, fewer than the 5 (the burn-in and one to score) it needs "
                "there: raise --test-fraction"),
    (20, "0.95", "keeps 1 reading in the training split, fewer than the 2 it needs there: lower --test-fraction"),
])
def test_a_short_series_is_told_which_way_to_move_the_test_fraction(tmp_path, capsys, rows, fraction, says):
    csv = write_csv(tmp_path / "short.csv", rows)
    assert main(["train", "--data", str(csv), "--time-column", "t", "--test-fraction", fraction, *SMALL,
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, says", [([], "too large to standardise"), (["--no-normalize"], "float32")])
def test_values_near_the_float_limit_are_one_line_naming_the_column_without_numpy_warnings(tmp_path, capsys,
                                                                                          flags, says):
    csv = write_csv(tmp_path / "huge.csv", 60, value=lambda t: 1.7e308 * (-1) ** t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(["train", "--data", str(csv), "--time-column", "t", *flags, *SMALL, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "column 'level'" in err and says in err and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    csv = write_csv(root / "readings.csv", 120)
    assert main(["train", "--data", str(csv), "--time-column", "t", *SMALL, "--out", str(root / "run")]) == 0
    return root / "run"


def test_a_forecast_from_past_the_last_reading_is_refused_with_that_readings_time(series_run, capsys):
    capsys.readouterr()
    assert main(["rollout", str(series_run), "--from", "9999", "--ahead", "40", "--every", "1"]) == 2
    err = capsys.readouterr().err
    assert "--from 9999 is past the last reading of series '0', at 119" in err and "--extrapolate" in err
    assert not (series_run / "forecast.csv").exists()


def test_a_forecast_from_past_the_last_reading_runs_when_asked_to_extrapolate(series_run, capsys):
    assert main(["rollout", str(series_run), "--from", "200", "--ahead", "10", "--every", "1", "--extrapolate"]) == 0
    assert "over the 91 time units from the last burn-in reading" in capsys.readouterr().out
    assert (series_run / "forecast.csv").read_text().splitlines()[1].startswith("201,")


def test_the_python_forecast_warns_when_it_starts_past_the_data():
    from pcnode import ModelConfig, build_model
    model = build_model(ModelConfig(state_dim=1, hidden=8, latent=8), seed=0).eval()
    t, x = np.arange(20.0), np.sin(np.arange(20.0))[:, None]
    with pytest.warns(RuntimeWarning, match="past the last reading \\(19\\)"):
        forecast(model, Scaling.fit(from_arrays([x], [t])), t, x, n_burn=4, start=30.0, ahead=5.0, every=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forecast(model, Scaling.fit(from_arrays([x], [t])), t, x, n_burn=4, start=19.0, ahead=5.0, every=1.0)
        forecast(model, Scaling.fit(from_arrays([x], [t])), t, x, n_burn=4, start=10.5, ahead=5.0)


def test_a_spec_left_on_auto_scores_a_long_series_in_windows_without_overlap():
    from pcnode import ModelConfig, build_model
    from pcnode.series import evaluate_series
    s = from_arrays([np.sin(np.arange(300.0) / 20)[:, None]])
    spec = SeriesSpec(file="unused.csv", scaling={"mean": [0.0], "std": [1.0], "time_scale": 1.0})
    windows = []
    model = build_model(ModelConfig(state_dim=1, hidden=8, latent=8), seed=0)
    evaluate_series(model, spec, s, progress=windows.append)
    assert sum(windows) == 300 // AUTO_WINDOW  # windows of 50, none overlapping
