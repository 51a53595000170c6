"""The PC-ODE against the peers a user might pick instead, at the small budget, in one run.

Trains (or reuses) every model on Lines, Circles and Billiards2D with `pcnode reproduce`
at its small budget, the paper's three beside CfC (ncps) and the ODE-RNN with torchode's
per-trajectory adaptive steps, plain and with its field regularised (Finlay et al. 2020);
then rolls each trained model out on 1,024 test trajectories (the test set's burn-ins,
repeated) and prints one JSON line per (task, model), a markdown table, and the
issue's targets with what each reached:

- the PC-ODE spends fewer updates per rollout than every peer spends updates or, for
  the ODE-RNNs, accepted solver steps (by at least 4x on Billiards2D);
- its test MSE is at most 1.2x the best peer's;
- its rollouts of 1,024 trajectories are at least 2x faster than every peer's.

    python benchmarks/peers.py [--out runs/peers] [--tasks lines circles billiards2d]
                               [--models pcode rnn odernn cfc odernn-adaptive odernn-kinetic]
                               [--threads 1] [--repeats 3] [--train-only]

The training times are the runs' own, taken while whatever else ran on the machine;
`benchmarks/train_speed.py --models pcode rnn odernn cfc odernn-adaptive odernn-kinetic`
times the training steps of every model in turn, in one sitting.

Trainings resume where a run folder stopped, so two processes can train disjoint
`--models` into the same `--out` (with `--train-only`), and a last call with every model
measures and reports.
"""
import argparse
import csv
import json
import time
from pathlib import Path

import torch

from pcnode import load_run, rollout
from pcnode.data import DATA_DIR, split, task_data
from pcnode.experiments.reproduce import PEERS, SMALL, VARIANTS, ReproduceConfig, reproduce

TASKS = ("lines", "circles", "billiards2d")


def cost(row: dict) -> float:
    """What a rollout spends: updates, or accepted solver steps where a solver reports them."""
    steps = float(row["solver_steps"])
    return max(float(row["updates"]), steps) if steps == steps else float(row["updates"])


def rollout_seconds(run: Path, x: torch.Tensor, repeats: int) -> float:
    """Best wall time over `repeats` of rolling 1,024 trajectories out to the last frame."""
    model, _ = load_run(run)
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        rollout(model, x[:, :4], horizon=x.shape[1] - 1)
        best = min(best, time.perf_counter() - tick)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("runs/peers"))
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--models", nargs="+", default=["pcode", "rnn", "odernn", *PEERS])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-only", action="store_true", help="train and report, skip the throughput runs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    reproduce(ReproduceConfig(tasks=args.tasks, models=args.models), args.out)
    if args.train_only:
        return
    rows = [r for r in csv.DictReader(open(args.out / "results.csv"))]
    for task in args.tasks:
        _, test = split(task_data(task, SMALL[task].n, seed=0, cache_dir=DATA_DIR)["x"], 0.1)
        x = test.repeat((1024 + len(test) - 1) // len(test), 1, 1)[:1024]
        for r in rows:
            if r["task"] == task:
                r["rollout_1024_s"] = rollout_seconds(args.out / "runs" / f"{task}-{r['model']}", x, args.repeats)
                print(json.dumps({k: r[k] for k in ("task", "model", "mse", "updates", "solver_steps", "nfe",
                                                    "train_s", "rollout_1024_s")}), flush=True)
    print("\n| task | model | test MSE | updates / rollout | solver steps / rollout | field evaluations / rollout | "
          "training s (all steps) | rollout of 1,024 s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        steps, nfe = float(r["solver_steps"]), float(r["nfe"])
        print(f"| {r['task']} | {VARIANTS[r['model']].label} | {float(r['mse']):.2e} | {float(r['updates']):.2f} | "
              f"{'-' if steps != steps else f'{steps:.1f}'} | {'-' if nfe != nfe else f'{nfe:.0f}'} | "
              f"{float(r['train_s']):.0f} | {r['rollout_1024_s']:.3f} |")
    print("\nTargets (PC-ODE against each peer: CfC and the torchode ODE-RNNs)")
    for task in args.tasks:
        by = {r["model"]: r for r in rows if r["task"] == task}
        if "pcode" not in by:
            continue
        pc = by["pcode"]
        peers = [by[m] for m in PEERS if m in by]
        if not peers:
            continue
        fewer = min(cost(q) for q in peers) / cost(pc)
        need = 4.0 if task == "billiards2d" else 1.0
        best = min(peers, key=lambda q: float(q["mse"]))
        mse_ratio = float(pc["mse"]) / float(best["mse"])
        faster = min(q["rollout_1024_s"] for q in peers) / pc["rollout_1024_s"]
        print(f"- {task}: fewest peer updates or steps / PC-ODE updates = {fewer:.2f}x (target >= {need:g}x: "
              f"{'met' if fewer >= need else 'MISSED'}); PC-ODE MSE / best peer's ({best['model']}) = "
              f"{mse_ratio:.2f}x (target <= 1.2x: {'met' if mse_ratio <= 1.2 else 'MISSED'}); fastest peer's "
              f"rollout time / PC-ODE's = {faster:.2f}x (target >= 2x: {'met' if faster >= 2 else 'MISSED'})")


if __name__ == "__main__":
    main()
