"""Streams and exported models: parity, latency, and updates on real readings.

Prints markdown tables (the ones docs/streaming.md shows):

1. Parity. The shipped Billiards2D PC-ODE and RNN exported (`pcnode.export`, example
   batch 2) and run by `pcnode.runtime` under onnxruntime, against the eager model on the
   1,000 test trajectories: rollouts from 4 burn-in frames to frame 44 (batch 1,000),
   and streams fed every frame. Updates per trajectory that differ, and the largest state
   difference relative to the states' largest magnitude (with, beside it, the eager
   float32 rollout's own difference from the same model run in float64).
2. Latency of one reading through `Stream.observe`, one thread, eager PyTorch and the
   runtime measured in turn in the same process: batch 1 (20 test trajectories replayed
   frame by frame, a stream reset between them; the mean and the median over every
   reading, and the medians of readings that update and that do not) and batch 1,024 (one call reads a
   frame of 1,024 streams). Rounds alternate between the two; the table gives each
   one's fastest round (on a shared machine the slower ones measure the other jobs).
3. Updates on real readings. The 1,000 test trajectories fed frame by frame to streams of
   the shipped PC-ODE and RNN: the share of readings that updated (all, and after the
   4-reading burn-in), collision recall (collisions after the burn-in with an update
   within a frame, `pcnode.evaluate.updates_near`), and the mean squared error of the
   prediction made before each reading. Then the Nile (examples/nile.py's series and
   settings, trained here through `pcnode train`'s path into --out/nile-pcode-epsilonE
   for each skip threshold E): its 30 held-out years and the whole record streamed year
   by year.

    python benchmarks/stream_speed.py [--out runs/stream_speed] [--rounds 7] [--skip-nile] [--nile-epsilons 0.3 1.0]
"""
import argparse
import copy
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pcnode import SegmentRule, Stream, TrainConfig, pretrained, rollout, runtime
from pcnode.checkpoint import read_metrics
from pcnode.data import split, task_data
from pcnode.evaluate import updates_near
from pcnode.experiments.runs import train_run
from pcnode.experiments.stream import stream_run
from pcnode.export import export
from pcnode.series import SeriesSpec
from pcnode.tasks import collisions

N_BURN = 4


