"""The paper's experiments in one call: every model on every task, scored, drawn, reported.

`reproduce` trains each (task, model) pair into its own run folder,
`OUT/runs/TASK-MODEL`, where MODEL is one of the paper's three (the default) or a peer
a user might pick instead (`VARIANTS`), evaluates it on the held-out trajectories the way the authors
do (`pcnode.evaluate`), and writes into `OUT`:

    results.csv, results.md   per task and model: test MSE, mean dt, updates per
                              rollout (and the RNN's over the model's), ODE-RNN NFE
                              and accepted solver steps,
                              training and rollout wall time; published figures and
                              the small-budget targets beside ours (`paper`)
    ablation.csv              the trained PC-ODE forced to constant dt values
    figures/                  Lines/Circles panels, training curves, the constant-dt
                              ablation, billiards read at 4x the frame rate, pixel strips
    gifs/                     Billiards2D and PixelBilliards2D rollouts beside the truth

A pair whose checkpoint has reached its step count is not trained again, and one
that was cut short resumes from its checkpoint, so an interrupted call picks up where
it stopped. Every model uses the authors' MLP encoder and decoder, also on pixels.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import checkpoint as ckpt
from ..checkpoint import comparable, load_run, read_metrics, run_config
from ..config import TrainConfig
from ..data import DATA_DIR, split, task_data
from ..errors import CheckpointError, ConfigError
from ..evaluate import evaluate, event_recall
from ..forcing import forced_mean_dt
from ..kinds import build_model
from ..model import MODEL_NAMES, PAPER_MODELS, PCODE, ModelConfig, SequenceModel
from ..rollout import rollout
from ..segments import SegmentRule, mean_square_change
from ..tasks import TASKS, collisions
from .animations import pixel_gif, rollout_gif
from .figures import plot_ablation, plot_curves, plot_paths, plot_pixel_strip, plot_time_series
from .paper import results_markdown
from .progress import fit_with_bar

BUDGETS = ("small", "paper")


@dataclass(frozen=True)
class Variant:
    """A model `reproduce` trains, by name: its kind, the ODE-RNN's solver and field penalty."""

    kind: str
    label: str
    solver: str = ModelConfig.solver
    field_penalty: float = 0.0


# Weight of the ODE-RNN's field regulariser in `odernn-kinetic`: at initialisation on
# Billiards2D the regulariser is about 15 and the displacement loss about 1e-3, so 1e-4
# makes the two terms start at the same size (Finlay et al. weigh theirs against a loss
# of order 1 with 0.01).
KINETIC_WEIGHT = 1e-4

# The paper's three models, then the peers a user might pick instead (the `peers` extra):
# CfC, and the ODE-RNN with torchode's per-trajectory adaptive steps, plain and with its
# field regularised so that the solver can take long steps.
VARIANTS = {
    "pcode": Variant("pcode", MODEL_NAMES["pcode"]),
    "rnn": Variant("rnn", MODEL_NAMES["rnn"]),
    "odernn": Variant("odernn", MODEL_NAMES["odernn"]),
    "cfc": Variant("cfc", MODEL_NAMES["cfc"]),
    "odernn-adaptive": Variant("odernn", "ODE-RNN, torchode dopri5", solver="torchode-dopri5"),
    "odernn-kinetic": Variant(
        "odernn", "ODE-RNN, torchode dopri5, regularised", solver="torchode-dopri5", field_penalty=KINETIC_WEIGHT
    ),
}
PEERS = ("cfc", "odernn-adaptive", "odernn-kinetic")


@dataclass(frozen=True)
class TaskPlan:
    """Data and optimisation one task gets under a budget."""

    n: int
    steps: int
    batch_size: int
    decay_every: int = 0  # 0: decay the rate 8 times over the run


# The small budget fits all 18 trainings in under an hour on a 2-core CPU with one
# thread; Lines keeps the authors' batch and rate schedule, and pixels the MLP encoder
# (why: docs/performance.md, "Choices in the code").
SMALL = {
    "lines": TaskPlan(n=2000, steps=300, batch_size=256, decay_every=1000),
    "circles": TaskPlan(n=2000, steps=1500, batch_size=64),
    "billiards1d": TaskPlan(n=2000, steps=1200, batch_size=64),
    "billiards2d": TaskPlan(n=4000, steps=1500, batch_size=64),
    "pixel_billiards1d": TaskPlan(n=1000, steps=600, batch_size=64),
    "pixel_billiards2d": TaskPlan(n=1500, steps=800, batch_size=64),
}
PAPER = TaskPlan(n=10_000, steps=25_000, batch_size=256)

