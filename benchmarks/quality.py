"""Quality at a CPU-sized budget: PC-ODE vs RNN vs ODE-RNN on Lines, Circles and Billiards2D.

Trains each model on each task (run folders under --out, reused if already trained),
evaluates on the held-out 10%, and prints one JSON line per (task, model) followed by
a markdown table.

    python benchmarks/quality.py [--out runs/quality] [--tasks lines circles billiards2d]
                                 [--models pcode rnn odernn] [--n 4000] [--threads 1] [--device cpu]
                                 [--precision float32 bfloat16] [--feed-predictions 0 0.5]

With bfloat16 the forward passes of training run under torch.autocast (run folders end
in -bf16); evaluation is in float32 either way. A nonzero --feed-predictions trains the
PC-ODE with that probability of reading its own predicted frame at an update (run
folders end in -feedP; the other models have no skip rule and run once).
"""
import argparse
import json
import time
from pathlib import Path

import torch

from pcnode import ModelConfig, TrainConfig, build_model, evaluate, fit, load_run
from pcnode.data import split, task_data

# Steps per task: enough for each model to settle at this budget on a 2-core CPU.
STEPS = {"lines": 300, "circles": 800, "billiards2d": 800}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("runs/quality"))
    p.add_argument("--tasks", nargs="+", default=list(STEPS))
    p.add_argument("--models", nargs="+", default=["pcode", "rnn", "odernn"])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    p.add_argument("--feed-predictions", nargs="+", type=float, default=[0.0])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for task in args.tasks:
        train, test = split(task_data(task, args.n, seed=0, cache_dir="data")["x"])
        settings = [(k, pr, f) for k in args.models for pr in args.precision
                    for f in (args.feed_predictions if k == "pcode" else [0.0])]
        for kind, precision, feed in settings:
            run = args.out / (f"{task}-{kind}" + ("-bf16" if precision == "bfloat16" else "")
                              + (f"-feed{feed:g}" if feed else ""))
            if not (run / "metrics.csv").exists():
                torch.manual_seed(0)
                model = build_model(ModelConfig(kind=kind, state_dim=train.shape[-1]))
                cfg = TrainConfig(steps=STEPS[task], eval_every=STEPS[task], checkpoint_every=STEPS[task],
                                  device=args.device, precision=precision, feed_predictions=feed)
                tick = time.perf_counter()
                fit(model, train, cfg, test=test, run_dir=run, data={"task": task, "n": args.n, "seed": 0})
                train_s = time.perf_counter() - tick
            else:
                model, _ = load_run(run, device=args.device)
                train_s = float("nan")
            m = evaluate(model, test.to(args.device))
            row = {"task": task, "model": kind, "precision": precision, "feed_predictions": feed,
                   "steps": STEPS[task], **{k: round(v, 8) for k, v in m.items()},
                   "train_s": round(train_s, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| task | model | precision | fed | test MSE | updates/rollout | mean dt | NFE/batch | rollout s "
          "| train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['model']} | {r['precision']} | {r['feed_predictions']:g} | {r['mse']:.2e} "
              f"| {r['updates']:.2f} | {r['mean_dt']:.2f} | {r['nfe']:.0f} | {r['rollout_s']:.2f} | {r['train_s']} |")


if __name__ == "__main__":
    main()
