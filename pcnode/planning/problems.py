"""Billiards planning problems: shots, their outcomes under the true simulator, and training data.

The problem. Two balls of radius `BALL_RADIUS` in the unit box, as in Billiards2D: the
cue ball (ball 1) and the object ball (ball 2) start at random non-overlapping places,
the object ball at rest. The action is the cue velocity, `(angle, speed)` with the angle
in [0, 2 pi) and the speed in `SPEED_RANGE`. A problem succeeds when the object ball's
centre comes within `TARGET_RADIUS` of the target centre at some simulator step
(`SIM_DT`) within `HORIZON` frames, judged by the true simulator on the chosen action.
Targets are reachable by construction: each is a place the object ball passes when a
witness action aimed at it is simulated (`make_problems`).

`plan_data` makes training trajectories from the same distribution (`plan_data_actions`
with their actions). Time is in frames throughout; one frame is `EVERY` simulator steps
of `SIM_DT`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import Trajectories, split
from ..errors import ConfigError
from ..tasks import BALL_RADIUS, billiards

# Simulator settings of Billiards2D: a frame is EVERY steps of SIM_DT (0.05 time units).
SIM_DT = 0.01
EVERY = 5
# Frames after the first in which the object ball must reach the target. At the slowest
# cue speed the cue ball still crosses the box diagonal (about 1.1) within it.
HORIZON = 30
# Frames of the cue ball's simulated motion that convey the action to a model (the
# authors' burn-in length).
N_BURN = 4
# Cue speeds, in box lengths per simulator time unit; Billiards2D balls move at speed 1.
SPEED_RANGE = (0.5, 1.5)
# Radius of the target region: random actions succeed about as often as in the paper
# (about 9%; docs/planning.md).
TARGET_RADIUS = 0.07
# A target centre lies at least this far from the object ball's start, so the object
# ball never starts inside its target and must be struck.
MIN_TARGET_TRAVEL = 0.3
# Known inputs of models that read the action (`--actions-as-inputs`): the cue velocity (vx, vy).
ACTION_INPUTS = 2
# The PC-ODE's skip threshold for planning models, absolute: about 150 times this data's mean
# squared change per frame (6.5e-4), where the default (`pcnode.segments`) is 2.5 times it.
# A planner needs each shot's outcome, up to 27 frames ahead. At 0.1 a segment ends only
# where its stretched prediction is off by about 0.3 per coordinate, so after the burn-in
# the PC-ODE mostly makes a single jump to the horizon: teacher forcing then trains it on
# exactly what a rollout does (no update reads a predicted frame), and its decoder learns
# the whole path, bounces included, as a function of the span. Tighter thresholds
# planned worse at equal training (README).
SKIP_EPSILON = 0.1
# Fraction of training trajectories whose cue ball is aimed at the object ball (the
# rest go in uniformly random directions): planning concentrates candidates on
# striking actions, so the models must see many collisions.
AIM_FRACTION = 0.5
# Aimed shots deviate from the line of centres by up to this fraction of the widest
# angle that still makes contact, so that witness shots strike rather than graze.
AIM_SPREAD = 0.9


@dataclass
class Problems:
    """A replayable set of planning problems: positions (P, 2) in the unit box."""

    cue: np.ndarray
    obj: np.ndarray
    target: np.ndarray
    seed: int

    def __len__(self) -> int:
        return len(self.cue)


def make_problems(n: int, seed: int = 0) -> Problems:
    """`n` planning problems drawn from `seed`; the same seed gives the same problems.

    The balls are placed uniformly in the box without overlap. A witness shot aimed at
    the object ball is simulated, and the target is the object ball's position at a
    random frame where it is at least `MIN_TARGET_TRAVEL` from its start; scenes whose
    witness does not move the object ball that far are drawn again.
    """
    if n < 1:
        raise ConfigError(f"need at least one planning problem, got {n}")
    rng = np.random.default_rng(seed)
    r = BALL_RADIUS
    cue, obj, target = np.empty((n, 2)), np.empty((n, 2)), np.empty((n, 2))
    todo = np.arange(n)
    while todo.size:
        m = todo.size
        c, o = rng.uniform(r, 1 - r, (m, 2)), rng.uniform(r, 1 - r, (m, 2))
        path = simulate_actions(c, o, aimed_actions(rng, c, o), HORIZON + 1)[..., 2:]
        far = np.linalg.norm(path - o[:, None], axis=-1) >= MIN_TARGET_TRAVEL
        ok = far.any(1) & (np.linalg.norm(o - c, axis=-1) > 2 * r)
        frame = (rng.random(far.shape) * far).argmax(1)  # uniform among the far frames
        rows = np.flatnonzero(ok)
        done = todo[rows]
        cue[done], obj[done], target[done] = c[rows], o[rows], path[rows, frame[rows]]
        todo = todo[~ok]
    return Problems(cue, obj, target, seed)


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) actions `(angle, speed)` drawn uniformly from the action space."""
    return np.stack([rng.uniform(0, 2 * np.pi, n), rng.uniform(*SPEED_RANGE, n)], -1)


