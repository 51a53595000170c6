"""The `pcnode` command line: data, train, eval, rollout, demo, reproduce, plan.

The library raises; this layer shows progress, writes results and turns every
`PCNodeError` into one line on stderr with exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from . import plan as pl
from . import pretrained
from .data import load_npz, save_npz, split, task_data
from .errors import CheckpointError, ConfigError, DataError, PCNodeError
from .evaluate import PROTOCOLS, evaluate
from .forcing import SkipRule
from .model import MODELS, ModelConfig, build_model
from .tasks import SKIP_EPSILON, TASKS
from .train import TrainConfig, fit, load_run

DATA_DIR = Path("data")
# Measured on an idle 2-core machine (benchmarks/train_speed.py, batch 256): two threads
# take a Billiards2D step in 276 ms (PC-ODE) and 183 ms (RNN) against 334 and 266 ms
# with one; while another process holds a core, two threads are 2.2x slower than one
# (542 against 252 ms), so pass --threads 1 when sharing the machine. More than two
# threads only add synchronisation to these small per-frame operations.
DEFAULT_THREADS = min(2, os.cpu_count() or 1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
        return args.func(args) or 0
    except PCNodeError as e:
        print(f"pcnode: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pcnode: interrupted", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pcnode", description="Piecewise-constant neural ODEs: train, evaluate, roll out.")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="PyTorch CPU threads (default %(default)s)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("data", help="generate a task's trajectories as .npz")
    d.add_argument("task")
    d.add_argument("--n", type=int, default=10_000, help="trajectories (default %(default)s)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", type=Path, help="output file (default data/TASK-nN-seedS.npz)")
    d.set_defaults(func=cmd_data)

    t = sub.add_parser("train", help="train a model; writes a run folder")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help="built-in task to generate data for")
    src.add_argument("--data", type=Path, help="your series: a CSV with one row per reading, or an .npz with "
                     "x (series, frames, dims) and optional t; see pcnode.series")
    t.add_argument("--model", default="pcode", help=f"one of {', '.join(MODELS)} (default %(default)s)")
    t.add_argument("--out", type=Path, help="run folder (default runs/TASK-MODEL)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--n", type=int, default=10_000, help="trajectories to generate for --task")
    _add_series_args(t, training=True)
    _add_dataclass_args(t, TrainConfig, skip={"rule"})
    _add_dataclass_args(t, SkipRule, skip={"epsilon", "relative_epsilon", "data_change"})
    t.add_argument("--epsilon", type=float, help="the PC-ODE's skip threshold as a squared error in the data's units "
                   "(see pcnode.forcing.SkipRule for the default)")
    t.add_argument("--relative-epsilon", type=float, help="the skip threshold as a multiple of the training data's "
                   "mean squared change per frame (not with --epsilon)")
    _add_dataclass_args(t, ModelConfig, skip={"kind", "state_dim", "encoder", "image_size"})
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="roll out a trained run on its test trajectories")
    e.add_argument("run", type=Path, help="a run folder, or pretrained:NAME (see `pcnode pretrained`)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument("--protocol", choices=PROTOCOLS, default="pcnode",
                   help="pcnode: the rollout after the burn-in, read at each frame (default); authors: the "
                        "scoring of the authors' released code, to set beside their figures (see pcnode.evaluate)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--data", type=Path, help="score a series file instead of the run's test split "
                   "(series runs; read with the run's columns and scaling)")
    _add_series_args(e, training=False)
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("rollout", help="plot and animate a trained run's rollouts")
    r.add_argument("run", type=Path, help="a run folder, or pretrained:NAME (see `pcnode pretrained`)")
    r.add_argument("--index", type=int, default=0, help="first test trajectory to draw")
    r.add_argument("--count", type=int, default=3, help="trajectories in the figure")
    r.add_argument("--every", type=float, help="query spacing: frames for task runs (default 0.25), your time "
                   "units for series runs (default: the series' own times)")
    r.add_argument("--data", type=Path, help="series file to roll out (series runs; default the run's own file)")
    r.add_argument("--from", dest="start", help="series runs: start time; the burn-in is the readings at or before it")
    r.add_argument("--horizon", type=float, help="series runs: how far past --from to predict, in your time units")
    r.add_argument("--id", help="series runs: which series (value of the id column; default the first)")
    r.add_argument("--out", type=Path, help="task runs: output folder (default: the run folder; for pretrained "
                   "models runs/pretrained/NAME); series runs: output prefix (default RUN/forecast)")
    _add_series_args(r, training=False)
    r.set_defaults(func=cmd_rollout)

    z = sub.add_parser("pretrained", help="list the trained models that ship, with their scores")
    z.add_argument("--json", action="store_true", help="print one JSON object per model")
    z.set_defaults(func=cmd_pretrained)

    m = sub.add_parser("demo", help="the main job: Billiards2D, PC-ODE vs RNN, report, figure, GIF")
    m.add_argument("--out", type=Path, default=Path("runs/demo"))
    m.add_argument("--steps", type=int, default=900, help="training steps per model (default %(default)s: "
                   "under 10 minutes on 2 cores, setup included)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=cmd_demo)

    x = sub.add_parser("reproduce", help="the paper's experiments: every model on every task, with a report")
    x.add_argument("--tasks", nargs="+", default=list(TASKS), help="(default: all six)")
    x.add_argument("--models", nargs="+", default=list(MODELS), help="(default: all three)")
    x.add_argument("--budget", default="small", help="small (this CPU, under an hour) or paper "
                   "(25k steps of batch 256 on 10k trajectories, for a GPU)")
    x.add_argument("--device", default="cpu")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--steps", type=int, default=0, help="override every task's training steps (0: the budget's)")
    x.add_argument("--n", type=int, default=0, help="override every task's trajectories (0: the budget's)")
    x.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    x.set_defaults(func=cmd_reproduce)

    q = sub.add_parser("plan", help="billiards planning: simulator, random and model planners on the same problems")
    q.add_argument("--problems", type=int, default=500, help="planning problems (default %(default)s)")
    q.add_argument("--seed", type=int, default=0, help="seed of the problem set and the candidates")
    q.add_argument("--models", nargs="*", default=list(MODELS),
                   help="KIND (trained here on planning data into OUT/KIND, resumed if there) or "
                        "NAME=RUN_DIR[,RUN_DIR...] (runs trained on planning data; several make an ensemble); "
                        "default: all three kinds")
    q.add_argument("--ensemble", type=int, default=1,
                   help="models per KIND trained here, seeded SEED, SEED+1, ... into OUT/KIND, OUT/KIND-2, ...; "
                        "the planner averages their scores (default %(default)s)")
    q.add_argument("--out", type=Path, default=Path("runs/plan"))
    q.add_argument("--candidates", type=int, default=128, help="candidates per round (default %(default)s)")
    q.add_argument("--rounds", type=int, default=3, help="rounds; 1 is random shooting (default %(default)s)")
    q.add_argument("--late-penalty", type=float, default=pl.PlanConfig.late_penalty,
                   help="added to a candidate's predicted closest approach per frame it takes to get there: "
                        "prefers shots whose outcome the models predict less far ahead (default %(default)s)")
    q.add_argument("--budgets", type=int, nargs="*", default=[8, 32],
                   help="further candidates-per-round values for the budget curve (default %(default)s)")
    q.add_argument("--gifs", type=int, default=3, help="problems to animate (default %(default)s)")
    q.add_argument("--train-steps", type=int, default=800, help="steps for models trained here (default %(default)s)")
    q.add_argument("--train-batch", type=int, default=128, help="batch for models trained here (default %(default)s)")
    q.add_argument("--train-n", type=int, default=5000, help="planning trajectories to train on (default %(default)s)")
    q.add_argument("--train-decay-every", type=int, default=1000,
                   help="steps between learning-rate decays (x0.75) for models trained here (default %(default)s)")
    q.add_argument("--hidden", type=int, default=ModelConfig.hidden,
                   help="width of the encoder, decoder and GRU state of models trained here (default %(default)s)")
    q.add_argument("--train-seed", type=int, default=1, help="seed of the training data (default %(default)s)")
    q.add_argument("--feed-predictions", type=float, default=0.0,
                   help="for a PC-ODE trained here: probability that an update reads its own predicted frame "
                        "(default %(default)s, the authors' teacher forcing)")
    q.add_argument("--epsilon", type=float, default=pl.SKIP_EPSILON,
                   help="for a PC-ODE trained here: the skip rule's squared-error threshold; smaller ends segments "
                        "sooner (default %(default)s, pcnode.plan.SKIP_EPSILON; the authors' is 3e-3)")
    q.set_defaults(func=cmd_plan)
    return p


def _add_series_args(parser, training: bool) -> None:
    """How to read a series file (see `pcnode.series.SeriesSpec`); eval and rollout default to the run's."""
    g = parser.add_argument_group("series files")
    g.add_argument("--format", choices=("csv", "npz", "jena"), help="default: from the file's suffix")
    g.add_argument("--time-column", help="column of times (numbers or dates); default: rows are 0, 1, 2, ...")
    g.add_argument("--time-format", help="strptime format of dates in the time column, e.g. '%%d.%%m.%%Y %%H:%%M:%%S'")
    g.add_argument("--id-column", help="column naming the series each row belongs to")
    g.add_argument("--columns", help="comma-separated state columns (default: all the others)")
    g.add_argument("--aux-columns", help="comma-separated auxiliary columns: read, but not predicted or scored")
    if training:
        g.add_argument("--window", type=int, help="cut series into windows of this many readings (default: whole)")
        g.add_argument("--stride", type=int, help="readings between window starts (default: the window)")
        g.add_argument("--test-fraction", type=float, default=0.1, help="held out (default %(default)s)")
        g.add_argument("--split", default="auto", help="hold out the end of every series (time), the last series "
                       "(series), or auto: series when there are at least 10 (default %(default)s)")
        g.add_argument("--no-normalize", action="store_true", help="train on raw values instead of standardised ones")


