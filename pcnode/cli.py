"""The `pcnode` command line: data, train, eval, rollout, demo.

The library raises; this layer shows progress, writes results and turns every
`PCNodeError` into one line on stderr with exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .data import load_npz, save_npz, split, task_data
from .errors import ConfigError, DataError, PCNodeError
from .evaluate import evaluate
from .model import MODELS, ModelConfig, SkipRule, build_model
from .train import TrainConfig, fit, load_run

DATA_DIR = Path("data")
# Measured on a 2-core machine (benchmarks/train_speed.py): one thread is fastest for
# these small recurrent steps; a second thread only adds synchronisation.
DEFAULT_THREADS = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
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
    src.add_argument("--data", type=Path, help=".npz file with x of shape (sequences, frames, dims)")
    t.add_argument("--model", default="pcode", help=f"one of {', '.join(MODELS)} (default %(default)s)")
    t.add_argument("--out", type=Path, help="run folder (default runs/TASK-MODEL)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--n", type=int, default=10_000, help="trajectories to generate for --task")
    _add_dataclass_args(t, TrainConfig, skip={"rule"})
    _add_dataclass_args(t, SkipRule)
    _add_dataclass_args(t, ModelConfig, skip={"kind", "state_dim", "encoder", "image_size"})
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="roll out a trained run on its test trajectories")
    e.add_argument("run", type=Path)
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("rollout", help="plot and animate a trained run's rollouts")
    r.add_argument("run", type=Path)
    r.add_argument("--index", type=int, default=0, help="first test trajectory to draw")
    r.add_argument("--count", type=int, default=3, help="trajectories in the figure")
    r.add_argument("--every", type=float, default=0.25, help="query spacing in frames (default %(default)s)")
    r.set_defaults(func=cmd_rollout)

    m = sub.add_parser("demo", help="the main job: Billiards2D, PC-ODE vs RNN, report, figure, GIF")
    m.add_argument("--out", type=Path, default=Path("runs/demo"))
    m.add_argument("--steps", type=int, default=1500)
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=cmd_demo)
    return p


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
    if "file" in spec:
        x = load_npz(spec["file"])["x"]
    else:
        x = task_data(spec["task"], spec["n"], spec["seed"], cache_dir=DATA_DIR)["x"]
    return split(x, spec.get("test_fraction", 0.1))


def cmd_train(args) -> None:
    train_cfg = TrainConfig(**_pick(args, TrainConfig, skip={"rule"}), rule=SkipRule(**_pick(args, SkipRule)))
    train_cfg.validate()
    if args.task is not None:
        spec = {"task": args.task, "n": args.n, "seed": train_cfg.seed, "test_fraction": 0.1}
        name = args.task
    else:
        spec = {"file": str(args.data), "test_fraction": 0.1}
        name = args.data.stem
    train, test = dataset(spec)
    model_cfg = ModelConfig(kind=args.model, state_dim=train.shape[-1], **_pick(args, ModelConfig,
                            skip={"kind", "state_dim", "encoder", "image_size"}))
    model = build_model(model_cfg.validate())
    out = args.out or Path("runs") / f"{name}-{args.model}"
    train_model(model, train, test, train_cfg, out, spec, resume=args.resume)
    print(f"wrote {out}")


def train_model(model, train, test, cfg: TrainConfig, out: Path, spec: dict, resume: bool = False,
                label: str | None = None) -> list[dict]:
    """`fit` with a progress bar showing the loss and the training rule's mean dt."""
    bar = tqdm(total=cfg.steps, desc=label or model.config.kind, unit="step", dynamic_ncols=True)

    def on_step(step, losses):
        bar.n = step
        if step % 10 == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{losses.displacement.item():.2e}", dt=f"{losses.mean_dt:.2f}")
        bar.refresh() if step % 10 == 0 else None

    try:
        return fit(model, train, cfg, test=test, run_dir=out, resume=resume, data=spec, on_step=on_step)
    finally:
        bar.close()


def cmd_eval(args) -> None:
    model, cfg = load_run(args.run, device=args.device)
    _, test = dataset(cfg["data"])
    n_burn = cfg["train"]["rule"]["n_burn"]
    with tqdm(total=len(test), desc="rollouts", unit="traj", disable=args.json) as bar:
        metrics = evaluate(model, test.to(args.device), n_burn=n_burn, progress=bar.update)
    metrics = {"model": model.config.kind, "trajectories": len(test), **metrics}
    ckpt.write_json(args.run / "eval.json", metrics)
    if args.json:
        print(json.dumps(metrics))
    else:
        for k, v in metrics.items():
            print(f"{k:>12}: {v:.6g}" if isinstance(v, float) else f"{k:>12}: {v}")
        print(f"wrote {args.run / 'eval.json'}")


def cmd_rollout(args) -> None:
    from .report import draw_rollouts
    model, cfg = load_run(args.run)
    _, test = dataset(cfg["data"])
    if not 0 <= args.index < len(test):
        raise ConfigError(f"--index must be in [0, {len(test) - 1}]")
    if args.every <= 0:
        raise ConfigError(f"--every must be positive, got {args.every}")
    seqs = test[args.index:args.index + args.count]
    png, gif = draw_rollouts(args.run, {model.config.kind: model}, seqs, cfg["train"]["rule"]["n_burn"],
                             every=args.every, box=cfg["data"].get("task", "").startswith("billiards"))
    print(f"wrote {png}\nwrote {gif}")


def cmd_demo(args) -> None:
    from .report import run_demo
    folder = run_demo(args.out, steps=args.steps, seed=args.seed, train_model=train_model)
    print(f"wrote {folder}")


if __name__ == "__main__":
    sys.exit(main())
