"""Score a trained run and ship it as a pretrained model (`pcnode.pretrained`).

Scores the run on its full held-out split by both protocols (ours and the authors',
`pcnode.evaluate`), on billiards also the collisions and the event recall, prints
them as one JSON line, and writes the model into pcnode/zoo/NAME with a provenance
JSON: the command that trained it, the commit, steps, wall time, machine, the scores,
and a small fixed batch of test trajectories (check.safetensors) with the MSE the model
scores on it (the tests check that every shipped model still scores exactly that).

    python benchmarks/zoo.py NAME RUN --command "pcnode train ..." --commit abc1234
        [--plan-data N SEED]   # a planning model: its data is pcnode.planning.plan_data(N, SEED)
        [--weights best]       # the weights that scored best on the run's validation split

With --rescore and no RUN, scores the shipped NAME again with today's code (after a
change to how rollouts run, say) and records the new scores in its provenance, with the
commit and the reason; its weights and check batch stay as they are:

    python benchmarks/zoo.py NAME --rescore --commit abc1234 --why "..."
"""
import argparse
import json
import platform
from pathlib import Path

import torch

import pcnode
from pcnode import checkpoint as ckpt
from pcnode import evaluate, load_run, pretrained, rollout
from pcnode.checkpoint import read_metrics
from pcnode.config import TrainConfig, load_config
from pcnode.data import Trajectories
from pcnode.evaluate import event_recall
from pcnode.experiments.runs import dataset
from pcnode.forcing import forced_mean_dt
from pcnode.tasks import collisions

CHECK_TRAJECTORIES = 16


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def test_split(data: dict) -> Trajectories:
    """The held-out trajectories of a run's data section (a planning model's included)."""
    return dataset(data)[1]


def score(model, cfg: dict, test: Trajectories) -> dict:
    """Both protocols' scores on `test`; on coordinate billiards also the event recall."""
    n_burn = model.rule.n_burn
    ours = evaluate(model, test)
    theirs = evaluate(model, test, protocol="authors")
    train_config = load_config(TrainConfig, {**cfg["train"], "device": "cpu"}, "training")
    metrics = {"mse": ours["mse"], "updates": ours["updates"], "mean_dt": ours["mean_dt"],
               "mse_authors": theirs["mse"], "mean_dt_authors": forced_mean_dt(model, test, config=train_config),
               "test_trajectories": len(test)}
    data = cfg["data"]
    task = data.get("task", "")
    if "billiards" in task and not task.startswith("pixel"):
        events = torch.as_tensor(collisions(task, data["n"], data["seed"]))[-len(test):]
        ro = rollout(model, test.x[:, :n_burn], horizon=test.x.shape[1] - 1)
        metrics["event_recall"] = event_recall(ro, events)
        metrics["collisions_plus_1"] = (events[:, n_burn:].sum(1) + 1).double().mean().item()
    return metrics


def rescore(name: str, commit: str, why: str, zoo: Path) -> dict:
    """Score the shipped `name` again and record it in its provenance, the earlier scores
    kept under `rescored` with `commit` and `why`; the weights and check batch stay."""
    folder = zoo / name
    model, cfg = load_run(folder)
    provenance = ckpt.read_json(folder / pretrained.PROVENANCE)
    check = ckpt.load_tensors(folder / pretrained.CHECK)[0]["x"]
    metrics = score(model, cfg, test_split(cfg["data"]))
    provenance["rescored"] = provenance.get("rescored", []) + [
        {"commit": commit, "why": why, "before": provenance["metrics"], "check_mse_before": provenance["check"]["mse"]}]
    provenance["metrics"] = metrics
    provenance["check"]["mse"] = evaluate(model, check)["mse"]
    ckpt.write_json(folder / pretrained.PROVENANCE, provenance)
    return metrics


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("run", type=Path, nargs="?")
    p.add_argument("--command", help="the command that trained the run")
    p.add_argument("--commit", required=True, help="the commit it was trained (or rescored) at")
    p.add_argument("--plan-data", nargs=2, type=int, metavar=("N", "SEED"))
    p.add_argument("--rescore", action="store_true", help="score the shipped NAME again; needs --why")
    p.add_argument("--why", help="with --rescore: what changed")
    p.add_argument("--dest", type=Path, default=pretrained.ZOO)
    p.add_argument("--weights", choices=("last", "best"), default="last",
                   help="the run's last weights, or those that scored best on its validation split")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.rescore:
        if args.run or not args.why:
            p.error("--rescore takes no RUN and needs --why")
        print(json.dumps({"name": args.name, **rescore(args.name, args.commit, args.why, args.dest)}))
        return
    if args.run is None or args.command is None:
        p.error("RUN and --command are needed to ship a run")
    model, cfg = load_run(args.run, weights=args.weights)
    if args.plan_data:
        n, seed = args.plan_data
        cfg["data"] = {"planning": {"n": n, "seed": seed}, "test_fraction": cfg["data"].get("test_fraction", 0.1),
                       "note": "pcnode.planning.plan_data(n, seed), split as pcnode.data.split"}
    data = cfg["data"]
    test = test_split(data)
    metrics = score(model, cfg, test)
    check = test.x[:CHECK_TRAJECTORIES]
    rows = read_metrics(args.run / "metrics.csv")
    step = int(ckpt.load_tensors(args.run / ckpt.WEIGHTS[args.weights])[1]["step"])
    provenance = {
        "name": args.name, "model": model.config.kind, "data": data,
        "command": args.command, "commit": args.commit, "steps": step, "weights": args.weights,
        "train_s": next(r["train_s"] for r in rows if r["step"] == step), "pcnode": pcnode.__version__,
        "machine": {"cpu": cpu_name(), "threads": 1, "torch": torch.__version__, "python": platform.python_version()},
        "metrics": metrics,
        "check": {"file": pretrained.CHECK, "trajectories": len(check), "n_burn": model.rule.n_burn,
                  "mse": evaluate(model, check)["mse"]},
    }
    earlier = args.dest / args.name / pretrained.PROVENANCE
    if earlier.is_file():  # a shipped model replaced: what it was, for the record
        before = ckpt.read_json(earlier)
        provenance["replaces"] = {k: before[k] for k in ("command", "commit", "steps", "metrics") if k in before}
    if args.weights == "best":
        provenance["trained_steps"] = rows[-1]["step"]
        provenance["val_mse"] = next(r["val_mse_model_units"] for r in rows if r["step"] == step)
    dest = pretrained.export(args.run, args.dest / args.name, provenance, data=data, weights=args.weights)
    ckpt.save_tensors(dest / pretrained.CHECK, {"x": check}, {"about": "the first test trajectories; see provenance"})
    print(json.dumps({"name": args.name, **metrics, "steps": provenance["steps"], "train_s": provenance["train_s"]}))


if __name__ == "__main__":
    main()