def aimed_actions(rng: np.random.Generator, cue: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """(n, 2) actions that send the cue ball (n, 2) into the object ball (n, 2) if fast enough."""
    d = obj - cue
    reach = np.arcsin(np.clip(2 * BALL_RADIUS / np.linalg.norm(d, axis=-1), 0, 1))
    angle = np.arctan2(d[:, 1], d[:, 0]) + AIM_SPREAD * reach * rng.uniform(-1, 1, len(d))
    return np.stack([np.mod(angle, 2 * np.pi), rng.uniform(*SPEED_RANGE, len(d))], -1)


def simulate_actions(
    cue: np.ndarray, obj: np.ndarray, actions: np.ndarray, frames: int, every: int = EVERY
) -> np.ndarray:
    """Simulate each action: cue (2,) or (n, 2), obj likewise, actions (n, 2) -> (n, frames, 4) float32.

    Frame 0 is the start; frames are `every` simulator steps of `SIM_DT` apart. The
    simulator resolves every collision at its exact time, so it takes one step per
    frame: the frames are the same as with `every` small steps, at a fraction of the cost.
    """
    n = len(actions)
    pos = np.stack([np.broadcast_to(cue, (n, 2)), np.broadcast_to(obj, (n, 2))], 1)
    vel = np.zeros((n, 2, 2))
    vel[:, 0] = actions[:, 1:] * np.stack([np.cos(actions[:, 0]), np.sin(actions[:, 0])], -1)
    positions = billiards(pos, vel, frames, radius=BALL_RADIUS, sim_dt=SIM_DT * every, every=1)
    assert isinstance(positions, np.ndarray)  # without velocities or events
    return positions


def succeeded(problems: Problems, actions: np.ndarray) -> np.ndarray:
    """(P,) bool: did the true simulator take each object ball into its target, checked every step?"""
    path = simulate_actions(problems.cue, problems.obj, actions, HORIZON * EVERY + 1, every=1)[..., 2:]
    return (np.linalg.norm(path - problems.target[:, None], axis=-1) <= TARGET_RADIUS).any(1)


def plan_data(n: int, seed: int = 0) -> np.ndarray:
    """(n, HORIZON + 1, 4) float32 training trajectories of the planning distribution.

    Scenes as in `make_problems` (object ball at rest); a fraction `AIM_FRACTION` of cue
    shots is aimed at the object ball, the rest are uniformly random actions.
    """
    return plan_data_actions(n, seed)[0]


def plan_data_actions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`plan_data(n, seed)` and the actions (n, 2) `(angle, speed)` that made it."""
    rng = np.random.default_rng(seed)
    r = BALL_RADIUS
    cue, obj = np.empty((n, 2)), np.empty((n, 2))
    todo = np.arange(n)
    while todo.size:
        cue[todo], obj[todo] = rng.uniform(r, 1 - r, (todo.size, 2)), rng.uniform(r, 1 - r, (todo.size, 2))
        todo = todo[np.linalg.norm(obj[todo] - cue[todo], axis=-1) <= 2 * r]
    actions = np.where((rng.random(n) < AIM_FRACTION)[:, None], aimed_actions(rng, cue, obj), random_actions(rng, n))
    return simulate_actions(cue, obj, actions, HORIZON + 1), actions


def action_inputs(actions: np.ndarray, frames: int) -> np.ndarray:
    """The known inputs of models that read actions: each action's (n, 2) cue velocity
    `(vx, vy)`, held over `frames` frames -> (n, frames, ACTION_INPUTS) float32."""
    v = actions[:, 1:] * np.stack([np.cos(actions[:, 0]), np.sin(actions[:, 0])], -1)
    return np.repeat(v[:, None].astype(np.float32), frames, axis=1)


@dataclass(frozen=True)
class PlanningData:
    """A planning model's data, regenerated: `plan_data(n, seed)`, the last `test_fraction`
    held out. Saved in a run's config as {"planning": {"n", "seed"}, "test_fraction", "note"}."""

    n: int
    seed: int
    test_fraction: float = 0.1

    def split(self) -> tuple[Trajectories, Trajectories]:
        train, test = split(plan_data(self.n, self.seed), self.test_fraction)
        return Trajectories(train), Trajectories(test)
