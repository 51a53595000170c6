"""The accuracy-updates frontier: every trained run of a task scored alike, drawn and tabled.

Reads run folders (and, with --zoo, the shipped models), scores each on its task's
1,000 held-out trajectories with the project's protocol (the rollout from 4 true
frames, `pcnode.evaluate`), on billiards also its event recall in the rollout and in
teacher forcing on the test data (`pcnode.forcing.forced_update_times`) and the recall
as many updates would reach at random times (`pcnode.evaluate.chance_recall`), and prints one
markdown table per task with the command that reproduces each run and, with --zoo, each
model's test MSE over the shipped RNN's on the same trajectories with its paired
bootstrap 95% interval (`pcnode.evaluate.mse_ratio`), and a second table per task of
where in the rollout the error is (test MSE over bands of frames after the burn-in; on
billiards also over the first 5 frames of the trajectories with no collision from the
last burn-in frame to frame 6 and of those with one). A run with a
validation split is scored with the weights that did best on it (`best.safetensors`),
the way a shipped model is picked; scores are cached in RUN/frontier.json (kept while
the weights and SCORES, the version of what is scored, stay the same). A record in
benchmarks/results/frontier/ (a run's config, metrics and cached scores, no weights) is
read from its cache, so the page's tables and figures redraw from the repository alone. A run trained on other
data (`--seed` seeds the data as well as the training) gets no ratio to the shipped RNN
and no time-to-quality row: both need the same test trajectories.

Draws FRONTIER.png (per task: test MSE against updates per rollout, the PC-ODEs as a
curve, the other models as points, the hold-last-frame baseline as a line) and
TIME.png (test MSE during training against training wall time, from the runs'
metrics.csv, for the PC-ODEs and the RNN: time to quality).

    python benchmarks/frontier.py ~/frontier/* --zoo --out docs/images
    python benchmarks/frontier.py benchmarks/results/frontier/circles-* --zoo --out /tmp/frontier
"""
import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pcnode import checkpoint as ckpt  # noqa: E402
from pcnode import evaluate, load_run, pretrained, rollout  # noqa: E402
from pcnode.config import TrainConfig  # noqa: E402
from pcnode.evaluate import chance_recall, event_recall, mse_ratio, trajectory_mse, updates_near  # noqa: E402
from pcnode.experiments.runs import dataset  # noqa: E402
from pcnode.forcing import forced_update_times  # noqa: E402
from pcnode.model import ModelConfig  # noqa: E402
from pcnode.plotting import COLORS, LABELS  # noqa: E402
from pcnode.segments import DEFAULT_RELATIVE_EPSILON, SegmentRule  # noqa: E402
from pcnode.tasks import collisions  # noqa: E402

TASK_NAMES = {"circles": "Circles", "billiards1d": "Billiards1D", "billiards2d": "Billiards2D", "lines": "Lines"}
SCORES = 3  # raise when what `score` measures changes, to score cached runs again
MARKERS = {"pcode": "o", "rnn": "s", "odernn": "^", "cfc": "D"}
BANDS = ((0, 5), (5, 10), (10, 20), (20, 30), (30, None))  # frames after the burn-in, for `by_frame`
CACHE = "frontier.json"  # a run's scores, kept in its folder (and in its record, without the weights)


def command(cfg: dict) -> str:
    """The `pcnode train` command that reproduces a run: its settings that differ from the defaults."""
    flags = []
    jumps = cfg["model"]["kind"] == "pcode"
    for section, cls in (("train", TrainConfig), ("model", ModelConfig)):
        defaults = dataclasses.asdict(cls())
        for key, value in cfg[section].items():
            if key in ("kind", "state_dim", "device", "seed") or key not in defaults or value == defaults[key]:
                continue
            if not jumps and key in ("epsilon", "relative_epsilon", "events"):  # no threshold to set
                continue
            if key == "relative_epsilon" and value == DEFAULT_RELATIVE_EPSILON:  # stored as given by older runs
                continue
            flags.append(f"--{key.replace('_', '-')} {value:g}" if isinstance(value, float) else
                         f"--{key.replace('_', '-')} {value}")
    rule = SegmentRule()
    for key in ("n_burn", "min_dt", "max_dt", "input_threshold"):
        if cfg["segments"].get(key, getattr(rule, key)) != getattr(rule, key):
            flags.append(f"--{key.replace('_', '-')} {cfg['segments'][key]:g}")
    data = cfg["data"]
    return (f"pcnode --threads 1 train --task {data['task']} --model {cfg['model']['kind']} "
            + (f"--n {data['n']} " if data.get("n", 10_000) != 10_000 else "")
            + (f"--seed {cfg['train']['seed']} " if cfg["train"].get("seed", 0) else "") + " ".join(flags)).strip()


