"""Training step time per model on Billiards2D (batch 256, 44 transitions).

Prints one JSON line per model: {"model", "ms_per_step", "mean_dt", "threads", ...}.
A step is teacher forcing + backward + Adam. Timed over real training from
initialisation, where the PC-ODE's skip rate is what training really sees.

`--reference` also times the plain per-frame formulation kept in the tests (every
row runs the cell and every loss term is decoded at every frame), which is what our
teacher forcing must match exactly.

    python benchmarks/train_speed.py [--threads 1] [--device cpu] [--steps 30] [--models pcode rnn odernn] [--reference]
                                     [--init RUN] [--precision float32 bfloat16]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pcnode import ModelConfig, SkipRule, build_model, load_run, teacher_forcing
from pcnode.data import split, task_data


def time_steps(model, data, steps, batch, loss_fn, lr=1e-3, device="cpu", precision="float32"):
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-7)
    gen = torch.Generator().manual_seed(0)
    times, dts = [], []
    for k in range(steps + 3):
        seq = data[torch.randint(len(data), (batch,), generator=gen)].to(device)
        tick = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            total, mean_dt = loss_fn(model, seq)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if k >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - tick)
            dts.append(mean_dt)
    times.sort()
    return 1e3 * times[len(times) // 2], sum(dts) / len(dts)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--models", nargs="+", default=["pcode", "rnn", "odernn"])
    p.add_argument("--reference", action="store_true")
    p.add_argument("--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16"],
                   help="time each model in each (bfloat16: the forward pass under torch.autocast)")
    p.add_argument("--init", help="run folder to start the PC-ODE from (a trained model skips more)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = split(task_data("billiards2d", 2000, 0)["x"])
    rule = SkipRule()

    def ours(model, seq):
        out = teacher_forcing(model, seq, rule)
        return out.total, out.mean_dt

    runs = [(kind, ours, precision) for kind in args.models for precision in args.precision]
    if args.reference:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from test_teacher_forcing import reference

        def plain(model, seq):
            total, _, updated = reference(model, seq, rule)
            return total, float("nan")
        runs += [(kind, plain, "float32") for kind in args.models if kind == "pcode"]
    for kind, fn, precision in runs:
        torch.manual_seed(0)
        model = build_model(ModelConfig(kind=kind, state_dim=4)).to(args.device)
        if args.init and kind == "pcode":
            model.load_state_dict(load_run(args.init)[0].state_dict())
        # A fresh Adam would knock a trained model off its skip rate in its first
        # steps; with --init the steps are timed at a negligible learning rate.
        lr = 1e-7 if args.init and kind == "pcode" else 1e-3
        ms, mean_dt = time_steps(model, train, args.steps, args.batch, fn, lr=lr, device=args.device,
                                 precision=precision)
        print(json.dumps({"model": kind, "impl": "pcnode" if fn is ours else "plain-reference",
                          "ms_per_step": round(ms, 1), "mean_dt": round(mean_dt, 2),
                          "threads": args.threads, "batch": args.batch, "device": args.device,
                          "precision": precision}), flush=True)


if __name__ == "__main__":
    main()