def _series_spec(args, base: dict | None = None):
    """A SeriesSpec from the command line, on top of a run's stored one."""
    from .series import SeriesSpec
    d = dict(base or {})
    if args.data is not None:
        d["file"] = str(args.data)
    for name in ("format", "time_column", "time_format", "id_column", "window", "stride", "test_fraction", "split"):
        if getattr(args, name, None) is not None:
            d[name] = getattr(args, name)
    for name in ("columns", "aux_columns"):
        if getattr(args, name, None) is not None:
            d[name] = [c.strip() for c in getattr(args, name).split(",") if c.strip()]
    if getattr(args, "no_normalize", False):
        d["normalize"] = False
    return SeriesSpec.from_dict(d)


def _add_dataclass_args(parser, cls, skip=()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, type=type(f.default), default=None,
                            help=f"(default {f.default})")


def _pick(args, cls, skip=()) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in skip and getattr(args, f.name, None) is not None}


def cmd_data(args) -> None:
    out = args.out or DATA_DIR / f"{args.task}-n{args.n}-seed{args.seed}.npz"
    arrays = task_data(args.task, args.n, args.seed)
    save_npz(out, **arrays)
    print(f"wrote {out}  x{tuple(arrays['x'].shape)}")


def dataset(spec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test tensors described by a run's `data` config."""
    if "file" not in spec and not {"task", "n", "seed"} <= set(spec):
        raise ConfigError(f"the run's data config {spec} names neither a file nor a task with n and seed; "
                          "this run cannot be evaluated from the command line")
    if spec.get("kind") == "series":
        # Standardised windows only; their real times and masks come from pcnode.series.prepare.
        from .series import SeriesSpec, prepare
        train, test, _ = prepare(SeriesSpec.from_dict(spec))
        return train.x, test.x
    if "file" in spec:
        x = load_npz(spec["file"])["x"]
    else:
        x = task_data(spec["task"], spec["n"], spec["seed"], cache_dir=DATA_DIR)["x"]
    return split(x, spec.get("test_fraction", 0.1))


def cmd_train(args) -> None:
    out = args.out or Path("runs") / f"{args.task or args.data.stem}-{args.model}"
    rule = _pick(args, SkipRule)
    if "epsilon" not in rule and "relative_epsilon" not in rule:
        if args.resume and (out / ckpt.CONFIG).is_file():  # a resumed run keeps its threshold
            stored = ckpt.read_json(out / ckpt.CONFIG).get("train", {}).get("rule", {})
            rule.update({k: stored[k] for k in ("epsilon", "relative_epsilon") if stored.get(k) is not None})
        elif args.task in SKIP_EPSILON:
            rule["epsilon"] = SKIP_EPSILON[args.task]
    train_cfg = TrainConfig(**_pick(args, TrainConfig, skip={"rule"}), rule=SkipRule(**rule))
    train_cfg.validate()
    if args.task is None:
        _train_series(args, train_cfg, out)
        return
    spec = {"task": args.task, "n": args.n, "seed": train_cfg.seed, "test_fraction": 0.1}
    train, test = dataset(spec)
    model_cfg = ModelConfig(kind=args.model, state_dim=train.shape[-1], **_pick(args, ModelConfig,
                            skip={"kind", "state_dim", "encoder", "image_size"}))
    model = build_model(model_cfg.validate(), seed=train_cfg.seed)
    train_model(model, train, test, train_cfg, out, spec, resume=args.resume)
    print(f"wrote {out}")


def _train_series(args, train_cfg: TrainConfig, out: Path) -> None:
    from .series import prepare
    stored = ckpt.read_json(out / ckpt.CONFIG).get("data") if args.resume and (out / ckpt.CONFIG).exists() else None
    if stored is not None and "scaling" not in stored:
        raise CheckpointError(f"{out} holds a run trained on a built-in task, not on a data file; "
                              "resume it with --task or choose another --out")
    # A resumed run keeps the scaling it started with, so its data config still matches.
    train, test, spec = prepare(_series_spec(args, {"scaling": stored["scaling"]} if stored else None))
    short = (test.lengths <= train_cfg.rule.n_burn).nonzero()
    if len(short):
        k = short[0, 0].item()
        raise DataError(f"series '{test.ids[k]}' keeps {test.lengths[k].item()} readings in the test split; "
                        f"rollouts need more than the {train_cfg.rule.n_burn} burn-in readings: raise "
                        "--test-fraction, use --split series, or drop short series")
    model_cfg = ModelConfig(kind=args.model, state_dim=train.x.shape[-1], aux_dims=len(spec.aux_columns),
                            **_pick(args, ModelConfig, skip={"kind", "state_dim", "encoder", "image_size", "aux_dims"}))
    model = build_model(model_cfg.validate(), seed=train_cfg.seed)
    train_model(model, train, test, train_cfg, out, dataclasses.asdict(spec), resume=args.resume)
    print(f"wrote {out}  ({len(train.x)} training windows, {len(test.x)} test windows, "
          f"one frame = {spec.scaling['time_scale']:g} time units)")


def train_model(model, train, test, cfg: TrainConfig, out: Path, spec: dict, resume: bool = False,
                label: str | None = None) -> list[dict]:
    """`fit` with a progress bar showing the loss and the training rule's mean dt."""
    bar = None

    def on_step(step, losses):
        nonlocal bar
        if bar is None:  # opened at the first step, so that bad input fails with one line on stderr
            bar = tqdm(total=cfg.steps, initial=step - 1, desc=label or model.config.kind, unit="step",
                       dynamic_ncols=True)
        bar.n = step
        if step % 10 == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{losses.displacement.item():.2e}", dt=f"{losses.mean_dt:.2f}")
        bar.refresh() if step % 10 == 0 else None

    try:
        return fit(model, train, cfg, test=test, run_dir=out, resume=resume, data=spec, on_step=on_step)
    finally:
        if bar is not None:
            bar.close()


def cmd_eval(args) -> None:
    run = pretrained.resolve(args.run)
    model, cfg = load_run(run, device=args.device)
    if cfg["data"].get("kind") == "series":
        if args.protocol != "pcnode":
            raise ConfigError("--protocol authors scores the built-in tasks; series runs are scored in your units")
        return _eval_series(args, model, cfg)
    if args.data is not None:
        raise ConfigError("--data works with runs trained on a series file; this run was trained on a task")
    _, test = dataset(cfg["data"])
    rule = TrainConfig.from_dict({**cfg["train"], "device": "cpu"}).rule
    # The delay keeps the bar off stderr when evaluate refuses its input at once.
    with tqdm(total=len(test), desc="rollouts", unit="traj", disable=args.json, delay=0.5) as bar:
        metrics = evaluate(model, test.to(args.device), n_burn=rule.n_burn, progress=bar.update,
                           protocol=args.protocol, rule=rule)
    metrics = {"model": model.config.kind, "trajectories": len(test), "protocol": args.protocol, **metrics}
    # A shipped model's folder is part of the installed package: its scores are printed, not written there.
    out = None if pretrained.is_pretrained(args.run) else run / f"eval{'-authors' if args.protocol == 'authors' else ''}.json"
    if out is not None:
        ckpt.write_json(out, metrics)
    if args.json:
        print(json.dumps(metrics))
    else:
        for k, v in metrics.items():
            print(f"{k:>12}: {v:.6g}" if isinstance(v, float) else f"{k:>12}: {v}")
        if out is not None:
            print(f"wrote {out}")


def cmd_rollout(args) -> None:
    from .report import draw_rollouts
    run = pretrained.resolve(args.run)
    if (run / ckpt.CONFIG).is_file() and ckpt.read_json(run / ckpt.CONFIG).get("data", {}).get("kind") == "series":
        return _rollout_series(args)
    args.every = 0.25 if args.every is None else args.every
    if not (math.isfinite(args.every) and args.every > 0):
        raise ConfigError(f"--every must be a positive finite number of frames, got {args.every}")
    if args.count < 1:
        raise ConfigError(f"--count must be at least 1, got {args.count}")
    model, cfg = load_run(run)
    _, test = dataset(cfg["data"])
    if not 0 <= args.index < len(test):
        raise ConfigError(f"--index must be in [0, {len(test) - 1}]")
    seqs = test[args.index:args.index + args.count]
    out = args.out or (Path("runs/pretrained") / run.name if pretrained.is_pretrained(args.run) else run)
    out.mkdir(parents=True, exist_ok=True)
    png, gif = draw_rollouts(out, {model.config.kind: model}, seqs, cfg["train"]["rule"]["n_burn"],
                             every=args.every, box=cfg["data"].get("task", "").startswith("billiards"))
    print(f"wrote {png}\nwrote {gif}")


def _eval_series(args, model, cfg) -> None:
    from .series import check_columns, evaluate_series
    spec = _series_spec(args, cfg["data"])
    series = spec.read()
    if args.data is None:
        series = spec.split_series(series)[1]
    check_columns(cfg["data"]["columns"] + cfg["data"]["aux_columns"], series, model.config.state_dim,
                  spec.file)
    with tqdm(desc="rollouts", unit="window", disable=args.json) as bar:
        m = evaluate_series(model, spec, series, cfg["train"]["rule"]["n_burn"], progress=bar.update)
    scale = spec.scaling["time_scale"]
    metrics = {"model": model.config.kind, "data": spec.file, "series": len(series), "mse": m["mse"],
               "mean_dt": m["mean_dt"] * scale, "mean_dt_frames": m["mean_dt"], "updates": m["updates"],
               "rollout_s": m["rollout_s"]}
    out = args.run / ("eval.json" if args.data is None else f"eval-{args.data.stem}.json")
    ckpt.write_json(out, metrics)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{'mse':>14}: {m['mse']:.6g}  (your units squared)")
        print(f"{'mean_dt':>14}: {metrics['mean_dt']:.6g}  (your time units; {m['mean_dt']:.4g} frames)")
        print(f"{'updates':>14}: {m['updates']:.4g}  (per window, after the burn-in)")
        print(f"wrote {out}")


def _rollout_series(args) -> None:
    from .plots import plot_forecast
    from .series import check_columns, forecast, parse_time, scaling_of, write_forecast
    if args.start is None or args.horizon is None:
        raise ConfigError("a series run's rollout needs --from T0 and --horizon H (your time units)")
    model, cfg = load_run(args.run)
    spec = _series_spec(args, cfg["data"])
    series = spec.read()
    check_columns(cfg["data"]["columns"] + cfg["data"]["aux_columns"], series, model.config.state_dim,
                  spec.file)
    if args.id is not None and args.id not in series.ids:
        raise DataError(f"no series '{args.id}' in {spec.file}; its ids are: {', '.join(series.ids[:20])}")
    i = 0 if args.id is None else series.ids.index(args.id)
    try:
        start, _ = parse_time(args.start, spec.time_format if series.dates else None)
    except ValueError as e:
        raise ConfigError(f"--from: {e}") from None
    n_burn = cfg["train"]["rule"]["n_burn"]
    t, x = series.t[i], series.x[i]
    f = forecast(model, scaling_of(spec), t, x, n_burn, start, args.horizon, args.every)
    prefix = args.out or args.run / "forecast"
    csv_path, png_path = Path(f"{prefix}.csv"), Path(f"{prefix}.png")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    write_forecast(csv_path, f, series.columns, series.dates, spec.time_format)

    def axis(v):  # dates as datetimes on the plot
        return (v * 1000).astype("datetime64[ms]") if series.dates else v
    seen = (t >= f.burn_t[0]) & (t <= start + args.horizon)
    plot_forecast(png_path, axis(t[seen]), x[seen], series.columns,
                  {model.config.kind: (axis(f.times), f.values, axis(f.update_times))}, axis(f.burn_t), f.burn_x,
                  title=f"{args.run.name}: series {series.ids[i]} from {args.start}",
                  time_label="time" + (" (UTC)" if series.dates else ""))
    print(f"{len(f.update_times)} updates over {args.horizon:g} time units")
    print(f"wrote {csv_path}\nwrote {png_path}")


def cmd_pretrained(args) -> None:
    for name in pretrained.names():
        p = pretrained.info(name)
        if args.json:
            print(json.dumps({"name": name, **p}))
            continue
        m = p.get("metrics", {})
        extra = "".join(f"  {k} {m[k]:.3g}" for k in ("event_recall", "collisions_plus_1") if k in m)
        print(f"{name:20s} {p.get('steps', '?'):>6} steps  test MSE {m.get('mse', float('nan')):.2e}  "
              f"(authors' protocol {m.get('mse_authors', float('nan')):.2e})  "
              f"updates {m.get('updates', float('nan')):.2f}{extra}")
    if not pretrained.names():
        print("no pretrained models ship with this copy of pcnode")


def cmd_demo(args) -> None:
    from .report import run_demo
    folder = run_demo(args.out, steps=args.steps, seed=args.seed, train_model=train_model)
    print(f"wrote {folder}")


def cmd_reproduce(args) -> None:
    from .reproduce import ReproduceConfig, reproduce
    cfg = ReproduceConfig(tasks=args.tasks, models=args.models, budget=args.budget, device=args.device,
                          seed=args.seed, steps=args.steps, n=args.n)
    folder = reproduce(cfg, args.out, data_dir=DATA_DIR, train=train_model)
    print(f"wrote {folder / 'results.md'}")


def cmd_plan(args) -> None:
    config = pl.PlanConfig(candidates=args.candidates, rounds=args.rounds, late_penalty=args.late_penalty).validate()
    if args.problems < 1 or args.gifs < 0:
        raise ConfigError(f"need --problems >= 1 and --gifs >= 0, got {args.problems} and {args.gifs}")
    if not 0 <= args.feed_predictions <= 1:  # also refuses NaN
        raise ConfigError(f"need 0 <= --feed-predictions <= 1, got {args.feed_predictions}")
    if not args.epsilon >= 0:  # also refuses NaN
        raise ConfigError(f"need --epsilon >= 0, got {args.epsilon}")
    if args.ensemble < 1:
        raise ConfigError(f"need --ensemble >= 1 models per kind, got {args.ensemble}")
    if args.train_decay_every < 1:
        raise ConfigError(f"need --train-decay-every >= 1 steps, got {args.train_decay_every}")
    ModelConfig(state_dim=4, hidden=args.hidden, latent=args.hidden).validate()  # before anything is written
    specs = [_model_spec(s) for s in args.models]
    args.out.mkdir(parents=True, exist_ok=True)
    # name -> [(model, run folder)], one per ensemble member
    models = {name: [_plan_model(name, run, k, args) for k, run in enumerate(runs or [None] * args.ensemble)]
              for name, runs in specs}
    problems = pl.make_problems(args.problems, args.seed)
    predictors = {"simulator": pl.simulator_predictor,
                  **{n: [pl.model_predictor(m) for m, _ in ms] for n, ms in models.items()}, "random": None}
    curve: dict[str, list[dict]] = {name: [] for name in predictors}
    for c in sorted({*args.budgets, args.candidates}):
        cfg = dataclasses.replace(config, candidates=c).validate()
        with tqdm(total=len(problems), desc=f"plan, {cfg.budget} candidates", unit="problem") as bar:
            results = pl.compare(predictors, problems, cfg, seed=args.seed, progress=bar.update)
        for name, res in results.items():
            curve[name].append({"budget": cfg.budget, **res.summary()})
        if c == args.candidates:
            chosen = results
    summary = {name: res.summary() for name, res in chosen.items()}
    ckpt.write_json(args.out / "plan_results.json", {
        "planners": summary, "budget_curve": curve,
        "setup": {"problems": args.problems, "seed": args.seed, "plan": dataclasses.asdict(config),
                  "models": {n: [run for _, run in ms] for n, ms in models.items()},
                  "constants": {k: getattr(pl, k) for k in ("HORIZON", "N_BURN", "SPEED_RANGE", "TARGET_RADIUS",
                                                            "MIN_TARGET_TRAVEL", "SIM_DT", "EVERY")}}})
    pl.plot_budget_curve(args.out / "plan_budget.png", curve)
    times = np.arange(0, pl.HORIZON + 1e-6, 0.4)
    for i in range(min(args.gifs, len(problems))):
        shown = {}
        for name, res in chosen.items():
            model = models[name][0][0] if name in models else None  # an ensemble's first member
            shown[name] = (*pl.trace(problems.cue[i], problems.obj[i], res.actions[i], times, model),
                           bool(res.success[i]))
        pl.plan_gif(args.out / f"plan_{i}.gif", problems.cue[i], problems.obj[i], problems.target[i], times, shown)
    print(f"{'planner':>10} {'models':>6} {'success':>8} {'95% CI':>15} {'s/plan':>8} {'updates/rollout':>16}")
    for name, s in summary.items():
        ups = "-" if s["updates_per_rollout"] is None else f"{s['updates_per_rollout']:.2f}"
        print(f"{name:>10} {s['members']:>6} {s['success']:8.3f} {s['ci95'][0]:7.3f}-{s['ci95'][1]:.3f} "
              f"{s['wall_s_per_plan']:8.4f} {ups:>16}")
    print(f"wrote {args.out / 'plan_results.json'}, {args.out / 'plan_budget.png'} and {args.gifs} GIFs")


def _model_spec(spec: str) -> tuple[str, list[Path]]:
    """`KIND` -> (KIND, []); `NAME=RUN[,RUN...]` -> (NAME, the run folders)."""
    name, eq, runs = spec.partition("=")
    folders = [Path(r) for r in runs.split(",") if r]
    if name in ("simulator", "random") or not name or (eq and not folders):
        raise ConfigError(f"bad --models entry '{spec}': give KIND or NAME=RUN_DIR[,RUN_DIR...], "
                          "NAME not simulator or random")
    return name, folders


def _plan_model(name: str, run: Path | None, member: int, args):
    """A model for the planner: loaded from `run`, or trained here on planning data into
    OUT/NAME (ensemble member 0) or OUT/NAME-K (member K-1), seeded SEED + member."""
    if run is not None:
        model, cfg = load_run(pretrained.resolve(run))
        n_burn = cfg.get("train", {}).get("rule", {}).get("n_burn")
        if model.config.state_dim != 4 or n_burn != pl.N_BURN:
            raise ConfigError(f"{run} is not a billiards model with {pl.N_BURN} burn-in frames; train one with "
                              f"`pcnode plan --models {model.config.kind}`")
        return model, str(run)
    if name not in MODELS:
        raise ConfigError(f"'{name}' is not a model kind ({', '.join(MODELS)}); give a trained run as {name}=RUN_DIR")
    path = DATA_DIR / f"billiards_plan-n{args.train_n}-seed{args.train_seed}.npz"
    if not path.exists():
        save_npz(path, x=pl.plan_data(args.train_n, args.train_seed))
    spec = {"file": str(path), "test_fraction": 0.1}
    train, test = dataset(spec)
    steps = args.train_steps
    cfg = TrainConfig(steps=steps, batch_size=args.train_batch, decay_every=args.train_decay_every,
                      eval_every=max(1, steps // 4), eval_size=256,
                      checkpoint_every=max(1, steps // 4), seed=args.seed + member,
                      rule=SkipRule(n_burn=pl.N_BURN, epsilon=args.epsilon,
                                    feed_predictions=args.feed_predictions))
    model = build_model(ModelConfig(kind=name, state_dim=4, hidden=args.hidden, latent=args.hidden), seed=cfg.seed)
    out = args.out / (name if member == 0 else f"{name}-{member + 1}")
    train_model(model, train, test, cfg, out, spec, resume=(out / ckpt.CHECKPOINT).exists(), label=f"train {out.name}")
    return model.eval(), str(out)


if __name__ == "__main__":
    sys.exit(main())