def score(folder: Path, name: str, shipped: bool) -> dict:
    """A run's (or shipped model's) scores on its test split, cached in its folder unless shipped."""
    weights = "best" if (folder / ckpt.BEST).is_file() else "last"
    cache = folder / CACHE
    saved = json.loads(cache.read_text()) if not shipped and cache.is_file() else {}
    if (folder / ckpt.WEIGHTS[weights]).is_file():
        step = int(ckpt.load_tensors(folder / ckpt.WEIGHTS[weights])[1].get("step") or 0)
        kept = ["mse_by_frame", "step_size_late"] + (["mse_first_calm"] if "billiards" in saved.get("task", "") else [])
        current = (saved.get("weights"), saved.get("step"), saved.get("scores")) == (weights, step, SCORES) and all(
            k in saved for k in kept)  # scored before the error by frame was kept: score it again
    elif saved.get("scores") == SCORES:  # a record (benchmarks/results/frontier/): its scores, not its weights
        step, current = saved["step"], True
    else:
        raise SystemExit(f"{folder} has neither weights nor scores of this version ({CACHE} with scores {SCORES}): "
                         "pass a run folder or a record written by this script")
    if current:
        cfg = ckpt.read_run_config(folder)  # the command as today's flags spell it
        return {**saved, **trained(folder, step), "name": name,  # a record is named after its folder, as it is now
                "command": command(cfg), "planned_steps": cfg["train"]["steps"], "data": cfg["data"]}
    model, cfg = load_run(folder, weights=weights)
    data = cfg["data"]
    _, test = dataset(data)
    m = evaluate(model, test)
    row = {"name": f"pretrained:{name}" if shipped else name, "task": data["task"], "kind": model.config.kind,
           "data": data, "shipped": shipped, "weights": weights, "step": step, "planned_steps": cfg["train"]["steps"],
           "mse": m["mse"], "updates": m["updates"], "trajectories": len(test),
           "mse_each": [float(f"{e:.4g}") for e in trajectory_mse(model, test).tolist()],
           "command": command(cfg), "relative_epsilon": cfg["train"].get("relative_epsilon"),
           "events": cfg["train"].get("events"), "threshold": cfg["segments"].get("threshold"), "scores": SCORES}
    n_burn = model.rule.n_burn
    ro = rollout(model, test.x[:, :n_burn], horizon=test.x.shape[1] - 1)
    squared = (ro.frames() - test.x[:, n_burn:])[..., : model.scored_dims].pow(2)  # (N, frames after the burn-in, D)
    row["mse_by_frame"] = [float(f"{e:.4g}") for e in squared.mean((0, 2)).tolist()]
    # How far a rollout moves per frame late on, over how far the data does: a model that
    # hedges where it has lost the trajectory (slows down, drifts to the mean) scores below 1.
    late = slice(BANDS[-1][0], None)
    moved = torch.cat([test.x[:, n_burn - 1 : n_burn], ro.frames()], 1).diff(dim=1)[:, late, : model.scored_dims]
    true = test.x[:, n_burn - 1 :].diff(dim=1)[:, late, : model.scored_dims]
    row["step_size_late"] = (moved.pow(2).mean() / true.pow(2).mean()).sqrt().item()
    if data["task"] in ("billiards1d", "billiards2d"):
        events = torch.as_tensor(collisions(data["task"], data["n"], data["seed"]))[-len(test):]
        # The first frames split by whether a ball collides there: free flight against a bounce.
        early = squared[:, slice(*BANDS[0])].mean((1, 2))
        calm = events[:, n_burn - 1 : n_burn + 6].sum(1) == 0
        row["mse_first_calm"], row["mse_first_bounce"] = early[calm].mean().item(), early[~calm].mean().item()
        row["event_recall"] = event_recall(ro, events)
        row["chance_recall"] = chance_recall(ro, events)
        row["forcing_recall"] = updates_near(forced_update_times(model, test), events, n_burn)
        row["collisions_plus_1"] = (events[:, n_burn:].sum(1) + 1).double().mean().item()
    row |= trained(folder, step)
    if not shipped:
        ckpt.write_json(cache, row)
    return row


