"""The skip threshold, absolute against relative to the data, at a CPU budget.

For each task a PC-ODE is trained with today's absolute threshold for that task and
with each relative threshold (`TrainConfig.relative_epsilon`: a multiple of the training
data's mean squared change per frame), and scored on held-out trajectories: test MSE,
model updates per rollout and mean dt; on billiards also the collisions after the
burn-in + 1 (the fewest updates that can follow every collision) and the event recall
(`pcnode.evaluate.event_recall`) and the same share for teacher forcing on the test data
(`pcnode.forcing.forced_update_times`: where the training rule itself ends segments),
with the rollout's chance level (`pcnode.evaluate.chance_recall`: as many updates at
random times).
`billiards2d-data` is Billiards2D written to an NPZ and trained through `pcnode.series`
as a user's file is (standardised columns), so its absolute 3e-3 is about 18 times
stricter than on the raw coordinates.

Budgets: Lines 300 steps, Circles and Billiards2D 800 steps of batch 256 on 4,000
trajectories (as benchmarks/quality.py), Billiards1D the same; PixelBilliards2D 800 steps of batch 64 on
1,500 (as the README's pixel-threshold table), with an RNN beside it for the target.

`--events R ...` adds PC-ODEs trained with the event option (`TrainConfig.events`, see
docs/training.md) at the default skip threshold.

    python benchmarks/skip_threshold.py [--tasks ...] [--relative 0.5 1 2.5] [--events 0.25] [--seeds 0 1 2]
        [--settings tuned relative2.5] [--out runs/skip_threshold]
"""
import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from pcnode import ModelConfig, TrainConfig, build_model, evaluate, fit, load_run, rollout
from pcnode.data import split, task_data
from pcnode.evaluate import chance_recall, event_recall, updates_near
from pcnode.forcing import forced_update_times
from pcnode.series import SeriesSpec, evaluate_series, from_arrays, prepare, to_npz
from pcnode.tasks import collisions

TUNED = {"lines": 3e-3, "circles": 3e-3, "billiards1d": 3e-3, "billiards2d": 3e-3, "pixel_billiards2d": 6e-2,
         "billiards2d-data": 3e-3}
BUDGET = {  # task: (trajectories, steps, batch, decay_every)
    "lines": (4000, 300, 256, 1000), "circles": (4000, 800, 256, 1000), "billiards1d": (4000, 800, 256, 1000),
    "billiards2d": (4000, 800, 256, 1000),
    "billiards2d-data": (4000, 800, 256, 1000), "pixel_billiards2d": (1500, 800, 64, 100),
}


def train_task(task, kind, threshold, out, n, steps, batch, decay, seed=0):
    """Train (or reload) one model; return (model, test tensor or None, series spec or None).
    The data is the same for every `seed`; the seed draws the initial weights, batches and skips."""
    cfg = TrainConfig(steps=steps, batch_size=batch, decay_every=decay, eval_every=steps, checkpoint_every=steps,
                      eval_size=256, seed=seed, **threshold)
    if task == "billiards2d-data":
        npz = out.parent / "billiards2d-n4000.npz"
        if not npz.exists():
            npz.parent.mkdir(parents=True, exist_ok=True)
            to_npz(from_arrays(list(task_data("billiards2d", n, 0)["x"].astype(np.float64))), npz)
        train, test, spec = prepare(SeriesSpec(file=str(npz), split="series"))
        if not (out / "checkpoint.safetensors").exists():
            model = build_model(ModelConfig(kind=kind, state_dim=4), seed=seed)
            fit(model, train, cfg, test=test, run_dir=out, data=dataclasses.asdict(spec))
        return load_run(out)[0], None, spec
    train, test = split(task_data(task, n, 0, cache_dir="data")["x"])
    if not (out / "checkpoint.safetensors").exists():
        model = build_model(ModelConfig(kind=kind, state_dim=train.shape[-1]), seed=seed)
        fit(model, train, cfg, test=test, run_dir=out, data={"task": task, "n": n, "seed": 0})
    return load_run(out)[0], test, None


def score(task, model, test, spec, n, run):
    if spec is not None:
        series = spec.split_series(spec.read())[1]
        m = evaluate_series(model, spec, series)
        test = torch.as_tensor(np.stack(series.x), dtype=torch.float32)  # the same trajectories, raw units
    else:
        m = evaluate(model, test)
    train = json.loads((run / "config.json").read_text())["train"]
    form = {k: v for k, v in train.items() if k in ("epsilon", "relative_epsilon", "events")}
    row = {"mse": m["mse"], "updates": m["updates"], "mean_dt": m["mean_dt"], "epsilon": model.rule.threshold,
           "form": form}
    if "billiards" in task:
        events = torch.as_tensor(collisions(task.removesuffix("-data"), n, 0))[-len(test):]
        row["collisions_plus_1"] = (events[:, 4:].sum(1) + 1).double().mean().item()
        if spec is None:
            ro = rollout(model, test[:, :4], horizon=test.shape[1] - 1)
            row["event_recall"] = event_recall(ro, events)
            row["chance_recall"] = chance_recall(ro, events)
            row["forcing_recall"] = updates_near(forced_update_times(model, test), events, model.rule.n_burn)
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", nargs="+", default=list(TUNED))
    p.add_argument("--relative", nargs="+", type=float, default=[0.5, 1.0, 2.5])
    p.add_argument("--events", nargs="*", type=float, default=[],
                   help="also train with the event option at these line thresholds (with the default skip threshold)")
    p.add_argument("--out", type=Path, default=Path("runs/skip_threshold"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--settings", nargs="+", help="only these settings (tuned, relativeF, rnn)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for task in args.tasks:
        n, steps, batch, decay = BUDGET[task]
        settings = [("tuned", "pcode", {"epsilon": TUNED[task]})]
        settings += [(f"relative{f:g}", "pcode", {"relative_epsilon": f}) for f in args.relative]
        settings += [(f"events{f:g}", "pcode", {"events": f}) for f in args.events]
        if task == "pixel_billiards2d":
            settings.append(("rnn", "rnn", {}))
        for seed in args.seeds:
            for name, kind, rule in settings:
                if args.settings and name not in args.settings:
                    continue
                run = args.out / (f"{task}-{name}" + (f"-s{seed}" if seed else ""))
                model, test, spec = train_task(task, kind, rule, run, n, steps, batch, decay, seed)
                row = {"task": task, "setting": name, "seed": seed, **score(task, model, test, spec, n, run)}
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
