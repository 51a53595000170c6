"""The command line's flags: one parser builder per subcommand, and the names messages use.

`build_parser` makes the `pcnode` parser; each subcommand's flags are built by its own
function, named after it. Library and experiment errors name their arguments in
backquotes (`run_dir`); `as_flags` spells them as the flags that set them (`--out`).
A bad or misspelt flag or choice is one `ConfigError`, with the closest match.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from .config import TrainConfig
from .errors import ConfigError, did_you_mean
from .evaluate import PROTOCOLS
from .model import MODELS, PAPER_MODELS, ModelConfig
from .planning import command as plan_command
from .segments import AUTHORS_EPSILON, DEFAULT_RELATIVE_EPSILON, SegmentRule
from .tasks import TASKS

# The library and the experiments name their arguments in backquotes; here they read as flags.
FLAGS = {
    "run_dir": "--out",
    "resume=True": "--resume",
    "resume": "--resume",
    "task": "--task",
    "test_fraction": "--test-fraction",
    "split='series'": "--split series",
    "split='time'": "--split time",
    "columns": "--columns",
    "time_format": "--time-format",
    "ahead": "--ahead",
    "every": "--every",
    "start": "--from",
    "index": "--index",
    "count": "--count",
    "problems": "--problems",
    "gifs": "--gifs",
    "feed_predictions": "--feed-predictions",
    "init": "--init",
    "epsilon": "--epsilon",
    "relative_epsilon": "--relative-epsilon",
    "ensemble": "--ensemble",
    "train_decay_every": "--train-decay-every",
    "models": "--models",
    "input_columns": "--input-columns",
    "aux_columns": "--aux-columns",
    "input_threshold": "--input-threshold",
    "n_burn": "--n-burn",
    "jump_prob": "--jump-prob",
    "zero_span_weight": "--zero-span-weight",
    "dt_weight": "--dt-weight",
    "field_penalty": "--field-penalty",
    "events": "--events",
    "val_fraction": "--val-fraction",
    "min_dt": "--min-dt",
    "max_dt": "--max-dt",
    "out": "--out",
    "batch": "--batch",
    "normalize=False": "--no-normalize",
    "window": "--window",
    "stride": "--stride",
    "extrapolate": "--extrapolate",
}


def as_flags(message: str) -> str:
    """`message` with each backquoted argument name that a flag sets replaced by the flag."""
    return re.sub(r"`([^`]+)`", lambda m: FLAGS.get(m.group(1), m.group(0)), message)


class Parser(argparse.ArgumentParser):
    """argparse's parser, its errors one ConfigError each (one line, exit 2, like every other bad input)."""

    def error(self, message: str) -> None:
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            message += did_you_mean(choice[1], re.findall(r"'([^']*)'", choice[2]))
        raise ConfigError(f"{message} (see `{self.prog} --help`)")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown flag is named with the subcommand's closest flag and help."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = self
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction) and getattr(parsed, action.dest, None):
                    command = action.choices[getattr(parsed, action.dest)]
            flags = [o for a in command._actions for o in a.option_strings]
            hint = next((did_you_mean(e.split("=")[0], flags) for e in extra if e.startswith("--")), "")
            command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
        return parsed


# Model settings the data decides, not the command line.
MODEL_SET_BY_DATA = {"kind", "state_dim", "encoder", "image_size", "aux_dims", "input_dim"}