ABLATION_DTS = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class ReproduceConfig:
    """What `reproduce` runs; saved as `OUT/reproduce.json`.

    `steps` and `n`, when positive, override every task's step count and number of
    trajectories (for quick checks); 0 keeps the budget's.
    """

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    models: list[str] = field(default_factory=lambda: list(PAPER_MODELS))  # names in VARIANTS
    budget: str = "small"
    device: str = "cpu"
    seed: int = 0
    steps: int = 0
    n: int = 0

    def validate(self) -> ReproduceConfig:
        for name, given, known in (("task", self.tasks, TASKS), ("model", self.models, VARIANTS)):
            unknown = [g for g in given if g not in known]
            if unknown or not given:
                raise ConfigError(f"unknown or no {name}s {unknown}; choose from: {', '.join(known)}")
        if self.budget not in BUDGETS:
            raise ConfigError(f"unknown budget '{self.budget}'; choose one of: {', '.join(BUDGETS)}")
        if self.steps < 0 or self.n < 0:
            raise ConfigError("steps and n must be 0 (the budget's) or positive")
        if 0 < self.n < 20:
            raise ConfigError(f"n = {self.n} leaves too few test trajectories; use at least 20")
        return self

    def plan(self, task: str) -> TaskPlan:
        base = SMALL[task] if self.budget == "small" else PAPER
        return TaskPlan(
            n=self.n or base.n, steps=self.steps or base.steps, batch_size=base.batch_size, decay_every=base.decay_every
        )

    def train_config(self, task: str) -> TrainConfig:
        p = self.plan(task)
        # The authors decay the rate 25 times over 25k steps; a short budget decays it
        # 8 times, so it still ends low without starving the first steps.
        decays = 25 if self.budget == "paper" else 8
        return TrainConfig(
            steps=p.steps,
            batch_size=p.batch_size,
            decay_every=p.decay_every or max(1, p.steps // decays),
            eval_every=max(1, p.steps // 10),
            eval_size=256,
            checkpoint_every=max(1, p.steps // 10),
            seed=self.seed,
            device=self.device,
        )


class FixedDt(PCODE):
    """A trained PC-ODE forced to update every `dt` frames: the constant-dt ablation."""

    def __init__(self, trained: PCODE, dt: float):
        super().__init__(trained.config)
        self.load_state_dict(trained.state_dict())
        self.rule = trained.rule.replace(min_dt=min(dt, trained.rule.min_dt), max_dt=max(dt, trained.rule.max_dt))
        self.dt = dt

    def dt_raw(self, h: Tensor) -> Tensor:
        return h.new_full((h.shape[0], 1), self.dt)


def reproduce(config: ReproduceConfig, out: str | Path, data_dir: str | Path | None = DATA_DIR) -> Path:
    """Train, evaluate, draw and report every model on every task of `config` into `out`.

    Main arguments:
        config: tasks, models, budget, device, seed.
        out: the report folder; run folders go to `out/runs`.

    Other arguments:
        data_dir: where generated task data is cached (None: not cached).

    Returns `out`.
    """
    config.validate()
    out = Path(out)
    for sub in ("runs", "figures", "gifs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    ckpt.write_json(
        out / "reproduce.json",
        {"config": dataclasses.asdict(config), "plans": {t: dataclasses.asdict(config.plan(t)) for t in config.tasks}},
    )
    rows, ablation = [], []
    total = len(config.tasks) * len(config.models)
    for ti, task in enumerate(config.tasks):
        plan = config.plan(task)
        arrays = task_data(task, plan.n, config.seed, cache_dir=data_dir)
        x_train, x_test = split(arrays["x"], 0.1)
        spec = {"task": task, "n": plan.n, "seed": config.seed, "test_fraction": 0.1}
        models, curves = {}, {}
        change = mean_square_change(x_train)
        for mi, kind in enumerate(config.models):
            label = f"[{ti * len(config.models) + mi + 1}/{total}] {task} {kind}"
            run = out / "runs" / f"{task}-{kind}"
            model, metrics = _train_and_score(kind, x_train, x_test, config.train_config(task), run, spec, label)
            models[kind] = model
            curves[kind] = read_metrics(run / ckpt.METRICS)
            threshold = SegmentRule.resolve(models[kind].rule, change).threshold  # in the data's units
            rows.append(
                {
                    "task": task,
                    "model": kind,
                    "label": VARIANTS[kind].label,
                    "n_train": len(x_train),
                    "n_test": len(x_test),
                    "steps": plan.steps,
                    "batch_size": plan.batch_size,
                    "epsilon": threshold if kind == "pcode" else math.nan,
                    **metrics,
                }
            )
        plot_curves(out / "figures" / f"curves_{task}.png", curves)
        _draw_task(out, task, models, x_test)
        if "pcode" in models:
            ablation += _ablation(task, models["pcode"], x_test)
    _ratios(rows)
    _write_csv(out / "results.csv", rows)
    _write_csv(out / "ablation.csv", ablation)
    if ablation:
        plot_ablation(out / "figures" / "ablation_constant_dt.png", ablation, rows)
    ckpt.write_text(out / "results.md", results_markdown(config.budget, config.device, config.seed, rows, ablation))
    return out


def _train_and_score(
    name: str, x_train: Tensor, x_test: Tensor, tcfg: TrainConfig, run: Path, spec: dict, label: str
) -> tuple[SequenceModel, dict]:
    """Train one pair unless its run folder is finished, then score it (scores are cached in eval.json)."""
    variant = VARIANTS[name]
    tcfg = dataclasses.replace(tcfg, field_penalty=variant.field_penalty)
    kind = variant.kind
    model = build_model(ModelConfig(kind=kind, state_dim=x_train.shape[-1], solver=variant.solver), seed=tcfg.seed)
    step = _saved_step(run, run_config(model, tcfg, model.rule, spec))
    if step < tcfg.steps:
        if step == 0:
            # Cut short before its first checkpoint: nothing to resume, start afresh.
            for name in (ckpt.CONFIG, ckpt.METRICS):
                (run / name).unlink(missing_ok=True)
        fit_with_bar(model, x_train, x_test, tcfg, run, spec, resume=step > 0, label=label)
    model, _ = load_run(run, device=tcfg.device)
    cached = run / "eval.json"
    if cached.exists():
        saved = ckpt.read_json(cached)
        if saved.get("step") == tcfg.steps and saved.get("trajectories") == len(x_test):
            return model, saved["metrics"]
    x_test = x_test.to(tcfg.device)
    scores = evaluate(model, x_test)
    theirs = evaluate(model, x_test, protocol="authors")
    metrics = {
        "mse": scores["mse"],
        "mean_dt": scores["mean_dt"],
        "updates": scores["updates"],
        "mse_authors": theirs["mse"],
        "mean_dt_authors": forced_mean_dt(model, x_test, config=tcfg),
        "nfe": scores["nfe"] if kind == "odernn" else math.nan,
        "solver_steps": scores["solver_steps"] if kind == "odernn" else math.nan,
        "train_s": read_metrics(run / ckpt.METRICS)[-1]["train_s"],
        "rollout_s_per_1024": scores["rollout_s"] * 1024 / len(x_test),
        **_events(spec, model, x_test),
    }
    ckpt.write_json(cached, {"model": name, "trajectories": len(x_test), "step": tcfg.steps, "metrics": metrics})
    return model, metrics


def _events(spec: dict, model: SequenceModel, x_test: Tensor) -> dict:
    """On the coordinate billiards tasks: collisions after the burn-in + 1 (the fewest updates
    that follow every collision) and the event recall (`pcnode.evaluate.event_recall`)."""
    if spec["task"] not in ("billiards1d", "billiards2d"):
        return {"collisions_plus_1": math.nan, "event_recall": math.nan}
    events = torch.as_tensor(collisions(spec["task"], spec["n"], spec["seed"]))[-len(x_test) :].to(x_test.device)
    n_burn = model.rule.n_burn
    ro = rollout(model, x_test[:, :n_burn], horizon=x_test.shape[1] - 1)
    return {
        "collisions_plus_1": (events[:, n_burn:].sum(1) + 1).double().mean().item(),
        "event_recall": event_recall(ro, events),
    }


def _saved_step(run: Path, cfg: dict) -> int:
    """The step `run`'s checkpoint reached (0 if none); refuse a run made with other settings."""
    path = run / ckpt.CHECKPOINT
    if not path.exists():
        return 0
    if comparable(ckpt.read_run_config(run)) != comparable(cfg):
        raise CheckpointError(
            f"{run} was trained with other settings (budget, seed or data); "
            "reproduce into another --out or delete that run folder"
        )
    _, meta = ckpt.load_tensors(path)
    return int(meta["step"])


def _ratios(rows: list[dict]) -> None:
    """Add each row's RNN updates over its own (how many times fewer steps than the RNN)."""
    rnn = {r["task"]: r["updates"] for r in rows if r["model"] == "rnn"}
    for r in rows:
        r["rnn_updates_ratio"] = rnn[r["task"]] / r["updates"] if r["task"] in rnn else math.nan


@torch.no_grad()
def _ablation(task: str, model: PCODE, x_test: Tensor) -> list[dict]:
    """Test MSE of the trained PC-ODE forced to each constant dt in `ABLATION_DTS`."""
    device = next(model.parameters()).device
    rows = []
    for dt in ABLATION_DTS:
        fixed = FixedDt(model, dt).to(device)
        s = evaluate(fixed, x_test.to(device))
        rows.append({"task": task, "dt": dt, "mse": s["mse"], "updates": s["updates"]})
    return rows


@torch.no_grad()
def _draw_task(out: Path, task: str, models: dict[str, SequenceModel], x_test: Tensor) -> None:
    """The figures and GIFs of one task (which ones depends on the task)."""
    first = next(iter(models.values()))
    device, n_burn = next(first.parameters()).device, first.rule.n_burn
    seqs = x_test[:3].to(device)
    T = seqs.shape[1]
    every = 0.25  # 4x the data's frame rate
    times = torch.arange(n_burn - 1, T - 1 + 1e-6, every, dtype=seqs.dtype, device=device)
    reads, update_times = {}, {}
    for name, model in models.items():
        ro = rollout(model, seqs[:, :n_burn], horizon=T - 1)
        reads[name] = ro
        chosen = ro.t[0, n_burn - 1 :]
        update_times[name] = chosen[torch.isfinite(chosen)].cpu().numpy()
    truth = seqs.cpu().numpy()
    fig = out / "figures"
    if task in ("lines", "circles"):
        paths = {name: (times.cpu().numpy(), ro.at(times).cpu().numpy()) for name, ro in reads.items()}
        updates = {}
        if "pcode" in reads:
            ro = reads["pcode"]
            chosen = ro.t[:, n_burn - 1 :]
            t_up = torch.where(torch.isfinite(chosen), chosen, chosen.new_full((), float(n_burn - 1)))
            updates["pcode"] = ro.at(t_up).cpu().numpy()
        plot_paths(
            fig / f"{task}.png",
            truth,
            n_burn,
            paths,
            updates,
            title=f"{task}: truth (grey), burn-in (black), rollouts; circles mark PC-ODE updates",
        )
        return
    frame_t = np.arange(T, dtype=np.float32)
    if not task.startswith("pixel_"):
        preds = {name: ro.at(times)[0].cpu().numpy() for name, ro in reads.items()}
        plot_time_series(
            fig / f"{task}_4x.png",
            frame_t,
            truth[0],
            times.cpu().numpy(),
            preds,
            update_times,
            n_burn,
            title=f"{task}: rollouts read every {every} frames (4x the data rate)",
        )
        if task == "billiards2d":
            rollout_gif(out / "gifs" / "billiards2d.gif", frame_t, truth[0], times.cpu().numpy(), preds, update_times)
        return
    shown = torch.arange(n_burn, T, 4, dtype=seqs.dtype, device=device)
    strips = {name: ro.at(shown)[0].clamp(0, 1).cpu().numpy() for name, ro in reads.items()}
    side = int(round(math.sqrt(seqs.shape[-1])))
    plot_pixel_strip(
        fig / f"{task}_strip.png", truth[0, shown.long().cpu().numpy()], strips, shown.cpu().numpy(), update_times, side
    )
    if task == "pixel_billiards2d":
        gif_t = torch.arange(0, T, 1, dtype=seqs.dtype, device=device)
        frames = {name: ro.at(gif_t)[0].clamp(0, 1).cpu().numpy() for name, ro in reads.items()}
        for name in frames:
            frames[name][:n_burn] = truth[0, :n_burn]
        pixel_gif(out / "gifs" / "pixel_billiards2d.gif", gif_t.cpu().numpy(), truth[0], frames, update_times, side)


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["task"]
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    ckpt.write_text(path, buf.getvalue())
