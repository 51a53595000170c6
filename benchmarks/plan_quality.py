"""Planning figures that are too slow for the tests; prints JSON lines.

1. The random floor against the target radius (how `TARGET_RADIUS` was chosen: random
   actions should succeed about as often as in the paper, about 9%), on 3000 problems
   of seed 123, a set disjoint from the evaluation seed 0.
2. The four planted straight shots of tests/test_plan.py, planned by every trained model
   in the run folders given on the command line (e.g. runs/plan/pcode runs/plan/rnn);
   runs joined by commas (runs/plan/pcode,runs/plan/pcode-2) are an ensemble, scored
   by its members' mean as the planner does.
3. Each model's accuracy in the planner's own terms, on 200 problems of seed 123 with 64
   shots each, aimed at the object ball or uniformly random (as in a planner's first
   round): the median error of its predicted closest approach of the object ball to the
   target, and how often a shot it predicts to succeed (closest approach within
   `TARGET_RADIUS`) succeeds in the simulator. A planner picks exactly such shots.

    python benchmarks/plan_quality.py runs/plan/pcode runs/plan/rnn runs/plan/odernn
"""

import json
import sys

import numpy as np
import torch

from pcnode import load_run
from pcnode import planning as pl

torch.set_num_threads(1)

problems = pl.make_problems(3000, seed=123)
actions = np.stack([pl.random_actions(np.random.default_rng([0, i]), 1)[0] for i in range(len(problems))])
chosen_radius = pl.TARGET_RADIUS
for radius in (0.05, 0.07, 0.1, 0.15):
    pl.TARGET_RADIUS = radius
    success = float(pl.succeeded(problems, actions).mean())
    print(json.dumps({"random_floor": {"target_radius": radius, "success": success}}))
pl.TARGET_RADIUS = chosen_radius

centre = np.array([0.5, 0.5])
way = np.array([[1, 1], [-1, 1], [1, -1], [-1, -1]]) / np.sqrt(2)
planted = pl.Problems(centre - 0.53 * way, centre - 0.07 * way, centre + 0.42 * way, seed=-1)
# name -> the predictors of its ensemble (one for a single run)
ensembles = {spec: [pl.model_predictor(load_run(run)[0]) for run in spec.split(",")] for spec in sys.argv[1:]}
predictors = {"simulator": pl.simulator_predictor, **ensembles}
for name, res in pl.compare(predictors, planted, pl.PlanConfig()).items():
    print(json.dumps({"planted": {"planner": name, "solved": int(res.success.sum()), "of": len(planted)}}))

problems = pl.make_problems(200, seed=123)
shots = 64
rng = np.random.default_rng(0)
cue, obj = np.repeat(problems.cue, shots, 0), np.repeat(problems.obj, shots, 0)
target = torch.from_numpy(np.repeat(problems.target, shots, 0))
shot_sets = {"aimed": pl.aimed_actions(rng, cue, obj), "uniform": pl.random_actions(rng, len(cue))}


def approach(paths: pl.Paths) -> torch.Tensor:
    """(N,) closest approach of every shot's object ball to its own problem's target."""
    return pl.closest_approach(paths.frames, target[:, None]).double()


for kind, actions in shot_sets.items():
    fine = pl.simulate_actions(cue, obj, actions, pl.HORIZON * pl.EVERY + 1, every=1)
    truth = approach(pl.Paths(torch.from_numpy(fine), None))
    for run, members in ensembles.items():
        with torch.no_grad():
            guess = torch.stack([approach(predict(cue, obj, actions)) for predict in members]).mean(0)
        said_yes = guess <= pl.TARGET_RADIUS
        print(json.dumps({"accuracy": {
            "model": run, "shots": kind, "n": len(actions),
            "median_abs_error": round(float((guess - truth).abs().median()), 4),
            "predicted_hits": int(said_yes.sum()),
            "true_among_predicted_hits": round(float((truth[said_yes] <= pl.TARGET_RADIUS).double().mean()), 3),
            "true_hits": int((truth <= pl.TARGET_RADIUS).sum())}}))
