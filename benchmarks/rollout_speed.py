"""Rollout throughput: 1,024 Billiards2D trajectories, 4 burn-in frames to frame 44.

Prints one JSON line per model: {"model", "rollouts_per_s", "read_41_frames_s", "updates",
"mean_dt", "nfe"}. A rollout runs every trajectory to the horizon (what planning
needs); reading it back densely at the 41 frame times is timed apart.
A PC-ODE's speed comes from its learned jumps, so every model is read from a trained
run folder (benchmarks/quality.py writes runs/quality/billiards2d-MODEL); the ODE-RNN
is timed with the adaptive dopri5 solver on its trained weights.

    python benchmarks/rollout_speed.py [--runs runs/quality] [--threads 1] [--repeats 5] [--device cpu]
"""
import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from pcnode import build_model, load_run, rollout
from pcnode.data import split, task_data


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=Path, default=Path("runs/quality"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    _, test = split(task_data("billiards2d", 10_000, seed=0, cache_dir="data")["x"])
    x = test[:1024].to(args.device)
    variants = [("pcode", "pcode", {}), ("rnn", "rnn", {}), ("odernn", "odernn-rk4", {}),
                ("odernn", "odernn-dopri5", {"solver": "dopri5"})]
    for kind, label, change in variants:
        run = args.runs / f"billiards2d-{kind}"
        if not run.exists():
            print(json.dumps({"model": label, "skipped": f"no trained run at {run}; run benchmarks/quality.py"}))
            continue
        trained, _ = load_run(run, device=args.device)
        model = build_model(dataclasses.replace(trained.config, **change)).to(args.device).eval()
        model.load_state_dict(trained.state_dict())
        best, read = float("inf"), float("inf")
        for _ in range(args.repeats):
            tick = time.perf_counter()
            ro = rollout(model, x[:, :4], horizon=44)
            sync(args.device)
            tock = time.perf_counter()
            ro.frames()
            sync(args.device)
            best, read = min(best, tock - tick), min(read, time.perf_counter() - tock)
        print(json.dumps({"model": label, "rollouts_per_s": round(len(x) / best, 1),
                          "read_41_frames_s": round(read, 4),
                          "updates": round(ro.updates.float().mean().item(), 2), "mean_dt": round(ro.mean_dt, 2),
                          "nfe": ro.nfe, "threads": args.threads, "device": args.device}), flush=True)


if __name__ == "__main__":
    main()
