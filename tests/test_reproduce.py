"""`pcnode reproduce`: every promised file written and well-formed, finished runs never retrained."""
import csv
import json

import pytest
import torch
from PIL import Image

import pcnode.experiments.reproduce as rp
from pcnode.cli import main
from pcnode.data import split, task_data
from pcnode.errors import ConfigError
from pcnode.experiments.paper import Target, target_status
from pcnode.experiments.reproduce import FixedDt, ReproduceConfig, reproduce
from pcnode.model import PCODE, ModelConfig
from pcnode.rollout import rollout
from pcnode.segments import DEFAULT_RELATIVE_EPSILON, mean_square_change

torch.set_num_threads(1)

TINY = dict(tasks=["pixel_billiards2d"], models=["pcode", "rnn"], steps=2, n=20)


def counted(calls, config, out):
    """`reproduce(config, out)`, noting each training it starts in `calls`: (task, model, resumed)."""
    real = rp.fit_with_bar

    def counting(model, train, test, cfg, run, spec, resume=False, label=None, **rest):
        calls.append((spec["task"], model.config.kind, resume))
        return real(model, train, test, cfg, run, spec, resume=resume, label=label, **rest)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(rp, "fit_with_bar", counting)
        return reproduce(config, out, data_dir=None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One pixel task, PC-ODE and RNN, two steps each: (report folder, calls to train)."""
    out = tmp_path_factory.mktemp("reproduce")
    calls = []
    counted(calls, ReproduceConfig(**TINY), out)
    return out, calls


def test_results_csv_has_a_finite_row_per_task_and_model(tiny):
    out, _ = tiny
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["task"], r["model"]) for r in rows] == [("pixel_billiards2d", "pcode"), ("pixel_billiards2d", "rnn")]
    for r in rows:
        for key in ("mse", "mean_dt", "updates", "train_s", "rollout_s_per_1024", "rnn_updates_ratio"):
            assert float(r[key]) >= 0, key
    assert float(rows[1]["rnn_updates_ratio"]) == 1.0


def test_results_md_shows_published_figures_and_targets(tiny):
    text = (tiny[0] / "results.md").read_text()
    assert "3.7e-02 (published)" in text
    assert "| pixel_billiards2d | mean dt >= 2.5 |" in text
    assert "| lines | mean dt >= 15 | not run |" in text


def test_every_promised_figure_and_gif_is_a_readable_image(tiny):
    out, _ = tiny
    for name in ("figures/curves_pixel_billiards2d.png", "figures/pixel_billiards2d_strip.png",
                 "figures/ablation_constant_dt.png"):
        assert Image.open(out / name).format == "PNG", name
    gif = Image.open(out / "gifs" / "pixel_billiards2d.gif")
    assert gif.format == "GIF" and gif.n_frames == 45


def test_ablation_csv_has_one_row_per_constant_dt(tiny):
    rows = list(csv.DictReader(open(tiny[0] / "ablation.csv")))
    assert [float(r["dt"]) for r in rows] == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_each_pair_trains_in_its_own_run_folder_with_config(tiny):
    out, calls = tiny
    assert calls == [("pixel_billiards2d", "pcode", False), ("pixel_billiards2d", "rnn", False)]
    for kind in ("pcode", "rnn"):
        cfg = json.loads((out / "runs" / f"pixel_billiards2d-{kind}" / "config.json").read_text())
        assert cfg["model"]["kind"] == kind and cfg["train"]["steps"] == 2


def test_second_invocation_skips_finished_runs(tiny):
    out, _ = tiny
    calls = []
    counted(calls, ReproduceConfig(**TINY), out)
    assert calls == []


def test_more_steps_resume_each_run_from_its_checkpoint(tmp_path):
    cfg = dict(tasks=["lines"], models=["rnn"], n=20)
    reproduce(ReproduceConfig(**cfg, steps=1), tmp_path, data_dir=None)
    calls = []
    counted(calls, ReproduceConfig(**cfg, steps=2), tmp_path)
    assert calls == [("lines", "rnn", True)]


def test_fixed_dt_model_updates_every_dt_frames():
    model = PCODE(ModelConfig(state_dim=2))
    ro = rollout(FixedDt(model, 4.0), torch.zeros(3, 4, 2), horizon=19)
    assert ro.updates.tolist() == [4, 4, 4]


def test_a_missed_target_is_reported_as_missed():
    rows = [{"task": "lines", "model": "pcode", "mean_dt": 9.0, "mse": 1.0}]
    assert target_status(Target("lines", "mean_dt", 15.0, True), rows) == (9.0, False)


def test_unknown_task_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown or no tasks"):
        ReproduceConfig(tasks=["pong"]).validate()


def test_cli_reports_a_bad_budget_in_one_line(capsys, tmp_path):
    assert main(["reproduce", "--budget", "huge", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_every_task_skips_with_the_default_threshold_relative_to_its_frames(tiny):
    cfg = json.loads((tiny[0] / "runs" / "pixel_billiards2d-pcode" / "config.json").read_text())
    assert cfg["train"]["epsilon"] is None and cfg["train"]["relative_epsilon"] is None  # the default...
    train, _ = split(task_data("pixel_billiards2d", 20, 0)["x"], 0.1)
    expected = DEFAULT_RELATIVE_EPSILON * mean_square_change(train)  # ...relative to the training frames
    assert cfg["segments"]["threshold"] == pytest.approx(expected, rel=1e-6)
    threshold = f"pixel_billiards2d {expected:.3g}"
    assert threshold in (tiny[0] / "results.md").read_text()
