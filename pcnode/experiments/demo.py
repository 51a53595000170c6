"""The demo: the main job behind `make demo`.

`run_demo` shows the method twice, in a few minutes on a CPU:

1. Trained models. The Billiards2D PC-ODE and RNN that ship with pcnode
   (`pcnode.pretrained`; the report gives their training steps) are rolled out on held-out
   trajectories: test MSE, model updates per rollout against the collisions the
   simulator resolved (one update after each is the fewest that can follow them), the
   event recall, and a figure where the PC-ODE's updates sit at the true collisions.
2. Training. A PC-ODE learns Lines from scratch: within a few hundred steps it learns
   to cross every held-out line in one jump after the burn-in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from .. import pretrained
from ..checkpoint import load_run
from ..config import TrainConfig
from ..data import DATA_DIR, split, task_data
from ..evaluate import chance_recall, evaluate, event_recall
from ..kinds import build_model
from ..model import MODEL_NAMES, ModelConfig
from ..progress import bar
from ..rollout import rollout
from ..tasks import collisions
from ..train import fit
from .animations import draw_rollouts
from .figures import plot_curves

SHIPPED = {"pcode": "billiards2d-pcode", "rnn": "billiards2d-rnn"}


def run_demo(
    out: Path,
    seed: int = 0,
    lines_steps: int = 300,
    trajectories: int | None = None,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Write the demo into `out`: report.md, paths.png, rollout.gif, lines.png, curves.png, lines/.

    Args:
        seed: seed of the Lines training.
        lines_steps: its training steps. A Lines run already in OUT/lines (an earlier
            demo's) is reused, or resumed if it trained for fewer steps.
        trajectories: held-out Billiards2D trajectories to score (default: the whole split).
        progress: bars over the scoring, the animation and the training (`pcnode.progress`).
        note: called with a line saying what the demo reuses from an earlier one.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = out / "lines"
    done = int(ckpt.load_tensors(run / ckpt.CHECKPOINT)[1]["step"]) if (run / ckpt.CHECKPOINT).exists() else 0
    if note is not None and done >= lines_steps:
        note(
            f"reusing the Lines PC-ODE that an earlier demo trained in {run} ({done} steps); "
            "delete that folder to train it again"
        )
    elif note is not None and done:
        note(f"resuming the Lines PC-ODE in {run} from step {done} of {lines_steps}")
    rows, counts = _shipped_billiards(out, trajectories, progress)
    lines = _learn_lines(run, seed, lines_steps, progress, done)
    ckpt.write_json(
        out / "config.json",
        {"demo": {"seed": seed, "lines_steps": lines_steps, "trajectories": trajectories, "shipped": SHIPPED}},
    )
    ckpt.write_text(out / "report.md", _report(rows, counts, lines))
    return out


def _shipped_billiards(out: Path, trajectories: int | None, progress: bool) -> tuple[list[dict], dict]:
    """Score the shipped Billiards2D models on their held-out split and draw three trajectories."""
    models, configs = {}, {}
    for kind, name in SHIPPED.items():
        models[kind], configs[kind] = load_run(pretrained.folder(name))
    data = configs["pcode"]["data"]  # the two trained on the same data
    n_burn = models["pcode"].rule.n_burn
    _, test = split(task_data(data["task"], data["n"], data["seed"], cache_dir=DATA_DIR)["x"], data["test_fraction"])
    events = torch.as_tensor(collisions(data["task"], data["n"], data["seed"]))[-len(test) :]
    test, events = test[:trajectories], events[:trajectories]
    rows = []
    with bar(
        progress, total=2 * len(models) * len(test), desc="score the shipped Billiards2D models", unit="traj"
    ) as shown:
        for kind, model in models.items():
            m = evaluate(model, test, progress=shown.update)
            ro = rollout(model, test[:, :n_burn], horizon=test.shape[1] - 1)
            shown.update(len(test))
            recall = {"event_recall": event_recall(ro, events), "chance_recall": chance_recall(ro, events)}
            rows.append({"model": kind, **m, **recall})
    hold = (test[:, n_burn:] - test[:, n_burn - 1 : n_burn]).pow(2).mean().item()
    rows.append({"model": None, "mse": hold})
    counts = {"collisions_plus_1": (events[:, n_burn:].sum(1) + 1).double().mean().item(), "trajectories": len(test)}
    draw_rollouts(out, models, test[:3], n_burn, events=events[:3].numpy(), progress=progress and "draw rollout.gif")
    return rows, counts


def _learn_lines(run: Path, seed: int, steps: int, progress: bool, done: int) -> dict:
    """Train a PC-ODE on Lines from scratch into `run`, or go on from the `done` steps of an
    earlier demo's; draw its rollouts and curves beside it."""
    train, test = split(task_data("lines", 2000, seed, cache_dir=DATA_DIR)["x"])
    cfg = TrainConfig(steps=steps, eval_every=max(1, steps // 10), eval_size=200, checkpoint_every=steps, seed=seed)
    model = build_model(ModelConfig(kind="pcode", state_dim=2), seed=seed)
    spec = {"task": "lines", "n": 2000, "seed": seed, "test_fraction": 0.1}
    out = run.parent
    history = fit(
        model,
        train,
        cfg,
        test=test,
        run_dir=run,
        resume=done > 0,
        data=spec,
        progress=progress and "train a PC-ODE on Lines",
    )
    model.eval()
    plot_curves(out / "curves.png", {"pcode": history}, title="the Lines PC-ODE during training")
    draw_rollouts(out, {"pcode": model}, test[:3], model.rule.n_burn, box=False, name="lines", gif_name=None)
    m = evaluate(model, test, progress=progress and "score the Lines PC-ODE")
    return {
        "steps": history[-1]["step"],
        "first": history[0],
        "last": history[-1],
        "mse": m["mse"],
        "updates": m["updates"],
        "train_s": history[-1]["train_s"],
        "frames": test.shape[1],
        "reused": done >= steps,
    }


def _trained(info: dict) -> str:
    """How long a shipped model trained, and which step's weights ship if not the last."""
    steps, trained = info["steps"], info.get("trained_steps", info["steps"])
    return f"{trained:,} steps" + (
        f" (the weights of step {steps:,}, picked on a validation split)" if steps != trained else ""
    )


def _report(rows: list[dict], counts: dict, lines: dict) -> str:
    names = SHIPPED
    info = {k: pretrained.info(v) for k, v in names.items()}
    out = [
        "# pcnode demo",
        "",
        "## 1. Trained models on Billiards2D",
        "",
        f"The shipped models ({', '.join(f'`pretrained:{v}`' for v in names.values())}; "
        + ", ".join(f"{MODEL_NAMES[k]} {_trained(info[k])}" for k in names)
        + " of batch 256) rolled out from 4 true frames on "
        f"{counts['trajectories']:,} held-out trajectories of 45 frames, scored at every later frame. "
        f"A trajectory holds {counts['collisions_plus_1'] - 1:.2f} collisions after the burn-in on average: "
        f"a model that updates once after each needs at least {counts['collisions_plus_1']:.2f} updates.",
        "",
        "| model | test MSE | updates / rollout | collisions with an update within a frame | rollout wall time (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["model"] is None:
            out.append(f"| (hold the last burn-in frame) | {r['mse']:.3e} | - | - | - |")
        else:
            out.append(
                f"| {MODEL_NAMES[r['model']]} | {r['mse']:.3e} | {r['updates']:.2f} | "
                f"{r['event_recall']:.0%} | {r['rollout_s']:.3f} |"
            )
    by = {r["model"]: r for r in rows}
    out += [
        "",
        f"The PC-ODE used {by['rnn']['updates'] / by['pcode']['updates']:.1f}x fewer updates than the RNN "
        f"at {by['pcode']['mse'] / by['rnn']['mse']:.2f}x its MSE, and rolled out "
        f"{by['rnn']['rollout_s'] / by['pcode']['rollout_s']:.1f}x faster; "
        f"{by['pcode']['event_recall']:.0%} of the collisions had one of its updates within a frame "
        f"(as many updates at random times would catch {by['pcode']['chance_recall']:.0%}). In "
        "`paths.png` its updates are circled and the true collisions crossed.",
        "",
        "## 2. A PC-ODE learning Lines from scratch",
        "",
        f"{lines['steps']} steps of batch 256 ({lines['train_s']:.0f} s"
        + (", by an earlier demo whose run this one reused" if lines["reused"] else "")
        + "): the mean span between updates in "
        f"teacher forcing went from {lines['first']['train_mean_dt_frames']:.1f} frames (step "
        f"{lines['first']['step']}) to {lines['last']['train_mean_dt_frames']:.1f} (step {lines['last']['step']}). "
        f"On held-out lines the rollout makes {lines['updates']:.2f} updates after the burn-in "
        f"(1 is a single jump across the remaining {lines['frames'] - 4} frames) at test MSE "
        f"{lines['mse']:.2e}.",
        "",
        "## Files",
        "",
        "- `paths.png`: three held-out Billiards2D trajectories: truth (grey), the PC-ODE and the RNN read "
        "every quarter frame (ball 2 dashed), the PC-ODE's updates circled, the true collisions crossed.",
        "- `rollout.gif`: the first of them, truth beside each model; for half a second after each PC-ODE "
        'update its panel is framed in red and reads "update".',
        "- `lines.png`, `curves.png`: the Lines PC-ODE's rollouts and its test MSE and mean dt during training.",
        "- `lines/`: its run folder (config, checkpoint, metrics), usable with `pcnode eval` and `pcnode rollout`.",
        "",
    ]
    return "\n".join(out)