def build_parser() -> argparse.ArgumentParser:
    """The `pcnode` parser; each subcommand's parsed arguments name it in `command`."""
    p = Parser(prog="pcnode", description="Piecewise-constant neural ODEs: train, evaluate, roll out.")
    p.add_argument(
        "--threads",
        type=int,
        help="PyTorch CPU threads (default: the cores other processes leave idle when it starts, 1 or 2)",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (
        _data_parser,
        _train_parser,
        _eval_parser,
        _rollout_parser,
        _stream_parser,
        _export_parser,
        _pretrained_parser,
        _demo_parser,
        _reproduce_parser,
        plan_command.add_parser,
    ):
        add(sub)
    for command in sub.choices.values():  # the global flags, also after the subcommand
        command.add_argument("--threads", type=int, default=argparse.SUPPRESS, help="as `pcnode --threads N`")
    return p


def _data_parser(sub) -> None:
    d = sub.add_parser("data", help="generate a task's trajectories as .npz")
    d.add_argument("task")
    d.add_argument("--n", type=int, default=10_000, help="trajectories (default %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="seed of the simulation (default %(default)s)")
    d.add_argument("--out", type=Path, help="output file (default data/TASK-nN-seedS.npz)")


# Settings of the segment rule a training run takes from the command line (the thresholds
# come from --epsilon, --relative-epsilon and --events; whether the model jumps from --model).
RULE_FLAGS = ("n_burn", "min_dt", "max_dt", "input_threshold")


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model; writes a run folder")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help="built-in task to generate data for")
    src.add_argument(
        "--data",
        type=Path,
        help="your series: a CSV with one row per reading, or an .npz with "
        "x (series, frames, dims) and optional t; see pcnode.series",
    )
    t.add_argument("--model", default="pcode", help=f"one of {', '.join(MODELS)} (default %(default)s)")
    t.add_argument("--out", type=Path, help="run folder (default runs/TASK-MODEL)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--n", type=int, default=10_000, help="trajectories to generate for --task")
    _add_series_args(t, training=True)
    _add_dataclass_args(t, TrainConfig, skip={"epsilon", "relative_epsilon", "events", "init"})
    t.add_argument(
        "--init",
        help="start from this run's weights (a run folder, or pretrained:NAME) to fine-tune it; "
        "give the same model flags it was trained with (default: fresh weights from --seed)",
    )
    t.add_argument(
        "--epsilon",
        type=float,
        help="the PC-ODE's skip threshold as a squared error in the data's units "
        f"(the authors': {AUTHORS_EPSILON:g}; not with --relative-epsilon)",
    )
    t.add_argument(
        "--relative-epsilon",
        type=float,
        help="the skip threshold as a multiple of the training data's "
        f"mean squared change per frame (default {DEFAULT_RELATIVE_EPSILON:g})",
    )
    t.add_argument(
        "--events",
        type=float,
        help="the event option: a segment also ends where the data leaves a "
        "straight line by more than this multiple of its mean squared change per frame, so that updates "
        "land on events (default: off)",
    )
    _add_dataclass_args(t, SegmentRule, only=RULE_FLAGS)
    _add_dataclass_args(t, ModelConfig, skip=MODEL_SET_BY_DATA)


def _eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="roll out a trained run on its test trajectories")
    e.add_argument("run", type=Path, help="a run folder, or pretrained:NAME (see `pcnode pretrained`)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="pcnode",
        help="pcnode: the rollout after the burn-in, read at each frame (default); authors: the "
        "scoring of the authors' released code, to set beside their figures (see pcnode.evaluate)",
    )
    e.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    e.add_argument(
        "--data",
        type=Path,
        help="score a series file instead of the run's test split "
        "(series runs; read with the run's columns and scaling)",
    )
    _add_series_args(e, training=False)


def _rollout_parser(sub) -> None:
    r = sub.add_parser("rollout", help="plot and animate a trained run's rollouts")
    r.add_argument("run", type=Path, help="a run folder, or pretrained:NAME (see `pcnode pretrained`)")
    r.add_argument("--index", type=int, default=0, help="first test trajectory to draw")
    r.add_argument("--count", type=int, default=3, help="trajectories in the figure")
    r.add_argument(
        "--every",
        type=float,
        help="query spacing: frames for task runs (default 0.25), your time "
        "units for series runs (default: the series' own times)",
    )
    r.add_argument("--data", type=Path, help="series file to roll out (series runs; default the run's own file)")
    r.add_argument("--from", dest="start", help="series runs: start time; the burn-in is the readings at or before it")
    r.add_argument("--ahead", type=float, help="series runs: how far past --from to forecast, in your time units")
    # The earlier name of --ahead; refused with a pointer, since a rollout's horizon is the time it reaches.
    r.add_argument("--horizon", help=argparse.SUPPRESS)
    r.add_argument("--id", help="series runs: which series (value of the id column; default the first)")
    r.add_argument(
        "--extrapolate",
        action="store_true",
        help="series runs: allow --from past the series' last reading (the rollout runs unchecked from that reading)",
    )
    r.add_argument(
        "--out",
        type=Path,
        help="task runs: output folder (default: the run folder; for pretrained "
        "models runs/pretrained/NAME); series runs: output prefix (default RUN/forecast)",
    )
    _add_series_args(r, training=False)


def _stream_parser(sub) -> None:
    s = sub.add_parser(
        "stream",
        help="replay a file through a trained run as if it arrived live: where the model "
        "updates, what it predicted before each reading, the error",
    )
    s.add_argument("run", type=Path, help="a run folder, or pretrained:NAME (see `pcnode pretrained`)")
    s.add_argument(
        "--data",
        type=Path,
        help="an .npz of trajectories (task runs) or a series file read with the run's "
        "columns and scaling (series runs); default the run's test split",
    )
    s.add_argument("--count", type=int, help="replay the first COUNT streams only (default all)")
    s.add_argument(
        "--out",
        type=Path,
        help="output prefix: PREFIX.csv, .json and .png (default RUN/stream; for "
        "pretrained models runs/pretrained/NAME/stream)",
    )
    _add_series_args(s, training=False)


def _export_parser(sub) -> None:
    x = sub.add_parser(
        "export",
        help="write a trained PC-ODE's or RNN's step as ONNX files (and torch.export "
        "programs) that pcnode.runtime runs without PyTorch",
    )
    x.add_argument("run", type=Path, help="a run folder, or pretrained:NAME (see `pcnode pretrained`)")
    x.add_argument(
        "--out", type=Path, help="output folder (default RUN/export; for pretrained models runs/pretrained/NAME/export)"
    )
    x.add_argument(
        "--batch",
        type=int,
        default=2,
        help="the example batch the functions are traced with; any batch runs (default %(default)s)",
    )


def _pretrained_parser(sub) -> None:
    z = sub.add_parser("pretrained", help="list the trained models that ship, with their scores")
    z.add_argument("--json", action="store_true", help="print one JSON object per model")


def _demo_parser(sub) -> None:
    m = sub.add_parser(
        "demo",
        help="the main job: the shipped Billiards2D PC-ODE and RNN on held-out trajectories, "
        "and a PC-ODE learning Lines; report, figures, GIF",
    )
    m.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        help="folder of the report, figures and the Lines "
        "run; a Lines run already there is reused (default %(default)s)",
    )
    m.add_argument(
        "--lines-steps", type=int, default=300, help="training steps of the Lines PC-ODE (default %(default)s)"
    )
    m.add_argument("--trajectories", type=int, help="held-out Billiards2D trajectories to score (default: all 1,000)")
    m.add_argument("--seed", type=int, default=0, help="seed of the Lines data and training (default %(default)s)")