def relative(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def parity(name: str, model, exported, x: torch.Tensor) -> dict:
    eager = rollout(model, x[:, :N_BURN], horizon=44)
    ours = runtime.rollout(exported, x[:, :N_BURN].numpy(), horizon=44)
    exact = rollout(copy.deepcopy(model).double(), x[:, :N_BURN].double(), horizon=44)
    real = np.isfinite(ours.t) & np.isfinite(eager.t.numpy()) & np.isfinite(exact.t.numpy())
    h = eager.h.numpy()
    s_eager, s_ours = Stream(model, len(x)), runtime.Stream(exported, len(x))
    differ = np.zeros(len(x), dtype=bool)
    for i in range(x.shape[1]):
        differ |= s_eager.observe(i, x[:, i]).numpy() != s_ours.observe(i, x[:, i].numpy())
    return {"model": name, "rollout_updates_differ": int((ours.updates != eager.updates.numpy()).sum()),
            "rollout_state_rel": relative(ours.h[real], h[real]),
            "float64_state_rel": relative(h[real], exact.h.numpy()[real]),
            "stream_decisions_differ": int(differ.sum()), "stream_state_rel": relative(s_ours.h, s_eager.h.numpy())}


def replay(stream, frames) -> tuple[float, list, list]:
    """Feed `frames` (L, T, D) one trajectory at a time to a batch-1 stream; seconds in all,
    and the seconds of each reading that updated and that did not."""
    updated, held = [], []
    total = time.perf_counter()
    for trajectory in frames:
        stream.reset()
        for i, frame in enumerate(trajectory):
            tick = time.perf_counter()
            did = stream.observe(float(i), frame)
            (updated if bool(did[0]) else held).append(time.perf_counter() - tick)
    return time.perf_counter() - total, updated, held


def latency(model, exported, x: torch.Tensor, rounds: int) -> list[dict]:
    # Each runtime reads its own kind of array, as a program using it would hold them.
    streams = {"eager PyTorch": (Stream(model), x[:20]), "onnxruntime": (runtime.Stream(exported), x[:20].numpy())}
    wide = torch.cat([x, x])[:1024]  # the 1,000 test trajectories and 24 of them again
    big = {"eager PyTorch": (Stream(model, 1024), wide), "onnxruntime": (runtime.Stream(exported, 1024),
                                                                        wide.numpy())}
    per = {name: {"mean": [], "median": [], "update": [], "hold": [], "batch": []} for name in streams}
    for _ in range(rounds):
        for name, (stream, frames) in streams.items():
            seconds, updated, held = replay(stream, frames)
            per[name]["mean"].append(seconds / (frames.shape[0] * frames.shape[1]))
            per[name]["median"].append(statistics.median(updated + held))
            per[name]["update"].append(statistics.median(updated))
            per[name]["hold"].append(statistics.median(held))
            stream_b, data = big[name]
            stream_b.reset()
            tick = time.perf_counter()
            for i in range(data.shape[1]):
                stream_b.observe(float(i), data[:, i])
            per[name]["batch"].append((time.perf_counter() - tick) / data.shape[1])
    rows = [{"runtime": name, **{k: min(v) * 1e6 for k, v in d.items()}} for name, d in per.items()]
    eager = rows[0]
    for row in rows:
        row["ratio"] = row["mean"] / eager["mean"]
        row["ratio_median"] = row["median"] / eager["median"]
        row["ratio_batch"] = row["batch"] / eager["batch"]
    return rows


def on_readings(name: str, model, x: torch.Tensor, events: torch.Tensor) -> dict:
    stream = Stream(model, len(x))
    updated, err = torch.zeros(x.shape[:2], dtype=torch.bool), torch.zeros(x.shape[:2])
    for i in range(x.shape[1]):
        updated[:, i] = stream.observe(i, x[:, i])
        err[:, i] = (stream.predicted - x[:, i]).pow(2).mean(-1)
    times = torch.where(updated, torch.arange(x.shape[1], dtype=torch.float32), torch.inf)[:, N_BURN - 1:]
    return {"model": name, "fraction": updated.float().mean().item(),
            "after_burn_in": updated[:, N_BURN:].float().mean().item(),
            "per_trajectory": updated.sum(1).float().mean().item(),
            "recall": updates_near(times, events, N_BURN), "mse": err[:, N_BURN:].mean().item()}


def nile(out: Path, epsilon: float) -> list[dict]:
    from statsmodels.datasets import nile as data
    df = data.load().data
    out.mkdir(parents=True, exist_ok=True)
    path = out / "nile.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["year", "volume"])
        w.writerows(zip(df["year"].astype(int), df["volume"]))
    run = out / f"nile-pcode-epsilon{epsilon:g}"
    if not (run / "checkpoint.safetensors").exists():
        config = TrainConfig(steps=600, batch_size=32, eval_every=600, decay_every=200, seed=0, epsilon=epsilon)
        spec = SeriesSpec(file=str(path), time_column="year", window=20, stride=1, split="time", test_fraction=0.3)
        train_run("pcode", run, config, SegmentRule(n_burn=N_BURN), {"hidden": 64, "latent": 64}, series=spec)
    trained_dt = read_metrics(run / "metrics.csv")[-1]["train_mean_dt"]
    rows = []
    for label, data_file in (("held-out years 1941-1970", None), ("the whole record 1871-1970", path)):
        summary, paths = stream_run(run, data_file, run / ("stream-held-out" if data_file is None else "stream-whole"),
                                    progress=False)
        with open(paths[0]) as f:
            readings = list(csv.DictReader(f))
        volume = np.array([float(r["volume"]) for r in readings])
        rows.append({**summary, "label": label, "trained_dt": trained_dt,
                     "years": [int(float(r["time"])) for r in readings if r["updated"] == "1"],
                     "persistence": float(np.mean(np.diff(volume)[N_BURN - 1:] ** 2))})
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("runs/stream_speed"))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--skip-nile", action="store_true")
    p.add_argument("--nile-epsilons", type=float, nargs="+", default=[0.3, 1.0],
                   help="skip thresholds of the Nile PC-ODEs (examples/nile.py's default is 0.3)")
    args = p.parse_args()
    torch.set_num_threads(1)
    _, test = split(task_data("billiards2d", 10_000, seed=0, cache_dir="data")["x"])
    events = torch.as_tensor(collisions("billiards2d", 10_000, 0))[-len(test):]
    models = {kind: pretrained.load(f"billiards2d-{kind}") for kind in ("pcode", "rnn")}
    with tempfile.TemporaryDirectory() as tmp:
        exported = {kind: runtime.load(export(m, Path(tmp) / kind, batch=2)) for kind, m in models.items()}

    print("## Parity: pcnode.runtime (onnxruntime) against eager PyTorch, 1,000 Billiards2D test trajectories\n")
    print("| model | rollouts whose updates differ | largest state difference (rollouts) | eager float32 vs float64 "
          "| stream decisions that differ (trajectories) | largest state difference (streams) |")
    print("|---|---|---|---|---|---|")
    for kind, model in models.items():
        r = parity(kind, model, exported[kind], test)
        print(f"| {kind} | {r['rollout_updates_differ']} of 1,000 | {r['rollout_state_rel']:.1e} | "
              f"{r['float64_state_rel']:.1e} | {r['stream_decisions_differ']} of 1,000 | {r['stream_state_rel']:.1e} |")

    print("\n## Latency of one reading through Stream.observe, shipped Billiards2D PC-ODE, one thread\n")
    print("| runtime | batch 1: mean per reading (us) | vs eager | median per reading | vs eager | median of a "
          "reading that updates | of one that does not | batch 1,024: per call (us) | vs eager |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in latency(models["pcode"], exported["pcode"], test, args.rounds):
        print(f"| {r['runtime']} | {r['mean']:.0f} | {r['ratio']:.2f} | {r['median']:.0f} | {r['ratio_median']:.2f} | "
              f"{r['update']:.0f} | {r['hold']:.0f} | {r['batch']:.0f} | {r['ratio_batch']:.2f} |")

    print("\n## Updates on real readings: 1,000 Billiards2D test trajectories fed frame by frame (45 readings)\n")
    print("| model | readings that update | after the burn-in | updates per trajectory | collisions with an update "
          "within a frame | MSE of the prediction before each reading (after the burn-in) |")
    print("|---|---|---|---|---|---|")
    for kind, model in models.items():
        r = on_readings(kind, model, test, events)
        print(f"| {kind} | {r['fraction']:.1%} | {r['after_burn_in']:.1%} | {r['per_trajectory']:.2f} | "
              f"{r['recall']:.0%} | {r['mse']:.2e} |")
    if args.skip_nile:
        return
    print("\n## Updates on real readings: the Nile at Aswan, year by year (PC-ODEs of examples/nile.py's settings)\n")
    print("| epsilon | training's mean segment (years) | readings | streamed | updates | after the burn-in | "
          "MSE of the prediction before each reading, (10^8 m^3)^2 | the last year's value instead | "
          "years it updated |")
    print("|---|---|---|---|---|---|---|---|---|")
    for epsilon in args.nile_epsilons:
        for r in nile(args.out, epsilon):
            print(f"| {epsilon:g} | {r['trained_dt']:.2f} | {r['label']} | {r['readings']} | {r['updates']} "
                  f"({r['update_fraction']:.0%}) | {r['update_fraction_after_burn_in']:.0%} | "
                  f"{r['mean_error_after_burn_in']:.0f} | {r['persistence']:.0f} | {', '.join(map(str, r['years']))} |")


if __name__ == "__main__":
    main()
