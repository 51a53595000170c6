"""The `pcnode` command line: data, train, eval, rollout, stream, export, pretrained, demo, reproduce, plan.

This layer only parses (its flags are `pcnode.flags`): each subcommand turns its
arguments into settings and calls one function of `pcnode.experiments`, then prints
what it returns. Every
`PCNodeError` becomes one line on stderr with exit code 2, its argument names
(`name`) spelled as the flags that set them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

from . import pretrained
from .config import TrainConfig, load_config
from .errors import ConfigError, PCNodeError
from .experiments.demo import run_demo
from .experiments.reproduce import ReproduceConfig, reproduce
from .experiments.runs import draw_run, evaluate_run, forecast_run, make_data, train_run
from .experiments.stream import export_run, stream_run
from .flags import MODEL_SET_BY_DATA, RULE_FLAGS, as_flags, build_parser
from .model import ModelConfig
from .planning import command as plan_command
from .segments import SegmentRule
from .series import SeriesSpec


def idle_cores(limit: int = 2) -> int:
    """The default thread count: the cores this process may run on less those other
    processes keep busy (`busy_cores`, rounded), between 1 and `limit`.

    A thread without a core of its own stalls every small per-frame operation of the
    other, so one thread too many costs far more than one too few (docs/performance.md,
    "CPU threads").
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(limit, cores, round(cores - busy_cores())))


