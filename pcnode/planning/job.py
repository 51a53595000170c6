"""The billiards planning experiment behind `pcnode plan`: every planner on the same
problems, its success against the candidate budget, and animations of plans.

The planners and problems are `pcnode.planning`; this module trains or loads the models,
runs the comparison and writes `plan_results.json`, `plan_budget.png` and GIFs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle

from .. import checkpoint as ckpt
from .. import planning as pl
from .. import pretrained
from ..checkpoint import load_run
from ..config import TrainConfig
from ..data import DATA_DIR, FileData, save_npz
from ..errors import ConfigError
from ..kinds import build_model
from ..model import MODEL_NAMES, MODELS, PAPER_MODELS, ModelConfig, SequenceModel
from ..plotting import COLORS, grab, save_figure, save_gif, table
from ..progress import bar
from ..segments import SegmentRule
from ..tasks import BALL_RADIUS
from ..train import fit


@dataclass
class PlanningRun:
    """What `run_planning` does; see `pcnode plan --help` for each setting."""

    out: Path = Path("runs/plan")
    problems: int = 500  # planning problems, drawn from `seed`
    seed: int = 0  # seed of the problems and the candidates
    models: list[str] = field(default_factory=lambda: list(PAPER_MODELS))  # KIND or NAME=RUN[,RUN...]
    ensemble: int = 1  # models per KIND trained here, seeded seed, seed+1, ...
    plan: pl.PlanConfig = field(default_factory=pl.PlanConfig)
    budgets: list[int] = field(default_factory=lambda: [8, 32])  # more candidates-per-round for the curve
    gifs: int = 3  # problems to animate
    # Models trained here, on planning data:
    train_steps: int = 800
    train_batch: int = 128
    train_n: int = 5000  # planning trajectories
    train_seed: int = 1  # seed of those trajectories
    train_decay_every: int = 1000
    hidden: int = ModelConfig.hidden  # width of the encoder, decoder and GRU state
    feed_predictions: float = 0.0  # a PC-ODE's probability of reading its own predicted frame
    epsilon: float = pl.SKIP_EPSILON  # a PC-ODE's skip threshold
    # Models trained here read the cue velocity as a known input with the first frame and
    # roll out from that one frame, instead of from N_BURN simulated frames of the shot.
    actions_as_inputs: bool = False

    def validate(self) -> PlanningRun:
        self.plan.validate()
        if self.problems < 1 or self.gifs < 0:
            raise ConfigError(f"need `problems` >= 1 and `gifs` >= 0, got {self.problems} and {self.gifs}")
        if not 0 <= self.feed_predictions <= 1:  # also refuses NaN
            raise ConfigError(f"need 0 <= `feed_predictions` <= 1, got {self.feed_predictions}")
        if not self.epsilon >= 0:  # also refuses NaN
            raise ConfigError(f"need `epsilon` >= 0, got {self.epsilon}")
        if self.ensemble < 1:
            raise ConfigError(f"need `ensemble` >= 1 models per kind, got {self.ensemble}")
        if self.train_decay_every < 1:
            raise ConfigError(f"need `train_decay_every` >= 1 steps, got {self.train_decay_every}")
        ModelConfig(state_dim=4, hidden=self.hidden, latent=self.hidden).validate()
        return self


def run_planning(run: PlanningRun) -> dict[str, dict]:
    """Train or load the models, plan every problem with every planner at every budget,
    and write the results into `run.out`. Returns each planner's summary at `run.plan`'s budget."""
    run.validate()
    specs = [_model_spec(s) for s in run.models]  # every entry checked before anything is written
    run.out.mkdir(parents=True, exist_ok=True)
    # name -> [(model, run folder)], one per ensemble member
    models = {
        name: [_plan_model(name, folder, k, run) for k, folder in enumerate(folders or [None] * run.ensemble)]
        for name, folders in specs
    }
    problems = pl.make_problems(run.problems, run.seed)
    predictors = {
        "simulator": pl.simulator_predictor,
        **{n: [pl.model_predictor(m) for m, _ in ms] for n, ms in models.items()},
        "random": None,
    }
    curve: dict[str, list[dict]] = {name: [] for name in predictors}
    for c in sorted({*run.budgets, run.plan.candidates}):
        cfg = dataclasses.replace(run.plan, candidates=c).validate()
        with bar(True, total=len(problems), desc=f"plan, {cfg.budget} candidates", unit="problem") as shown:
            results = pl.compare(predictors, problems, cfg, seed=run.seed, progress=shown.update)
        for name, res in results.items():
            curve[name].append({"budget": cfg.budget, **res.summary()})
        if c == run.plan.candidates:
            chosen = results
    summary = {name: res.summary() for name, res in chosen.items()}
    ckpt.write_json(
        run.out / "plan_results.json",
        {
            "planners": summary,
            "budget_curve": curve,
            "setup": {
                "problems": run.problems,
                "seed": run.seed,
                "plan": dataclasses.asdict(run.plan),
                "models": {n: [folder for _, folder in ms] for n, ms in models.items()},
                "actions_as_inputs": {n: [pl.reads_actions(m) for m, _ in ms] for n, ms in models.items()},
                "constants": {
                    k: getattr(pl, k)
                    for k in (
                        "HORIZON",
                        "N_BURN",
                        "SPEED_RANGE",
                        "TARGET_RADIUS",
                        "MIN_TARGET_TRAVEL",
                        "SIM_DT",
                        "EVERY",
                    )
                },
            },
        },
    )
    plot_budget_curve(run.out / "plan_budget.png", curve)
    times = np.arange(0, pl.HORIZON + 1e-6, 0.4)
    for i in range(min(run.gifs, len(problems))):
        shown = {}
        for name, res in chosen.items():
            model = models[name][0][0] if name in models else None  # an ensemble's first member
            shown[name] = (*trace(problems.cue[i], problems.obj[i], res.actions[i], times, model), bool(res.success[i]))
        plan_gif(run.out / f"plan_{i}.gif", problems.cue[i], problems.obj[i], problems.target[i], times, shown)
    return summary


def _model_spec(spec: str) -> tuple[str, list[str]]:
    """`KIND` -> (KIND, []); `NAME=RUN[,RUN...]` -> (NAME, the run folders or pretrained:NAMEs)."""
    name, eq, runs = spec.partition("=")
    folders = [r for r in runs.split(",") if r]
    if name in ("simulator", "random") or not name or (eq and not folders):
        raise ConfigError(
            f"bad `models` entry '{spec}': give KIND or NAME=RUN_DIR[,RUN_DIR...], NAME not simulator or random"
        )
    for folder in folders:
        pretrained.resolve(folder)  # an unknown shipped model is refused before anything is written
    return name, folders


def _plan_model(name: str, folder: str | None, member: int, run: PlanningRun) -> tuple[SequenceModel, str]:
    """A model for the planner: loaded from `folder`, or trained here on planning data into
    OUT/NAME (ensemble member 0) or OUT/NAME-K (member K-1), seeded seed + member."""
    if folder is not None:
        model, _ = load_run(pretrained.resolve(folder))
        n_burn = model.rule.n_burn
        # A model reads the action through N_BURN simulated frames, or as an input with one frame.
        if model.config.state_dim != 4 or (n_burn, model.config.input_dim) not in (
            (pl.N_BURN, 0),
            (1, pl.ACTION_INPUTS),
        ):
            raise ConfigError(
                f"{folder} is not a billiards planning model ({pl.N_BURN} burn-in frames, or one "
                f"frame and the action as input); train one with `pcnode plan --models "
                f"{model.config.kind}`"
            )
        return model, folder
    if name not in MODELS:
        raise ConfigError(f"'{name}' is not a model kind ({', '.join(MODELS)}); give a trained run as {name}=RUN_DIR")
    suffix = "-actions" if run.actions_as_inputs else ""
    path = DATA_DIR / f"billiards_plan-n{run.train_n}-seed{run.train_seed}{suffix}.npz"
    if not path.exists():
        x, actions = pl.plan_data_actions(run.train_n, run.train_seed)
        save_npz(
            path, **({"x": x, "inputs": pl.action_inputs(actions, x.shape[1])} if run.actions_as_inputs else {"x": x})
        )
    data = FileData(str(path))
    train, test = data.split()
    steps = run.train_steps
    n_burn, inputs = (1, pl.ACTION_INPUTS) if run.actions_as_inputs else (pl.N_BURN, 0)
    cfg = TrainConfig(
        steps=steps,
        batch_size=run.train_batch,
        decay_every=run.train_decay_every,
        eval_every=max(1, steps // 4),
        eval_size=256,
        checkpoint_every=max(1, steps // 4),
        seed=run.seed + member,
        epsilon=run.epsilon,
        feed_predictions=run.feed_predictions if name == "pcode" else 0.0,  # the flag is the PC-ODE's
    )
    model = build_model(
        ModelConfig(kind=name, state_dim=4, input_dim=inputs, hidden=run.hidden, latent=run.hidden), seed=cfg.seed
    )
    out = run.out / (name if member == 0 else f"{name}-{member + 1}")
    fit(
        model,
        train,
        cfg,
        rule=SegmentRule(n_burn=n_burn),
        test=test,
        run_dir=out,
        resume=(out / ckpt.CHECKPOINT).exists(),
        data=dataclasses.asdict(data),
        progress=f"train {out.name}",
    )
    return model.eval(), str(out)


@torch.no_grad()
def trace(
    cue: np.ndarray, obj: np.ndarray, action: np.ndarray, times: np.ndarray, model: SequenceModel | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """True states (Q, 4) under `action` at `times` (frames, multiples of 1/EVERY), and `model`'s
    prediction (Q, 4) under it (the true frames during its burn-in), or None."""
    fine = pl.simulate_actions(cue, obj, action[None], int(round(times.max() * pl.EVERY)) + 1, every=1)[0]
    true = fine[np.round(times * pl.EVERY).astype(int)]
    if model is None:
        return true, None
    start, ro = pl.model_rollout(model, cue, obj, action[None])
    pred = ro.at(torch.as_tensor(times, dtype=torch.float32))[0].numpy()
    burn = times <= start.shape[1] - 1
    pred[burn] = true[burn]
    return true, pred


def planner_colors(names: list[str]) -> dict[str, str | None]:
    """A plot colour per planner: the models' usual ones, black for the simulator, grey for
    random, and colours none of those use for planners named by the user (`NAME=RUN`)."""
    known = {**COLORS, "simulator": "black", "random": "0.5"}
    spare = iter(["tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"])
    return {name: known.get(name) or next(spare, None) for name in names}


def plot_budget_curve(path: Path, curve: dict[str, list[dict]]) -> None:
    """Tasks solved vs planning budget: success (with 95% intervals) and wall time per plan.

    Args:
        curve: planner name -> rows with `budget`, `success`, `ci95` and `wall_s_per_plan`.
    """
    colors = planner_colors(list(curve))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, rows in curve.items():
        b = [r["budget"] for r in rows]
        s = np.array([r["success"] for r in rows])
        ci = np.array([r["ci95"] for r in rows]).reshape(-1, 2)
        label = MODEL_NAMES.get(name, name)
        left.errorbar(
            b, s, yerr=[s - ci[:, 0], ci[:, 1] - s], marker="o", capsize=3, color=colors.get(name), label=label
        )
        right.plot(b, [r["wall_s_per_plan"] for r in rows], marker="o", color=colors.get(name), label=label)
    budgets = sorted({r["budget"] for rows in curve.values() for r in rows})
    for ax in (left, right):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_xlabel("candidate actions per plan")
    left.set_ylabel("tasks solved")
    left.set_ylim(0, 1)
    right.set_ylabel("wall time per plan (s)")
    right.set_yscale("log")
    left.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plan_gif(
    path: Path,
    cue: np.ndarray,
    obj: np.ndarray,
    target: np.ndarray,
    times: np.ndarray,
    shown: dict[str, tuple[np.ndarray, np.ndarray | None, bool]],
    fps: int = 12,
) -> None:
    """Animate one problem as each planner solved it, one panel per planner.

    Args:
        cue, obj, target: (2,) positions of the problem.
        times: (Q,) animation times in frames.
        shown: planner name -> (true states (Q, 4) under its chosen action, the model's
            predicted states (Q, 4) or None, whether the plan succeeded). True balls are
            filled, predicted balls are outlines; lines trace the object ball's paths.
    """
    fig, axes = plt.subplots(1, len(shown), figsize=(2.7 * len(shown), 3.0), squeeze=False)
    frames = []
    for q, tq in enumerate(times):
        for ax, (name, (true, pred, ok)) in zip(axes[0], shown.items()):
            table(ax)
            ax.set_title(
                f"{MODEL_NAMES.get(name, name)}: {'hit' if ok else 'miss'}  t={tq:4.1f}",
                fontsize=9,
                color="tab:green" if ok else "tab:red",
            )
            ax.add_patch(Circle(tuple(target), pl.TARGET_RADIUS, color="tab:green", alpha=0.35))
            ax.plot(true[: q + 1, 2], true[: q + 1, 3], color="tab:blue", lw=1)
            for k, color in ((0, "tab:orange"), (1, "tab:blue")):
                ax.add_patch(Circle(tuple(true[q, 2 * k : 2 * k + 2]), BALL_RADIUS, color=color, alpha=0.8))
            if pred is not None:
                ax.plot(pred[: q + 1, 2], pred[: q + 1, 3], "--", color="tab:blue", lw=1)
                for k, color in ((0, "tab:orange"), (1, "tab:blue")):
                    ax.add_patch(
                        Circle(tuple(pred[q, 2 * k : 2 * k + 2]), BALL_RADIUS, fill=False, ls="--", lw=1.5, color=color)
                    )
        frames.append(grab(fig))
    plt.close(fig)
    save_gif(path, frames, fps)