def trained(folder: Path, step: int) -> dict:
    """How far a run has trained (read afresh: it may have gone on since its weights were
    scored) and its training time when it reached `step`, counting the training behind
    the weights it started from (`head_start`)."""
    metrics = folder / ckpt.METRICS
    if not metrics.is_file():
        return {}
    head = head_start_of(folder)
    rows = ckpt.read_metrics(metrics)
    return {"train_s": head + next((r["train_s"] for r in rows if r["step"] == step), rows[-1]["train_s"]),
            "trained_steps": rows[-1]["step"], "head_start_s": head}


def head_start(init: str | None) -> float:
    """The training seconds behind a run's first weights: 0 for fresh ones; for a run
    started from another (`--init`), that run's time to the weights it gave (a shipped
    model's provenance says it; a run folder's last metrics row), and its own head start."""
    if init is None:
        return 0.0
    folder = pretrained.resolve(init)
    if pretrained.is_pretrained(init):
        own = pretrained.info(init.removeprefix("pretrained:"))["train_s"]
    elif (folder / ckpt.METRICS).is_file():
        own = ckpt.read_metrics(folder / ckpt.METRICS)[-1]["train_s"]
    else:
        raise SystemExit(f"a run started from {init}, whose metrics.csv is not here: its time to quality is unknown")
    return own + head_start_of(folder)  # it may have started from another


def head_start_of(folder: Path) -> float:
    """The head start of the run in `folder`: that of the weights its config says it began from."""
    return head_start(ckpt.read_run_config(folder)["train"].get("init"))


def timed(folder: Path) -> list[dict]:
    """A run's metrics rows with `train_s` counted from fresh weights (`head_start`)."""
    head = head_start_of(folder)
    return [{**r, "train_s": head + r["train_s"]} for r in ckpt.read_metrics(folder / ckpt.METRICS)]


def hold_baseline(task: str) -> float:
    """The test MSE of holding the last burn-in frame for the rest of each trajectory."""
    _, test = dataset({"task": task, "n": 10_000, "seed": 0, "test_fraction": 0.1})
    x = test.x
    return (x[:, 4:] - x[:, 3:4]).pow(2).mean().item()


def by_frame(rows: list[dict]) -> list[str]:
    """Where in the rollout each model's error is: its test MSE over bands of frames after the
    burn-in, and the root mean square of its steps in the last band over the data's (rows
    scored before the per-frame error was kept are left out; "-" where the step size was not kept)."""
    out = []
    for r in rows:
        error = r.get("mse_by_frame")
        if error:
            cells = [f"{sum(error[a:b]) / len(error[a:b]):.2e}" for a, b in BANDS if error[a:b]]
            cells.append(f"{r['step_size_late']:.2f}" if "step_size_late" in r else "-")
            if "billiards" in r["task"]:
                cells += [f"{r[k]:.2e}" if k in r else "-" for k in ("mse_first_calm", "mse_first_bounce")]
            out.append(f"| {r['name']} | {LABELS.get(r['kind'], r['kind'])} | {r['updates']:.2f} | "
                       + " | ".join(cells) + " |")
    return out


