"""Billiards planning with learned models: the application of Greydanus, Lee & Fern (2021).

Choose the cue ball's initial velocity so that it strikes the object ball and sends it
into a circular target region within a fixed horizon. `problems` holds the problems,
their shots and the training data; `planner` the planner that scores candidate shots
with a predictor (the true simulator, a model, an ensemble); `job` the planning run
behind `pcnode plan` (models trained or loaded, every planner on the same problems,
tables and figures).

Built on the library, not part of it: nothing in the core package imports it.
"""
from .planner import (Paths, Plan, PlanConfig, PlannerResult, Predictor, Predictors, closest_approach, compare,
                      members, model_predictor, model_rollout, plan, reads_actions, score_actions,
                      simulator_predictor, wilson_interval)
from .problems import (ACTION_INPUTS, AIM_FRACTION, AIM_SPREAD, BALL_RADIUS, EVERY, HORIZON, MIN_TARGET_TRAVEL,
                       N_BURN, SIM_DT, SKIP_EPSILON, SPEED_RANGE, TARGET_RADIUS, Problems, action_inputs,
                       aimed_actions, make_problems, plan_data, plan_data_actions, random_actions, simulate_actions,
                       succeeded)

__all__ = [
    "Paths", "Plan", "PlanConfig", "PlannerResult", "Predictor", "Predictors", "closest_approach", "compare",
    "members", "model_predictor", "model_rollout", "plan", "reads_actions", "score_actions", "simulator_predictor",
    "wilson_interval", "ACTION_INPUTS", "AIM_FRACTION", "AIM_SPREAD", "BALL_RADIUS", "EVERY", "HORIZON",
    "MIN_TARGET_TRAVEL", "N_BURN", "SIM_DT", "SKIP_EPSILON", "SPEED_RANGE", "TARGET_RADIUS", "Problems",
    "action_inputs", "aimed_actions", "make_problems", "plan_data", "plan_data_actions", "random_actions",
    "simulate_actions", "succeeded",
]