def busy_cores(source: str = "/proc/loadavg") -> float:
    """Cores other processes keep busy: the larger of the 1-minute load average and the
    number of processes running now besides this one (Linux's /proc/loadavg; the load
    average lags a process that started less than a minute ago). Elsewhere the load average."""
    try:
        fields = Path(source).read_text().split()
        return max(float(fields[0]), int(fields[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.threads is None:
            args.threads = idle_cores()
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
        return COMMANDS[args.command](args) or 0
    except PCNodeError as e:
        print(f"pcnode: error: {as_flags(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pcnode: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (`pcnode pretrained | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail too
        return 0


def _pick(args, cls, skip=()) -> dict:
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if f.name not in skip and getattr(args, f.name, None) is not None
    }


def _series_overrides(args) -> dict:
    """What the command line says about reading a series file (see `pcnode.series.SeriesSpec`)."""
    d = {}
    if args.data is not None:
        d["file"] = str(args.data)
    for name in ("format", "time_column", "time_format", "id_column", "window", "stride", "test_fraction", "split"):
        if getattr(args, name, None) is not None:
            d[name] = getattr(args, name)
    if d.get("window") == "whole":
        d["window"] = None
    for name in ("columns", "input_columns", "aux_columns"):
        if getattr(args, name, None) is not None:
            d[name] = [c.strip() for c in getattr(args, name).split(",") if c.strip()]
    if getattr(args, "no_normalize", False):
        d["normalize"] = False
    return d


def cmd_data(args) -> None:
    out, shape = make_data(args.task, args.n, args.seed, args.out)
    print(f"wrote {out}  x{tuple(shape)}")


def cmd_train(args) -> None:
    out = args.out or Path("runs") / f"{args.task or args.data.stem}-{args.model}"
    config = TrainConfig(**_pick(args, TrainConfig)).validate()
    rule = SegmentRule(**{k: v for k, v in _pick(args, SegmentRule).items() if k in RULE_FLAGS})
    series = None if args.data is None else load_config(SeriesSpec, _series_overrides(args), "data")
    about = train_run(
        args.model,
        out,
        config,
        rule,
        _pick(args, ModelConfig, skip=MODEL_SET_BY_DATA),
        task=args.task,
        n=args.n,
        series=series,
        resume=args.resume,
    )
    print(f"wrote {out}  ({about})")


def cmd_eval(args) -> None:
    metrics, written = evaluate_run(
        args.run, protocol=args.protocol, device=args.device, series=_series_overrides(args), progress=not args.json
    )
    if args.json:
        print(json.dumps(metrics))
    elif "mean_dt_frames" in metrics:  # a series run: your units
        print(f"{'mse':>14}: {metrics['mse']:.6g}  (your units squared)")
        print(f"{'mean_dt':>14}: {metrics['mean_dt']:.6g}  (your time units; {metrics['mean_dt_frames']:.4g} frames)")
        print(f"{'updates':>14}: {metrics['updates']:.4g}  (per window, after the burn-in)")
    else:
        for k, v in metrics.items():
            print(f"{k:>12}: {v:.6g}" if isinstance(v, float) else f"{k:>12}: {v}")
    if written is not None and not args.json:
        print(f"wrote {written}")


def cmd_rollout(args) -> None:
    if args.horizon is not None:
        raise ConfigError(
            f"--horizon is now --ahead: how far past --from to forecast (--ahead {args.horizon}); "
            "a horizon is the time a rollout reaches, as in pcnode.rollout"
        )
    if args.start is not None or args.ahead is not None:
        if args.start is None or args.ahead is None:
            raise ConfigError(
                "--from T0 and --ahead H go together: a run trained on a series forecasts from T0 "
                "for H of its time units (a task run takes neither)"
            )
        paths, f = forecast_run(
            args.run,
            args.start,
            args.ahead,
            args.every,
            _series_overrides(args),
            args.id,
            args.out,
            extrapolate=args.extrapolate,
        )
        print(
            f"{len(f.update_times)} updates over the {f.times[-1] - f.burn_t[-1]:g} time units from the last "
            "burn-in reading to the forecast's end"
        )
        if f.inputs_held_from is not None:
            print(
                f"no known inputs after {args.start}: the forecast holds their last reading (columns marked "
                "'(held)'); give the future inputs as readings in --data to use them"
            )
        elif f.inputs is not None:
            print("known inputs: read from the series at every update (columns marked '(given)')")
    else:
        paths = draw_run(args.run, args.out, args.index, args.count, 0.25 if args.every is None else args.every)
    print("\n".join(f"wrote {p}" for p in paths))


def cmd_stream(args) -> None:
    reading = {k: v for k, v in _series_overrides(args).items() if k != "file"}  # the file is --data
    summary, paths = stream_run(args.run, args.data, args.out, args.count, reading or None)
    print(
        f"{summary['readings']} readings in {summary['streams']} streams: {summary['updates']} updates "
        f"({summary['update_fraction']:.1%}; {summary['update_fraction_after_burn_in']:.1%} after the "
        f"{summary['n_burn']}-reading burn-in), mean squared error of the prediction made before each reading "
        f"{summary['mean_error']:.4g}"
    )
    print("\n".join(f"wrote {p}" for p in paths))


def cmd_export(args) -> None:
    print(
        f"wrote {export_run(args.run, args.out, args.batch)} (update.onnx, read.onnx, update.pt2, read.pt2, model.json)"
    )


def cmd_pretrained(args) -> None:
    if args.json:
        for name in pretrained.names():
            print(json.dumps({"name": name, **pretrained.info(name)}))
        return
    if not pretrained.names():
        print("no pretrained models ship with this copy of pcnode")
        return
    width = max(20, *map(len, pretrained.names()))
    print(
        f"{'name':{width}s} {'steps':>6} {'test MSE':>9} {'authors':>9} {'updates':>8} {'event recall':>13} "
        f"{'collisions + 1':>15}"
    )
    for name in pretrained.names():
        p = pretrained.info(name)
        m = p.get("metrics", {})
        extra = "".join(
            f" {m[k]:>{w}.2f}" if k in m else f" {'-':>{w}}"
            for k, w in (("event_recall", 13), ("collisions_plus_1", 15))
        )
        print(
            f"{name:{width}s} {p.get('steps', '?'):>6} {m.get('mse', float('nan')):9.2e} "
            f"{m.get('mse_authors', float('nan')):9.2e} {m.get('updates', float('nan')):8.2f}{extra}"
        )
    print(
        "test MSE: rollouts from 4 frames scored at every later frame; authors: as the authors' code scores "
        "(`pcnode eval pretrained:NAME --protocol authors`)"
    )


def cmd_demo(args) -> None:
    out = run_demo(
        args.out,
        seed=args.seed,
        lines_steps=args.lines_steps,
        trajectories=args.trajectories,
        note=lambda line: print(line, flush=True),
    )
    print(f"wrote {out}")


def cmd_reproduce(args) -> None:
    cfg = ReproduceConfig(
        tasks=args.tasks,
        models=args.models,
        budget=args.budget,
        device=args.device,
        seed=args.seed,
        steps=args.steps,
        n=args.n,
    )
    print(f"wrote {reproduce(cfg, args.out) / 'results.md'}")


# What each subcommand runs.
COMMANDS = {
    "data": cmd_data,
    "train": cmd_train,
    "eval": cmd_eval,
    "rollout": cmd_rollout,
    "stream": cmd_stream,
    "export": cmd_export,
    "pretrained": cmd_pretrained,
    "demo": cmd_demo,
    "reproduce": cmd_reproduce,
    "plan": plan_command.run,
}


if __name__ == "__main__":
    sys.exit(main())