def _reproduce_parser(sub) -> None:
    x = sub.add_parser("reproduce", help="the paper's experiments: every model on every task, with a report")
    x.add_argument("--tasks", nargs="+", default=list(TASKS), help="(default: all six)")
    x.add_argument(
        "--models",
        nargs="+",
        default=list(PAPER_MODELS),
        help="the paper's pcode, rnn, odernn (the default), or the peers a user might pick instead: "
        "cfc, odernn-adaptive, odernn-kinetic (they need the peers extra)",
    )
    x.add_argument(
        "--budget",
        default="small",
        help="small (this CPU, under an hour) or paper (25k steps of batch 256 on 10k trajectories, for a GPU)",
    )
    x.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    x.add_argument("--seed", type=int, default=0, help="seed of the data and the trainings (default %(default)s)")
    x.add_argument("--steps", type=int, default=0, help="override every task's training steps (0: the budget's)")
    x.add_argument("--n", type=int, default=0, help="override every task's trajectories (0: the budget's)")
    x.add_argument(
        "--out",
        type=Path,
        default=Path("runs/reproduce"),
        help="folder of the runs, figures and report; runs already there are resumed (default %(default)s)",
    )


def _add_series_args(parser, training: bool) -> None:
    """How to read a series file (see `pcnode.series.SeriesSpec`); eval and rollout default to the run's."""
    g = parser.add_argument_group("series files")
    g.add_argument("--format", choices=("csv", "npz", "jena"), help="default: from the file's suffix")
    g.add_argument("--time-column", help="column of times (numbers or dates); default: rows are 0, 1, 2, ...")
    g.add_argument("--time-format", help="strptime format of dates in the time column, e.g. '%%d.%%m.%%Y %%H:%%M:%%S'")
    g.add_argument("--id-column", help="column naming the series each row belongs to")
    g.add_argument("--columns", help="comma-separated state columns (default: all the others)")
    g.add_argument(
        "--input-columns",
        help="comma-separated known inputs (covariates, actions): read by the model at "
        "every update, never predicted or scored; rollouts and scores take them from the data, the last "
        "reading at or before each update (an .npz may give them as an `inputs` array instead)",
    )
    g.add_argument(
        "--aux-columns",
        help="the older spelling of --input-columns: a new run reads these as known "
        "inputs; a run trained with them before inputs existed keeps them as it was trained",
    )
    if training:
        g.add_argument(
            "--window",
            type=_window,
            help="cut series into windows of this many readings; whole: keep "
            "every series whole; auto (the default): windows of 50 every 10 readings when a series is "
            "longer than 100, else whole",
        )
        g.add_argument("--stride", type=int, help="readings between window starts (default: the window; 10 for auto)")
        g.add_argument("--test-fraction", type=float, default=0.1, help="held out (default %(default)s)")
        g.add_argument(
            "--split",
            default="auto",
            help="hold out the end of every series (time), the last series "
            "(series), or auto: series when there are at least 10 (default %(default)s)",
        )
        g.add_argument("--no-normalize", action="store_true", help="train on raw values instead of standardised ones")


# Help for the settings whose name does not say enough.
HELP = {
    "line": "what a PC-ODE segment is a straight line in: latent (the authors': a latent line read through "
    "the decoder, which can bend around a bounce) or data (a straight line in data space: a bounce is an update)",
    "input_threshold": "a PC-ODE updates where a known input moves more than this (standardised units, max over "
    "inputs) from the value its segment read; 0: at every change, so an input that changes at "
    "every reading makes it update at every reading",
}


def _add_dataclass_args(parser, cls, skip=(), only=None) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=f.name,
            type=type(f.default),
            default=None,
            help=f"{HELP[f.name]} (default {f.default})" if f.name in HELP else f"(default {f.default})",
        )


def _window(text: str) -> int | str:
    """--window: a number of readings, whole or auto."""
    if text in ("whole", "auto"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of readings, whole or auto") from None
