"""The demo job and the figures it shares with `pcnode rollout`.

`run_demo` is the main job behind `make demo`: Billiards2D data, a PC-ODE and an
RNN trained on it, both scored on held-out trajectories, and a folder with a
report, a figure and an animation.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .data import split, task_data
from .evaluate import evaluate
from .forcing import SkipRule
from .model import ModelConfig, SequenceModel, build_model
from .plots import plot_curves, plot_paths, rollout_gif
from .rollout import rollout
from .train import TrainConfig


@torch.no_grad()
def draw_rollouts(out: Path, models: dict[str, SequenceModel], seqs: torch.Tensor, n_burn: int,
                  every: float = 0.25, box: bool = True) -> tuple[Path, Path]:
    """Write `paths.png` (truth vs each model, update points marked) and `rollout.gif`
    (the first trajectory, truth beside each model) into `out`.

    Args:
        seqs: (P, T, state_dim) true trajectories; frames before `n_burn` are given.
        every: spacing in frames of the times the rollouts are read at.
    """
    out = Path(out)
    T = seqs.shape[1]
    times = torch.arange(n_burn - 1, T - 1 + 1e-6, every, dtype=seqs.dtype)
    paths, updates, update_times = {}, {}, {}
    for name, model in models.items():
        ro = rollout(model, seqs[:, :n_burn], horizon=T - 1)
        paths[name] = (times.numpy(), ro.at(times).numpy())
        chosen = ro.t[:, n_burn - 1:]
        update_times[name] = chosen[0][torch.isfinite(chosen[0])].numpy()
        if model.jumpy:  # a baseline updates at every frame: circling them all says nothing
            t_up = torch.where(torch.isfinite(chosen), chosen, chosen.new_full((), float(n_burn - 1)))
            updates[name] = ro.at(t_up).numpy()
    truth = seqs.numpy()
    png, gif = out / "paths.png", out / "rollout.gif"
    plot_paths(png, truth, n_burn, paths, updates, box=box,
               title="held-out trajectories: truth (grey), rollouts from 4 burn-in frames; ball 2 dashed")
    rollout_gif(gif, np.arange(T, dtype=np.float32), truth[0], times.numpy(),
                {name: p[1][0] for name, p in paths.items()}, update_times)
    return png, gif


def run_demo(out: Path, steps: int, seed: int, train_model, n: int = 10_000) -> Path:
    """Train a PC-ODE and an RNN on Billiards2D for `steps` steps each and report on both."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = {"task": "billiards2d", "n": n, "seed": seed, "test_fraction": 0.1}
    train, test = split(task_data("billiards2d", n, seed, cache_dir="data")["x"], 0.1)
    cfg = TrainConfig(steps=steps, eval_every=max(1, steps // 6), checkpoint_every=max(1, steps // 3),
                      seed=seed, rule=SkipRule())
    ckpt.write_json(out / "config.json", {"demo": {"steps": steps, "seed": seed, "data": spec},
                                          "train": dataclasses.asdict(cfg)})
    rows, models, curves = [], {}, {}
    for kind in ("pcode", "rnn"):
        model = build_model(ModelConfig(kind=kind, state_dim=train.shape[-1]), seed=seed)
        run = out / kind
        resume = (run / ckpt.CHECKPOINT).exists()
        history = train_model(model, train, test, cfg, run, spec, resume=resume, label=f"train {kind}")
        model.eval()
        metrics = evaluate(model, test, n_burn=cfg.rule.n_burn)
        models[kind], curves[kind] = model, history
        rows.append({"model": kind, **metrics, "train_s": history[-1]["train_s"] if history else float("nan")})
        ckpt.write_json(run / "eval.json", {"model": kind, "trajectories": len(test), **metrics})
    plot_curves(out / "curves.png", curves)
    draw_rollouts(out, models, test[:3], cfg.rule.n_burn)
    hold = (test[:, cfg.rule.n_burn:] - test[:, cfg.rule.n_burn - 1:cfg.rule.n_burn]).pow(2).mean().item()
    ckpt.write_text(out / "report.md", _report(rows, spec, cfg, len(train), len(test), hold))
    return out


def _report(rows: list[dict], spec: dict, cfg: TrainConfig, n_train: int, n_test: int, hold: float) -> str:
    names = {"pcode": "PC-ODE", "rnn": "RNN", "odernn": "ODE-RNN"}
    lines = [
        "# pcnode demo: Billiards2D, PC-ODE vs RNN",
        "",
        f"{n_train} training and {n_test} held-out trajectories of 45 frames (seed {spec['seed']}); "
        f"{cfg.steps} training steps of batch {cfg.batch_size} per model on {cfg.device}. "
        f"Rollouts start from {cfg.rule.n_burn} true frames and are scored at every later frame.",
        "",
        "| model | test MSE | updates / rollout | mean dt (frames) | rollout wall time (s) | training wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {names[r['model']]} | {r['mse']:.3e} | {r['updates']:.2f} | {r['mean_dt']:.2f} | "
                     f"{r['rollout_s']:.3f} | {r['train_s']:.1f} |")
    lines.append(f"| (hold the last burn-in frame) | {hold:.3e} | - | - | - | - |")
    by = {r["model"]: r for r in rows}
    if "pcode" in by and "rnn" in by:
        lines += ["", f"The PC-ODE used {by['rnn']['updates'] / by['pcode']['updates']:.1f}x fewer updates than "
                  f"the RNN at {by['pcode']['mse'] / by['rnn']['mse']:.2f}x its MSE."]
    lines += ["", f"At this budget ({cfg.steps} steps; the authors train 25,000) both models are still far from "
              "the dynamics: the last row is the error of predicting no motion at all. `pcnode demo --steps N` "
              "trains longer and resumes from these runs."]
    lines += ["", "Files: `paths.png` (truth vs rollouts, PC-ODE update points circled), `rollout.gif` "
              "(one rollout; a red frame marks a PC-ODE update), `curves.png` (test MSE and mean dt during "
              "training), `pcode/` and `rnn/` (run folders with config, checkpoint, metrics).", ""]
    return "\n".join(lines)