def label(row: dict, task: str) -> str:
    """A run's short name on the picture, with the step it stopped at if it stopped short."""
    name = row["name"].removeprefix(f"{task}-").removeprefix("pcode-")
    done = row.get("trained_steps", row["step"])
    return name if done >= row.get("planned_steps", done) else f"{name} (to {done // 1000}k)"


def draw_frontier(path: Path, rows: list[dict], holds: dict[str, float]) -> None:
    tasks = [t for t in TASK_NAMES if any(r["task"] == t for r in rows)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 4.5), squeeze=False)
    panels, seen = [], {}
    for ax, task in zip(axes[0], tasks):
        mine = [r for r in rows if r["task"] == task]
        runs = sorted((r for r in mine if r["kind"] == "pcode" and not r.get("events") and not r["shipped"]),
                      key=lambda r: (r["updates"], r["mse"]))
        pcodes = sorted((r for r in mine if r["kind"] == "pcode" and not r.get("events")),
                        key=lambda r: (r["updates"], r["mse"]))  # the runs and the shipped PC-ODE
        front = [r for i, r in enumerate(pcodes) if all(r["mse"] < q["mse"] for q in pcodes[:i])]  # lower envelope
        if runs:
            ax.plot([r["updates"] for r in runs], [r["mse"] for r in runs], "o", color=COLORS["pcode"], ms=5, alpha=0.6,
                    label="PC-ODE runs (thresholds, recipes)")
            ax.plot([r["updates"] for r in front], [r["mse"] for r in front], "-", color=COLORS["pcode"],
                    label="PC-ODE frontier")
        for r in mine:
            if r["kind"] == "pcode" and r.get("events"):
                ax.plot(r["updates"], r["mse"], "*", color="tab:orange", ms=11, label="PC-ODE, events option")
            elif r["kind"] != "pcode":
                shipped = " (shipped)" if r["shipped"] else ""
                ax.plot(r["updates"], r["mse"], MARKERS.get(r["kind"], "x"), color=COLORS.get(r["kind"], "grey"),
                        mfc="none" if shipped else None, mew=1.5, ms=7,
                        label=LABELS.get(r["kind"], r["kind"]) + shipped)
            if r["shipped"] and r["kind"] == "pcode":
                ax.plot(r["updates"], r["mse"], "o", mfc="none", mec="black", ms=10, label="shipped PC-ODE")
        ax.axhline(holds[task], color="grey", ls="--", lw=1, label="hold the last frame")
        if "billiards" in task:
            c1 = next((r["collisions_plus_1"] for r in mine if "collisions_plus_1" in r), None)
            if c1:
                ax.axvline(c1, color="grey", ls=":", lw=1, label="collisions + 1")
        ax.set_xscale("log")
        # Room for the labels left of the one-update runs and right of the every-frame models.
        ax.set_xlim(0.5, 2.5 * max(r["updates"] for r in mine))
        ax.set_yscale("log")
        ax.set_xlabel("updates per rollout")
        ax.set_ylabel("test MSE (1,000 trajectories)")
        ax.set_title(TASK_NAMES[task])
        handles, labels = ax.get_legend_handles_labels()
        seen.update(zip(labels, handles))
        panels.append((ax, task, mine, runs, front))
    # One legend under the panels, so that none covers a panel's points.
    fig.legend(seen.values(), seen.keys(), fontsize=7, loc="lower center", ncol=5, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    for ax, task, mine, runs, front in panels:  # labels once the layout is final, so that overlaps can be measured
        apart = [r for r in mine if not r["shipped"] and (r["kind"] != "pcode" or r.get("events"))]
        pcodes = sorted(runs, key=lambda r: (r not in front, r["mse"]))  # the frontier's labels first
        points = [(r, "dimgrey", (-5, 4)) for r in apart] + [(r, COLORS["pcode"], (5, -2)) for r in pcodes]
        name_points(ax, points, task)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def name_points(ax, points: list[tuple[dict, str, tuple[int, int]]], task: str) -> None:
    """Label each run's point beside it, right or else left of it, leaving out a label that
    would overlap one already placed (the tables name every run)."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for r, color, (dx, dy) in points:
        for side in (1, -1) if dx > 0 else (-1, 1):
            text = ax.annotate(label(r, task), (r["updates"], r["mse"]), fontsize=6, xytext=(side * abs(dx), dy),
                               ha="left" if side > 0 else "right", textcoords="offset points", color=color)
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            text.remove()


def draw_time(path: Path, folders: dict[str, Path], rows: list[dict]) -> None:
    def ran(task: str, kind: str) -> bool:
        return any(r["task"] == task and r["kind"] == kind and not r["shipped"] for r in rows)

    tasks = [t for t in ("circles", "billiards2d") if ran(t, "rnn") and ran(t, "pcode")]
    if not tasks:
        return
    most = max(sum(r["task"] == t and not r["shipped"] and r["kind"] in ("pcode", "rnn") for r in rows) for t in tasks)
    rows_below = -(-most // 3)  # the legends' rows, three entries to a row, under the panels
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.9 + 0.17 * rows_below), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        runs = [r for r in rows if r["task"] == task and not r["shipped"] and r["kind"] in ("pcode", "rnn")]
        pcodes = [r for r in runs if r["kind"] == "pcode"]
        shades = {r["name"]: plt.cm.Reds(0.35 + 0.6 * i / max(1, len(pcodes) - 1)) for i, r in enumerate(pcodes)}
        for r in runs:
            m = timed(folders[r["name"]])
            baseline = r["kind"] == "rnn" and not r.get("head_start_s")  # the RNN from fresh weights
            label = LABELS["rnn"] if baseline else f"{LABELS[r['kind']]}, {short_name(r['name'], task)}"
            style = "-" if r["kind"] == "pcode" else "--" if baseline else ":"
            ax.plot([x["train_s"] / 60 for x in m], [x["test_mse_model_units"] for x in m], style,
                    color=COLORS["rnn"] if r["kind"] == "rnn" else shades[r["name"]], marker=".", label=label)
            if baseline:
                ax.axhline(m[-1]["test_mse_model_units"], color=COLORS["rnn"], lw=0.8, ls=":")
                ax.axvline(m[-1]["train_s"] / 60, color=COLORS["rnn"], lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("training wall time (min, one thread)")
        ax.set_ylabel("test MSE during training (512 trajectories)")
        ax.set_title(f"{TASK_NAMES[task]}: time to quality (dotted: the RNN's final)")
        ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def short_name(name: str, task: str) -> str:
    """A run's name without its task and model: what sets it apart in a legend."""
    return name.removeprefix(f"{task}-").removeprefix("pcode-").removeprefix("rnn-")


def time_to_quality(folders: dict[str, Path], rows: list[dict]) -> list[str]:
    """Per task, when each PC-ODE run first reached the RNN run's final test MSE, against the RNN's time."""
    out = []
    for task in ("circles", "billiards2d"):
        # The RNN trained from fresh weights, as the authors train it.
        rnns = [r for r in rows if r["task"] == task and r["kind"] == "rnn" and not r["shipped"]
                and not r.get("head_start_s")]
        if not rnns:
            continue
        rnn = timed(folders[rnns[0]["name"]])
        goal, budget = rnn[-1]["test_mse_model_units"], rnn[-1]["train_s"]
        for r in rows:
            if r["task"] != task or r["kind"] != "pcode" or r["shipped"] or r["data"] != rnns[0]["data"]:
                continue  # the metrics' test MSE must be on the RNN's test trajectories
            m = timed(folders[r["name"]])
            hit = next((x for x in m if x["test_mse_model_units"] <= goal), None)
            when = "never" if hit is None else f"{hit['train_s'] / 60:.1f} min (step {hit['step']})"
            out.append(f"| {TASK_NAMES[task]} | {r['name']} | {goal:.3e} | {budget / 60:.1f} min | {when} | "
                       f"{'yes' if hit and hit['train_s'] <= budget else 'no'} |")
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="*", type=Path, help="run folders")
    p.add_argument("--zoo", action="store_true", help="add the shipped models of the same tasks")
    p.add_argument("--out", type=Path, default=Path("runs/frontier"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    folders = {f.name: f for f in args.runs
               if (f / ckpt.CONFIG).is_file() and ((f / ckpt.CHECKPOINT).is_file() or (f / CACHE).is_file())}
    rows = [score(f, name, False) for name, f in sorted(folders.items())]
    tasks = {r["task"] for r in rows}
    if args.zoo:
        for name in pretrained.names():
            if name.split("-")[0] in (tasks or TASK_NAMES):  # the coordinate tasks (not planning)
                rows.append(score(pretrained.folder(name), name, True))
    holds = {t: hold_baseline(t) for t in {r["task"] for r in rows}}
    for task in TASK_NAMES:
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: (r["kind"], r["updates"]))
        if not mine:
            continue
        print(f"\n### {TASK_NAMES[task]} (hold the last frame: test MSE {holds[task]:.3e})\n")
        print("| run | model | updates / rollout | test MSE | x the shipped RNN's (95% interval) | "
              "event recall (in teacher forcing; by chance) | collisions + 1 | weights (step) | train min | command |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        rnn = next((r for r in mine if r["name"] == f"pretrained:{task}-rnn"), None)
        for r in mine:
            versus = "-"
            if rnn is not None and r is not rnn:  # a pairing needs the same test trajectories
                versus = "- (other data)" if r["data"] != rnn["data"] else "{:.2f} ({:.2f}-{:.2f})".format(
                    *mse_ratio(torch.tensor(r["mse_each"]), torch.tensor(rnn["mse_each"])))
            recall = f"{r['event_recall']:.2f}" if "event_recall" in r else "-"
            if "forcing_recall" in r:
                recall += f" ({r['forcing_recall']:.2f}; {r['chance_recall']:.2f})"
            c1 = f"{r['collisions_plus_1']:.2f}" if "collisions_plus_1" in r else "-"
            minutes = f"{r['train_s'] / 60:.0f}" if "train_s" in r else "-"
            where = "shipped" if r["shipped"] else f"{r['weights']} ({r['step']})"
            if not r["shipped"] and r.get("trained_steps", 0) < r.get("planned_steps", 0):
                where += f", stopped at {r['trained_steps']} of {r['planned_steps']}"
            print(f"| {r['name']} | {LABELS.get(r['kind'], r['kind'])} | {r['updates']:.2f} | {r['mse']:.3e} | "
                  f"{versus} | {recall} | {c1} | {where} | {minutes} | `{r['command']}` |")
        where = by_frame(mine)
        if where:
            print(f"\n#### {TASK_NAMES[task]}: test MSE by frames after the burn-in\n")
            split = ["1-5, no collision in them", "1-5, a collision"] if "billiards" in task else []
            late = f"step size {BANDS[-1][0] + 1}- (x the data's)"
            print("| run | model | updates / rollout | " + " | ".join(
                [f"{a + 1}-{b}" if b else f"{a + 1}-" for a, b in BANDS] + [late] + split) + " |")
            print("|---|---|---|" + "---|" * (len(BANDS) + 1 + len(split)))
            print("\n".join(where))
    ttq = time_to_quality(folders, rows)
    if ttq:
        print("\n### Time to quality\n")
        print("| task | PC-ODE run | RNN's final test MSE | RNN's training time | PC-ODE first reached it | in time |")
        print("|---|---|---|---|---|---|")
        print("\n".join(ttq))
    draw_frontier(args.out / "frontier.png", rows, holds)
    draw_time(args.out / "time_to_quality.png", folders, rows)
    runs = [{k: v for k, v in r.items() if k not in ("mse_each", "mse_by_frame", "mse_first_calm", "mse_first_bounce")}
            for r in rows]
    ckpt.write_json(args.out / "frontier.json", {"runs": runs, "hold": holds})
    print(f"\nwrote {args.out / 'frontier.png'}, {args.out / 'time_to_quality.png'}, {args.out / 'frontier.json'}")


if __name__ == "__main__":
    main()
