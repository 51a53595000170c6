"""The command line on bad input: one line on stderr, exit code 2, no traceback, nothing written.

Each case builds its inputs in a fresh folder, runs `pcnode ...` there, and checks the
message and that the folder holds exactly what it held before.
"""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pcnode import ModelConfig, TrainConfig, build_model, fit
from pcnode.cli import busy_cores, idle_cores, main
from pcnode.data import save_npz, split, task_data
from pcnode.segments import DEFAULT_RELATIVE_EPSILON, mean_square_change

torch.set_num_threads(1)

SMALL = ["--steps", "2", "--batch-size", "8", "--hidden", "16", "--latent", "16", "--eval-size", "4"]


def trajectories(n=20, frames=10, dims=2):
    return np.cumsum(np.random.default_rng(0).random((n, frames, dims), dtype=np.float32) * 0.1, axis=1)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A trained run whose data spec names `data.npz` relative to the folder commands run in."""
    root = tmp_path_factory.mktemp("good")
    save_npz(root / "data.npz", x=trajectories())
    x = torch.from_numpy(trajectories())
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16))
    fit(model, x[:18], TrainConfig(steps=2, batch_size=4, eval_every=2, checkpoint_every=2, eval_size=2),
        test=x[18:], run_dir=root / "run", data={"file": "data.npz", "test_fraction": 0.1})
    return root


@pytest.fixture
def here(tmp_path, good_run, monkeypatch):
    """A working folder holding good.npz, a copy of the good run in run/, and its data.npz."""
    for src in [good_run / "data.npz", *sorted((good_run / "run").iterdir())]:
        dst = tmp_path / src.relative_to(good_run)
        dst.parent.mkdir(exist_ok=True)
        dst.write_bytes(src.read_bytes())
    (tmp_path / "good.npz").write_bytes((good_run / "data.npz").read_bytes())
    (tmp_path / "afile").write_text("a regular file, so nothing can be created under it\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edit_config(path, change):
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg))


def edit_checkpoint(path, change_tensors=None, change_meta=None):
    tensors = load_file(str(path))
    with open(path, "rb") as f:
        meta = json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    save_file(tensors, str(path), metadata=meta)


def npz(**arrays):
    return lambda d: np.savez(d / "bad.npz", **arrays)


def run_cfg(change):
    return lambda d: edit_config(d / "run" / "config.json", change)


def seed_other_run(d):
    """run/ holds a run trained with hidden=16; train an incompatible one into other/."""
    x = torch.from_numpy(trajectories())
    model = build_model(ModelConfig(state_dim=2, hidden=8, latent=16))
    fit(model, x, TrainConfig(steps=1, batch_size=4, eval_every=1, checkpoint_every=1), run_dir=d / "other",
        data={"file": "data.npz", "test_fraction": 0.1})


def nothing(d):
    pass


TASK = ["train", "--task", "lines", "--n", "40", *SMALL]


def task_run(d):
    assert main([*TASK, "--out", "trun"]) == 0


TRAIN_DATA = ["train", "--data", "bad.npz", *SMALL, "--out", "out"]
GOOD_DATA = ["train", "--data", "good.npz", *SMALL]

# (id, setup, argv, a fragment of the message)
CASES = [
    # the command line itself
    ("no-subcommand", nothing, [], "required"),
    ("unknown-subcommand", nothing, ["fly"], "invalid choice"),
    ("unknown-flag", nothing, [*GOOD_DATA, "--bogus", "1"], "unrecognized"),
    ("threads-zero", nothing, ["--threads", "0", *GOOD_DATA, "--out", "out"], "--threads"),
    ("threads-negative", nothing, ["--threads", "-3", *GOOD_DATA, "--out", "out"], "--threads"),
    ("threads-not-a-number", nothing, ["--threads", "two", *GOOD_DATA, "--out", "out"], "--threads"),
    ("lr-not-a-number", nothing, [*GOOD_DATA, "--lr", "fast", "--out", "out"], "--lr"),
    # names
    ("unknown-task", nothing, ["train", "--task", "spirals", *SMALL, "--out", "out"], "unknown task"),
    ("unknown-model", nothing, [*GOOD_DATA, "--model", "transformer", "--out", "out"], "unknown model"),
    ("unknown-solver", nothing, [*GOOD_DATA, "--model", "odernn", "--solver", "rk45", "--out", "out"], "solver"),
    ("unknown-device", nothing, [*GOOD_DATA, "--device", "tpu9", "--out", "out"], "device"),
    ("data-unknown-task", nothing, ["data", "spirals", "--n", "4"], "unknown task"),
    ("too-few-trajectories", nothing, ["train", "--task", "lines", "--n", "1", *SMALL, "--out", "out"], "at least 2"),
    ("data-zero-trajectories", nothing, ["data", "lines", "--n", "0"], "at least 2"),
    # data files
    ("missing-data-file", nothing, ["train", "--data", "nowhere.npz", *SMALL, "--out", "out"], "not found"),
    ("data-path-is-a-folder", lambda d: (d / "bad.npz").mkdir(), TRAIN_DATA, "not found"),
    ("empty-data-file", lambda d: (d / "bad.npz").write_bytes(b""), TRAIN_DATA, "not a readable .npz"),
    ("text-data-file", lambda d: (d / "bad.npz").write_text("x,y\n1,2\n"), TRAIN_DATA, "bad.npz"),
    ("truncated-npz", lambda d: (d / "bad.npz").write_bytes((d / "good.npz").read_bytes()[:300]), TRAIN_DATA,
     "not a readable .npz"),
    ("single-npy-array", lambda d: np.save(open(d / "bad.npz", "wb"), trajectories()), TRAIN_DATA, r"\.npy"),
    ("empty-npz", npz(), TRAIN_DATA, "no array named 'x'"),
    ("npz-without-x", npz(y=trajectories()), TRAIN_DATA, "no array named 'x'"),
    ("2d-x", npz(x=np.zeros((20, 10))), TRAIN_DATA, "shape"),
    ("4d-x", npz(x=np.zeros((20, 10, 2, 1))), TRAIN_DATA, "shape"),
    ("string-x", npz(x=np.full((20, 10, 2), "a")), TRAIN_DATA, "real array"),
    ("complex-x", npz(x=trajectories().astype(np.complex64)), TRAIN_DATA, "real array"),
    ("bool-x", npz(x=np.zeros((20, 10, 2), bool)), TRAIN_DATA, "real array"),
    ("nan-in-x", npz(x=np.where(np.arange(2) == 1, np.nan, trajectories())), TRAIN_DATA, r"\bnan\b"),
    ("inf-in-x", npz(x=np.where(np.arange(2) == 1, np.inf, trajectories())), TRAIN_DATA, r"\binf\b"),
    ("x-overflows-float32", npz(x=trajectories().astype(np.float64) * 1e300), TRAIN_DATA, r"\binf\b|float32"),
    ("no-sequences", npz(x=np.zeros((0, 10, 2))), TRAIN_DATA, "too few|no sequences|no series|shape"),
    ("one-sequence", npz(x=trajectories(n=1)), TRAIN_DATA, "too few|fewer"),
    ("zero-dims", npz(x=np.zeros((20, 10, 0))), TRAIN_DATA, "state_dim"),
    ("shorter-than-burn-in", npz(x=trajectories(frames=3)), TRAIN_DATA, "burn-in"),
    ("burn-in-longer-than-data", nothing, [*GOOD_DATA, "--n-burn", "12", "--out", "out"], "burn-in"),
    # settings
    ("negative-lr", nothing, [*GOOD_DATA, "--lr", "-0.1", "--out", "out"], "learning rate"),
    ("zero-lr", nothing, [*GOOD_DATA, "--lr", "0", "--out", "out"], "learning rate"),
    ("nan-lr", nothing, [*GOOD_DATA, "--lr", "nan", "--out", "out"], "lr"),
    ("negative-batch-size", nothing, [*GOOD_DATA, "--batch-size", "-8", "--out", "out"], "batch_size"),
    ("zero-steps", nothing, [*GOOD_DATA, "--steps", "0", "--out", "out"], "steps"),
    ("zero-checkpoint-every", nothing, [*GOOD_DATA, "--checkpoint-every", "0", "--out", "out"], "checkpoint_every"),
    ("negative-weight-decay", nothing, [*GOOD_DATA, "--weight-decay", "-1", "--out", "out"], "weight_decay"),
    ("nan-weight-decay", nothing, [*GOOD_DATA, "--weight-decay", "nan", "--out", "out"], "weight_decay"),
    ("nan-epsilon", nothing, [*GOOD_DATA, "--epsilon", "nan", "--out", "out"], "epsilon"),
    ("jump-prob-above-one", nothing, [*GOOD_DATA, "--jump-prob", "1.5", "--out", "out"], "--jump-prob"),
    ("feed-predictions-above-one", nothing, [*GOOD_DATA, "--feed-predictions", "2", "--out", "out"],
     "--feed-predictions"),
    ("negative-dt-weight", nothing, [*GOOD_DATA, "--dt-weight", "-1", "--out", "out"], "--dt-weight"),
    ("zero-burn-in", nothing, [*GOOD_DATA, "--n-burn", "0", "--out", "out"], "--n-burn"),
    ("odd-latent", nothing, [*GOOD_DATA, "--latent", "15", "--out", "out"], "latent must be even"),
    ("zero-hidden", nothing, [*GOOD_DATA, "--hidden", "0", "--out", "out"], "hidden"),
    ("zero-min-dt", nothing, [*GOOD_DATA, "--min-dt", "0", "--out", "out"], "--min-dt"),
    ("infinite-max-dt", nothing, [*GOOD_DATA, "--max-dt", "inf", "--out", "out"], "--max-dt"),
    ("min-dt-above-max-dt", nothing, [*GOOD_DATA, "--min-dt", "5", "--max-dt", "2", "--out", "out"],
     "--min-dt <= --max-dt"),
    ("nan-time-constant", nothing, [*GOOD_DATA, "--time-constant", "nan", "--out", "out"], "time_constant"),
    # output folders
    ("out-under-a-file", nothing, [*GOOD_DATA, "--out", "afile/run"], "cannot write"),
    ("data-out-under-a-file", nothing, ["data", "lines", "--n", "4", "--out", "afile/x.npz"], "cannot write"),
    ("out-holds-a-run", nothing, [*GOOD_DATA, "--out", "run"], "already holds a run"),
    ("resume-nothing", nothing, [*GOOD_DATA, "--out", "empty", "--resume"], "nothing to resume"),
    ("resume-different-run", task_run, [*TASK, "--lr", "0.5", "--out", "trun", "--resume"], "different config"),
    ("init-another-model", nothing, [*GOOD_DATA, "--hidden", "8", "--init", "run", "--out", "out"],
     "--init run holds a model with hidden 16 where this run's has hidden 8"),
    ("init-another-kind", nothing, [*GOOD_DATA, "--model", "rnn", "--init", "run", "--out", "out"], "kind 'pcode'"),
    ("init-missing", nothing, [*GOOD_DATA, "--init", "nowhere", "--out", "out"], "run folder nowhere not found"),
    ("task-run-into-a-different-run", task_run, [*TASK, "--lr", "0.5", "--out", "trun"], "already holds"),
    # run folders
    ("eval-missing-run", nothing, ["eval", "nowhere"], "not found"),
    ("eval-file-as-run", nothing, ["eval", "afile"], "not found"),
    ("eval-no-checkpoint", lambda d: (d / "run/checkpoint.safetensors").unlink(), ["eval", "run"], "not found"),
    ("eval-no-config", lambda d: (d / "run/config.json").unlink(), ["eval", "run"], "not found"),
    ("eval-empty-checkpoint", lambda d: (d / "run/checkpoint.safetensors").write_bytes(b""), ["eval", "run"],
     "corrupt or truncated"),
    ("eval-truncated-checkpoint",
     lambda d: (d / "run/checkpoint.safetensors").write_bytes((d / "run/checkpoint.safetensors").read_bytes()[:999]),
     ["eval", "run"], "corrupt or truncated"),
    ("eval-corrupt-config", lambda d: (d / "run/config.json").write_text('{"model": {'), ["eval", "run"],
     "not valid JSON"),
    ("eval-config-not-an-object", lambda d: (d / "run/config.json").write_text("[]"), ["eval", "run"],
     "JSON object"),
    ("eval-config-unknown-key", run_cfg(lambda c: c["model"].update(depth=3)), ["eval", "run"],
     "unknown model settings"),
    ("eval-config-unknown-train-key", run_cfg(lambda c: c["train"].update(momentum=0.9)), ["eval", "run"],
     "unknown training settings"),
    ("eval-config-wrong-type", run_cfg(lambda c: c["model"].update(hidden="16")), ["eval", "run"],
     "must be an integer"),
    ("eval-config-no-train-section", run_cfg(lambda c: c.pop("train")), ["eval", "run"], "no train section"),
    ("eval-config-no-data", run_cfg(lambda c: c.update(data={})), ["eval", "run"], "neither a file nor a task"),
    ("eval-checkpoint-of-another-model", run_cfg(lambda c: c["model"].update(kind="rnn")), ["eval", "run"],
     "does not match"),
    ("eval-checkpoint-of-another-config",
     lambda d: (seed_other_run(d), (d / "run/checkpoint.safetensors").write_bytes(
         (d / "other/checkpoint.safetensors").read_bytes())), ["eval", "run"], "does not match"),
    ("eval-checkpoint-with-foreign-weights",
     lambda d: edit_checkpoint(d / "run/checkpoint.safetensors",
                               change_tensors=lambda t: t.update({"model.cell.weight_ih": torch.zeros(3, 3)})),
     ["eval", "run"], "does not match"),
    ("eval-nan-weights",
     lambda d: edit_checkpoint(d / "run/checkpoint.safetensors",
                               change_tensors=lambda t: t["model.dt_head.weight"].fill_(float("nan"))),
     ["eval", "run"], "NaN/inf"),
    ("eval-integer-weights",
     lambda d: edit_checkpoint(d / "run/checkpoint.safetensors",
                               change_tensors=lambda t: t.update({k: v.long() for k, v in t.items()
                                                                   if k.startswith("model.")})),
     ["eval", "run"], "int64"),
    ("eval-garbled-checkpoint-metadata",
     lambda d: edit_checkpoint(d / "run/checkpoint.safetensors", change_meta=lambda m: m.update(config="{oops")),
     ["eval", "run"], "not a JSON object"),
    ("eval-data-of-wrong-state-dim", lambda d: np.savez(d / "data.npz", x=trajectories(dims=3)), ["eval", "run"],
     "shape"),
    ("eval-data-gone", lambda d: (d / "data.npz").unlink(), ["eval", "run"], "not found"),
    ("eval-unknown-device", nothing, ["eval", "run", "--device", "gpu0"], "device"),
    ("rollout-negative-index", nothing, ["rollout", "run", "--index", "-1"], "--index"),
    ("rollout-index-past-the-end", nothing, ["rollout", "run", "--index", "99"], "--index"),
    ("rollout-zero-count", nothing, ["rollout", "run", "--count", "0"], "--count"),
    ("rollout-zero-every", nothing, ["rollout", "run", "--every", "0"], "--every"),
    ("rollout-nan-every", nothing, ["rollout", "run", "--every", "nan"], "--every"),
    ("rollout-ahead-without-from", nothing, ["rollout", "run", "--ahead", "10"], "go together"),
    ("rollout-horizon-renamed", nothing, ["rollout", "run", "--from", "3", "--horizon", "10"],
     "--horizon is now --ahead: how far past --from to forecast \\(--ahead 10\\)"),
    ("rollout-from-on-a-task-run", nothing, ["rollout", "pretrained:lines-pcode", "--from", "3", "--ahead", "10"],
     "trained on a series file"),
    # the skip threshold
    ("both-threshold-forms", nothing, [*GOOD_DATA, "--epsilon", "1e-3", "--relative-epsilon", "1", "--out", "out"],
     "not both"),
    ("negative-relative-threshold", nothing, [*GOOD_DATA, "--relative-epsilon", "-1", "--out", "out"],
     "--relative-epsilon must be >= 0"),
    # shipped models
    ("unknown-pretrained-eval", nothing, ["eval", "pretrained:nope"], "no pretrained model 'nope'; the ones that ship"),
    ("unknown-pretrained-rollout", nothing, ["rollout", "pretrained:nope"], "no pretrained model"),
    ("unknown-pretrained-plan", nothing, ["plan", "--models", "pcode=pretrained:nope", "--problems", "1"],
     "no pretrained model"),
    ("authors-protocol-on-a-series-run", lambda d: main([*GOOD_DATA, "--out", "srun"]),
     ["eval", "srun", "--protocol", "authors"], "series runs"),
    # close matches
    ("misspelt-flag", nothing, [*GOOD_DATA, "--stpes", "2", "--out", "out"],
     r"unrecognized arguments: --stpes 2; did you mean '--steps'\? \(see `pcnode train --help`\)"),
    ("misspelt-subcommand", nothing, ["trian"], "did you mean 'train'"),
    ("misspelt-choice", nothing, ["eval", "run", "--protocol", "author"], "did you mean 'authors'"),
    ("misspelt-model", nothing, [*GOOD_DATA, "--model", "pcod", "--out", "out"], "did you mean 'pcode'"),
    ("misspelt-task", nothing, ["train", "--task", "line", *SMALL, "--out", "out"], "did you mean 'lines'"),
    ("misspelt-pretrained", nothing, ["eval", "pretrained:lines-pcod"], "did you mean 'lines-pcode'"),
    # folders and times that are not what they seem
    ("eval-a-folder-of-runs", lambda d: (d / "demo").mkdir() or (d / "run").rename(d / "demo" / "lines")
     or (d / "demo" / "config.json").write_text('{"demo": {"seed": 0}}'), ["eval", "demo"],
     "demo is not a run folder: it holds the run folder demo/lines; give one of those"),
    ("rollout-from-past-the-last-reading", lambda d: main([*GOOD_DATA, "--out", "srun"]),
     ["rollout", "srun", "--from", "99", "--ahead", "5", "--every", "1"],
     "--from 99 is past the last reading of series '0', at 9;.*--extrapolate"),
    ("window-not-a-number", nothing, [*GOOD_DATA, "--window", "big", "--out", "out"], "--window"),
]


@pytest.mark.parametrize("setup, argv, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(here, capsys, setup, argv, fragment):
    setup(here)
    capsys.readouterr()
    before = snapshot(here)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("pcnode: error:") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(fragment, err, re.IGNORECASE), err
    assert snapshot(here) == before


def test_the_corpus_covers_at_least_twenty_kinds_of_bad_input():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_refused(here, capsys):
    assert main([*GOOD_DATA, "--device", "cuda", "--out", "out"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not (here / "out").exists()


def test_a_failed_run_leaves_a_folder_that_the_same_command_can_reuse(here, capsys):
    # The time constant scales the decoder's input; 1e30 overflows it, so step 1 diverges.
    args = [*GOOD_DATA, "--time-constant", "1e30", "--out", "out"]
    assert main(args) == 2
    assert "diverged" in capsys.readouterr().err
    assert not (here / "out" / "checkpoint.safetensors").exists()
    assert main(args) == 2
    assert "diverged" in capsys.readouterr().err  # not "already holds a run"


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--data", "good.npz", *SMALL, "--out", "afile/run"], "cannot write"),
    (["train", "--task", "lines", "--n", "40", *SMALL, "--lr", "-1", "--out", "out"], "learning rate"),
    (["eval", "nowhere"], "not found"),
])
def test_a_real_process_exits_2_with_one_line_and_no_traceback(here, argv, fragment):
    before = snapshot(here)
    proc = subprocess.run([sys.executable, "-m", "pcnode", *argv], cwd=here, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("pcnode: error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and fragment in proc.stderr
    assert snapshot(here) == before


def test_a_good_command_still_works_and_writes_its_run(here, capsys):
    assert main(["train", "--task", "lines", "--n", "40", *SMALL, "--out", "fresh"]) == 0
    assert sorted(p.name for p in (here / "fresh").iterdir()) == ["checkpoint.safetensors", "config.json",
                                                                  "metrics.csv"]
    assert sorted(p.name for p in (here / "data").iterdir()) == ["lines-n40-seed0.npz"]
    assert main(["eval", "fresh", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["trajectories"] == 4


@pytest.mark.parametrize("task, given, epsilon, relative", [("lines", [], None, DEFAULT_RELATIVE_EPSILON),
                                                             ("pixel_billiards2d", [], None, DEFAULT_RELATIVE_EPSILON),
                                                             ("pixel_billiards2d", ["--epsilon", "3e-3"], 3e-3, None),
                                                             ("lines", ["--relative-epsilon", "1"], None, 1.0)])
def test_train_takes_the_default_relative_threshold_unless_one_is_given(here, task, given, epsilon, relative):
    assert main(["train", "--task", task, "--n", "20", *SMALL, *given, "--out", "r"]) == 0
    cfg = json.loads((here / "r" / "config.json").read_text())
    train, _ = split(task_data(task, 20, 0, cache_dir=here / "data")["x"])
    expected = epsilon if relative is None else relative * mean_square_change(train)
    assert cfg["segments"]["threshold"] == pytest.approx(expected, rel=1e-6)
    assert cfg["train"]["epsilon"] == epsilon
    assert cfg["train"]["relative_epsilon"] == (None if relative == DEFAULT_RELATIVE_EPSILON else relative)


def test_train_gives_the_same_weights_for_the_same_seed_in_any_process(here):
    for name, state in (("r1", 1), ("r2", 2)):  # a new process starts from a random global state
        torch.manual_seed(state)
        assert main([*TASK, "--out", name]) == 0
    a, b = load_file(here / "r1" / "checkpoint.safetensors"), load_file(here / "r2" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cores, load, threads", [(2, 0.05, 2), (2, 0.9, 1), (2, 1.6, 1), (2, 3.0, 1),
                                                  (16, 3.0, 2), (1, 0.0, 1)])
def test_the_default_thread_count_leaves_busy_cores_alone(monkeypatch, cores, load, threads):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr("pcnode.cli.busy_cores", lambda: load)
    assert idle_cores() == threads


@pytest.mark.parametrize("text, busy", [("0.20 0.10 0.05 3/86 6105", 2), ("1.70 0.90 0.40 1/80 77", 1.7),
                                        ("0.00 0.00 0.00 1/80 77", 0)])
def test_busy_cores_reads_the_load_and_the_processes_running_now(tmp_path, monkeypatch, text, busy):
    (tmp_path / "loadavg").write_text(text + "\n")
    assert busy_cores(str(tmp_path / "loadavg")) == busy
    monkeypatch.setattr("os.getloadavg", lambda: (0.7, 0.5, 0.25))
    assert busy_cores(str(tmp_path / "missing")) == 0.7  # no such file: the load average


def test_a_command_without_threads_runs_on_the_idle_cores(here, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr("pcnode.cli.busy_cores", lambda: 1.0)  # another process holds one core
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["data", "lines", "--n", "4", "--out", "lines.npz"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["--threads", "2", "data", "lines", "--n", "4", "--out", "lines2.npz"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_global_threads_flag_is_accepted_after_the_subcommand_too(here):
    before = torch.get_num_threads()
    try:
        assert main(["data", "lines", "--n", "4", "--out", "lines.npz", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["--threads", "2", "data", "lines", "--n", "4", "--out", "lines2.npz"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_pretrained_lists_the_models_under_a_header_row(capsys):
    assert main(["pretrained"]) == 0
    header, first, *_ = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["name", "steps", "test", "MSE", "authors"] and first.split()[0] == "billiards1d-pcode"


def test_every_flag_of_every_subcommand_says_what_it_does():
    import argparse

    from pcnode.flags import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    silent = [f"{name} {action.option_strings[0]}" for name, command in commands.items()
              for action in command._actions if action.option_strings and not action.help]
    assert not silent, f"flags without help: {silent}"


def test_output_piped_into_a_reader_that_stops_ends_quietly(here):
    proc = subprocess.run(f"{sys.executable} -m pcnode pretrained | head -1", shell=True, cwd=here,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("name") and "Traceback" not in proc.stderr and proc.stderr == ""
