"""Score a trained run and ship it as a pretrained model (`pcnode.pretrained`).

Scores the run on its full held-out split by both protocols (ours and the authors',
`pcnode.evaluate`), on billiards also the collisions and the event recall, prints
them as one JSON line, and writes the model into pcnode/zoo/NAME with a provenance
JSON: the command that trained it, the commit, steps, wall time, machine, the scores,
and a small fixed batch of test trajectories (check.safetensors) with the MSE the model
scores on it (the tests check that every shipped model still scores exactly that).

    python benchmarks/zoo.py NAME RUN --command "pcnode train ..." --commit abc1234
        [--plan-data N SEED]   # a planning model: its data is pcnode.plan.plan_data(N, SEED)
"""
import argparse
import json
import platform
from pathlib import Path

import torch

import pcnode
from pcnode import checkpoint as ckpt
from pcnode import evaluate, load_run, pretrained, rollout
from pcnode import plan as pl
from pcnode.data import Trajectories, split
from pcnode.evaluate import event_recall
from pcnode.experiments.runs import dataset
from pcnode.forcing import SkipRule
from pcnode.tasks import collisions
from pcnode.train import read_metrics

CHECK_TRAJECTORIES = 16


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("run", type=Path)
    p.add_argument("--command", required=True, help="the command that trained the run")
    p.add_argument("--commit", required=True, help="the commit it was trained at")
    p.add_argument("--plan-data", nargs=2, type=int, metavar=("N", "SEED"))
    p.add_argument("--dest", type=Path, default=pretrained.ZOO)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, cfg = load_run(args.run)
    rule = SkipRule(**cfg["train"]["rule"])
    data = cfg["data"]
    if args.plan_data:
        n, seed = args.plan_data
        test = Trajectories(split(pl.plan_data(n, seed), data.get("test_fraction", 0.1))[1])
        data = {"planning": {"n": n, "seed": seed}, "test_fraction": data.get("test_fraction", 0.1),
                "note": "pcnode.plan.plan_data(n, seed), split as pcnode.data.split"}
    else:
        _, test = dataset(data)
    ours = evaluate(model, test, n_burn=rule.n_burn)
    theirs = evaluate(model, test, n_burn=rule.n_burn, protocol="authors", rule=rule)
    metrics = {"mse": ours["mse"], "updates": ours["updates"], "mean_dt": ours["mean_dt"],
               "mse_authors": theirs["mse"], "mean_dt_authors": theirs["mean_dt"], "test_trajectories": len(test)}
    task = data.get("task", "")
    if "billiards" in task and not task.startswith("pixel"):
        events = torch.as_tensor(collisions(task, data["n"], data["seed"]))[-len(test):]
        ro = rollout(model, test.x[:, :rule.n_burn], horizon=test.x.shape[1] - 1)
        metrics["event_recall"] = event_recall(ro, events)
        metrics["collisions_plus_1"] = (events[:, rule.n_burn:].sum(1) + 1).double().mean().item()
    check = test.x[:CHECK_TRAJECTORIES]
    rows = read_metrics(args.run / "metrics.csv")
    provenance = {
        "name": args.name, "model": model.config.kind, "data": data,
        "command": args.command, "commit": args.commit, "steps": rows[-1]["step"],
        "train_s": rows[-1]["train_s"], "pcnode": pcnode.__version__,
        "machine": {"cpu": cpu_name(), "threads": 1, "torch": torch.__version__, "python": platform.python_version()},
        "metrics": metrics,
        "check": {"file": pretrained.CHECK, "trajectories": len(check), "n_burn": rule.n_burn,
                  "mse": evaluate(model, check, n_burn=rule.n_burn)["mse"]},
    }
    dest = pretrained.export(args.run, args.dest / args.name, provenance, data=data)
    ckpt.save_tensors(dest / pretrained.CHECK, {"x": check}, {"about": "the first test trajectories; see provenance"})
    print(json.dumps({"name": args.name, **metrics, "steps": provenance["steps"], "train_s": provenance["train_s"]}))


if __name__ == "__main__":
    main()
