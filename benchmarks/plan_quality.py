"""Planning figures that are too slow for the tests; prints JSON lines.

1. The random floor against the target radius (how `TARGET_RADIUS` was chosen: random
   actions should succeed about as often as in the paper, about 9%), on 3000 problems
   of seed 123, a set disjoint from the evaluation seed 0.
2. The four planted straight shots of tests/test_plan.py, planned by every trained model
   in the run folders given on the command line (e.g. runs/plan/pcode runs/plan/rnn).

    python benchmarks/plan_quality.py runs/plan/pcode runs/plan/rnn runs/plan/odernn
"""

import json
import sys

import numpy as np
import torch

from pcnode import load_run
from pcnode import plan as pl

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
predictors = {"simulator": pl.simulator_predictor}
for run in sys.argv[1:]:
    model, _ = load_run(run)
    predictors[run] = pl.model_predictor(model)
for name, res in pl.compare(predictors, planted, pl.PlanConfig()).items():
    print(json.dumps({"planted": {"planner": name, "solved": int(res.success.sum()), "of": len(planted)}}))
