"""The `pcnode plan` command: its flags, and the planning run it starts.

The planning application brings its own subcommand: the command line adds these flags
(`pcnode.flags`) and calls `run` (`pcnode.cli`).
"""

from __future__ import annotations

from pathlib import Path

from ..model import PAPER_MODELS, ModelConfig
from .job import PlanningRun, run_planning
from .planner import PlanConfig
from .problems import N_BURN, SKIP_EPSILON


def add_parser(sub) -> None:
    """`pcnode plan` and its flags, as a subcommand of `sub`."""
    q = sub.add_parser("plan", help="billiards planning: simulator, random and model planners on the same problems")
    q.add_argument("--problems", type=int, default=500, help="planning problems (default %(default)s)")
    q.add_argument("--seed", type=int, default=0, help="seed of the problem set and the candidates")
    q.add_argument(
        "--models",
        nargs="*",
        default=list(PAPER_MODELS),
        help="KIND (trained here on planning data into OUT/KIND, resumed if there) or "
        "NAME=RUN_DIR[,RUN_DIR...] (runs trained on planning data; several make an ensemble); "
        "default: all three kinds",
    )
    q.add_argument(
        "--ensemble",
        type=int,
        default=1,
        help="models per KIND trained here, seeded SEED, SEED+1, ... into OUT/KIND, OUT/KIND-2, ...; "
        "the planner averages their scores (default %(default)s)",
    )
    q.add_argument(
        "--out",
        type=Path,
        default=Path("runs/plan"),
        help="folder of the models trained here, results and GIFs (default %(default)s)",
    )
    q.add_argument("--candidates", type=int, default=128, help="candidates per round (default %(default)s)")
    q.add_argument("--rounds", type=int, default=3, help="rounds; 1 is random shooting (default %(default)s)")
    q.add_argument(
        "--late-penalty",
        type=float,
        default=PlanConfig.late_penalty,
        help="added to a candidate's predicted closest approach per frame it takes to get there: "
        "prefers shots whose outcome the models predict less far ahead (default %(default)s)",
    )
    q.add_argument(
        "--budgets",
        type=int,
        nargs="*",
        default=[8, 32],
        help="further candidates-per-round values for the budget curve (default %(default)s)",
    )
    q.add_argument("--gifs", type=int, default=3, help="problems to animate (default %(default)s)")
    q.add_argument("--train-steps", type=int, default=800, help="steps for models trained here (default %(default)s)")
    q.add_argument("--train-batch", type=int, default=128, help="batch for models trained here (default %(default)s)")
    q.add_argument("--train-n", type=int, default=5000, help="planning trajectories to train on (default %(default)s)")
    q.add_argument(
        "--train-decay-every",
        type=int,
        default=1000,
        help="steps between learning-rate decays (x0.75) for models trained here (default %(default)s)",
    )
    q.add_argument(
        "--hidden",
        type=int,
        default=ModelConfig.hidden,
        help="width of the encoder, decoder and GRU state of models trained here (default %(default)s)",
    )
    q.add_argument("--train-seed", type=int, default=1, help="seed of the training data (default %(default)s)")
    q.add_argument(
        "--feed-predictions",
        type=float,
        default=0.0,
        help="for a PC-ODE trained here: probability that an update reads its own predicted frame "
        "(default %(default)s, the authors' teacher forcing)",
    )
    q.add_argument(
        "--epsilon",
        type=float,
        default=SKIP_EPSILON,
        help="for a PC-ODE trained here: the skip rule's squared-error threshold; smaller ends segments "
        "sooner (default %(default)s, pcnode.planning.SKIP_EPSILON; the authors' is 3e-3)",
    )
    q.add_argument(
        "--actions-as-inputs",
        action="store_true",
        help="models trained here read the cue velocity as a known input with the first frame and plan "
        f"from that one frame, instead of from {N_BURN} simulated frames of each shot",
    )


def run(args) -> None:
    """Run `pcnode plan` with its parsed `args` and print each planner's summary."""
    run = PlanningRun(
        out=args.out,
        problems=args.problems,
        seed=args.seed,
        models=args.models,
        ensemble=args.ensemble,
        plan=PlanConfig(candidates=args.candidates, rounds=args.rounds, late_penalty=args.late_penalty),
        budgets=args.budgets,
        gifs=args.gifs,
        train_steps=args.train_steps,
        train_batch=args.train_batch,
        train_n=args.train_n,
        train_seed=args.train_seed,
        train_decay_every=args.train_decay_every,
        hidden=args.hidden,
        feed_predictions=args.feed_predictions,
        epsilon=args.epsilon,
        actions_as_inputs=args.actions_as_inputs,
    )
    summary = run_planning(run)
    print(f"{'planner':>10} {'models':>6} {'success':>8} {'95% CI':>15} {'s/plan':>8} {'updates/rollout':>16}")
    for name, s in summary.items():
        ups = "-" if s["updates_per_rollout"] is None else f"{s['updates_per_rollout']:.2f}"
        print(
            f"{name:>10} {s['members']:>6} {s['success']:8.3f} {s['ci95'][0]:7.3f}-{s['ci95'][1]:.3f} "
            f"{s['wall_s_per_plan']:8.4f} {ups:>16}"
        )
    print(f"wrote {args.out / 'plan_results.json'}, {args.out / 'plan_budget.png'} and {args.gifs} GIFs")
