"""Toy trajectory datasets from the piecewise-constant neural ODE paper (Greydanus, Lee, Fern 2021).

Every task returns a batch of trajectories sampled at evenly spaced observation times. Time is
measured in frames: frame k is the k-th observation, and a model's "time" between two consecutive
observations is one frame whatever the underlying simulator step is.

- ``lines``: 21 frames of ``(x, y)``; x runs evenly from 0 to 2.1, y is a constant drawn from U[0, 1).
- ``circles``: 30 frames of ``(x, y)`` moving counter-clockwise around the origin on a circle of
  radius U[1, 2], 0.3 arc length per frame, from a uniformly random start angle.
- ``billiards2d``: 45 frames of ``[x1, y1, x2, y2]``; two balls of radius 0.1 with unit speed in
  uniformly random directions bounce elastically off each other and off the walls of the unit box.
- ``billiards1d``: as ``billiards2d`` but both balls sit on the line x = 0.5 and move vertically.
- ``pixel_billiards1d`` / ``pixel_billiards2d``: the billiards scenes rendered as 28x28 greyscale
  frames (flattened to 784 values), returned together with the ball coordinates behind them.
"""

import numpy as np

from .render import render

TASKS: tuple[str, ...] = (
    "lines",
    "circles",
    "billiards1d",
    "billiards2d",
    "pixel_billiards1d",
    "pixel_billiards2d",
)

LINE_FRAMES = 21
LINE_LENGTH = 2.1
CIRCLE_FRAMES = 30
CIRCLE_ARC_STEP = 0.3
BILLIARDS_FRAMES = 45
BALL_RADIUS = 0.1

# Bounds the number of collision events resolved inside one simulator step. Two balls in a box
# produce at most a handful per step; the cap only guards against a pathological float cycle, at
# the price of that scene losing the rest of the step.
_MAX_EVENTS_PER_STEP = 32


def simulate(task: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Sample ``n`` trajectories of ``task``.

    Returns ``(x, coords)``. ``x`` is float32 ``(n, frames, dim)``: ``(n, 21, 2)`` for lines,
    ``(n, 30, 2)`` for circles, ``(n, 45, 4)`` for billiards and ``(n, 45, 784)`` for pixel billiards.
    ``coords`` is the float32 ``(n, 45, 4)`` ball positions behind the images for pixel tasks, else
    None. Raises ValueError for an unknown task or ``n < 1``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    if task == "lines":
        return _lines(rng, n), None
    if task == "circles":
        return _circles(rng, n), None
    pos, vel = _billiards_start(rng, n, vertical=task.endswith("1d"))
    coords = billiards(pos, vel, BILLIARDS_FRAMES, radius=BALL_RADIUS)
    assert isinstance(coords, np.ndarray)  # positions alone, without velocities or events
    if task.startswith("pixel_"):
        return render(coords, radius=BALL_RADIUS), coords
    return coords, None


def collisions(task: str, n: int, seed: int = 0) -> np.ndarray:
    """Collision counts of the trajectories ``simulate(task, n, seed)`` returns, int ``(n, 45)``.

    ``events[:, k]`` counts the collisions after frame ``k - 1`` and up to frame ``k`` (see
    ``billiards``). Only the billiards tasks, coordinates or pixels, have collisions.
    """
    if task not in TASKS or "billiards" not in task:
        raise ValueError(f"only the billiards tasks have collisions, not {task!r}")
    pos, vel = _billiards_start(np.random.default_rng(seed), n, vertical=task.endswith("1d"))
    return billiards(pos, vel, BILLIARDS_FRAMES, radius=BALL_RADIUS, return_events=True)[1]


def billiards(
    pos: np.ndarray,
    vel: np.ndarray,
    frames: int,
    *,
    radius: float = 0.1,
    sim_dt: float = 0.01,
    every: int = 5,
    return_velocity: bool = False,
    return_events: bool = False,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Simulate two equal-mass balls bouncing elastically off each other and the unit-box walls.

    ``pos``, ``vel``: ``(n, 2 balls, 2 xy)`` initial centres and velocities; centres must lie in
    ``[radius, 1 - radius]`` and the balls must not overlap. The simulation advances ``sim_dt`` per
    step and records every ``every``-th step, frame 0 being the initial state. Within a step,
    collisions are resolved at their exact contact times, so energy is conserved to float error,
    centres never leave ``[radius, 1 - radius]`` and balls never interpenetrate.

    Returns float32 ``(n, frames, 4)`` positions laid out ``[x1, y1, x2, y2]``, with
    ``return_velocity`` also the matching ``(n, frames, 4)`` velocities ``[vx1, vy1, vx2, vy2]``,
    and with ``return_events`` also int ``(n, frames)`` collision counts: ``events[:, k]`` is the
    number of collisions (a ball with a wall or with the other ball; several at one instant count
    once) after frame ``k - 1`` and up to frame ``k``.
    """
    pos = np.array(pos, dtype=np.float64)
    vel = np.array(vel, dtype=np.float64)
    n = pos.shape[0]
    positions = np.empty((n, frames, 4), dtype=np.float32)
    velocities = np.empty((n, frames, 4), dtype=np.float32)
    events = np.zeros((n, frames), dtype=np.int64)
    positions[:, 0] = pos.reshape(n, 4)
    velocities[:, 0] = vel.reshape(n, 4)
    for frame in range(1, frames):
        for _ in range(every):
            _step(pos, vel, sim_dt, radius, events[:, frame])
        positions[:, frame] = pos.reshape(n, 4)
        velocities[:, frame] = vel.reshape(n, 4)
    out = (positions,) + ((velocities,) if return_velocity else ()) + ((events,) if return_events else ())
    return out if len(out) > 1 else positions


def _lines(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return float32 ``(n, 21, 2)`` horizontal lines at heights drawn from U[0, 1)."""
    x = np.empty((n, LINE_FRAMES, 2), dtype=np.float32)
    x[..., 0] = np.linspace(0.0, LINE_LENGTH, LINE_FRAMES)
    x[..., 1] = rng.random((n, 1))
    return x


def _circles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return float32 ``(n, 30, 2)`` counter-clockwise circular arcs around the origin."""
    radius = rng.uniform(1.0, 2.0, size=(n, 1))
    start = rng.uniform(0.0, 2.0 * np.pi, size=(n, 1))
    angle = start + np.arange(CIRCLE_FRAMES) * (CIRCLE_ARC_STEP / radius)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1).astype(np.float32)


def _billiards_start(rng: np.random.Generator, n: int, vertical: bool) -> tuple[np.ndarray, np.ndarray]:
    """Draw non-overlapping unit-speed initial states, each ``(n, 2 balls, 2 xy)`` float64.

    With ``vertical`` both balls sit at x = 0.5 and move straight up or down.
    """
    r = BALL_RADIUS
    pos = np.empty((n, 2, 2))
    todo = np.arange(n)
    while todo.size:
        m = todo.size
        if vertical:
            pos[todo, :, 0] = 0.5
            pos[todo, :, 1] = rng.uniform(r, 1.0 - r, size=(m, 2))
        else:
            pos[todo] = rng.uniform(r, 1.0 - r, size=(m, 2, 2))
        gap = np.linalg.norm(pos[todo, 1] - pos[todo, 0], axis=-1)
        todo = todo[gap <= 2.0 * r]
    if vertical:
        vel = np.zeros((n, 2, 2))
        vel[..., 1] = rng.choice([-1.0, 1.0], size=(n, 2))
    else:
        angle = rng.uniform(0.0, 2.0 * np.pi, size=(n, 2))
        vel = np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return pos, vel


def _wall_times(p: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Time until each ``(m, 2, 2)`` centre coordinate reaches the wall it moves toward (inf if still)."""
    target = np.where(v > 0.0, 1.0 - radius, radius)
    t = np.full_like(p, np.inf)
    # A near-zero speed overflows to inf, which is the right answer: that wall is never reached.
    with np.errstate(over="ignore"):
        np.divide(target - p, v, out=t, where=v != 0.0)
    # Float error can leave a centre a hair past its wall; that contact is due now, not in the past.
    return np.maximum(t, 0.0)


def _contact_time(p: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Time until the two balls of each of ``m`` scenes touch while approaching, ``(m,)`` (inf if never)."""
    d = p[:, 1] - p[:, 0]
    u = v[:, 1] - v[:, 0]
    a = np.einsum("ij,ij->i", u, u)
    b = np.einsum("ij,ij->i", d, u)
    c = np.einsum("ij,ij->i", d, d) - (2.0 * radius) ** 2
    disc = b * b - a * c
    hits = (b < 0.0) & (disc >= 0.0)
    t = np.full(p.shape[0], np.inf)
    # Smaller root of |d + u t| = 2r written as c / (-b + sqrt(disc)): avoids cancellation and,
    # because b < 0, never divides by zero; a near-zero closing speed overflows to inf (never).
    with np.errstate(over="ignore"):
        t[hits] = c[hits] / (np.sqrt(disc[hits]) - b[hits])
    return np.maximum(t, 0.0)


def _step(pos: np.ndarray, vel: np.ndarray, dt: float, radius: float, events: np.ndarray | None = None) -> None:
    """Advance ``(n, 2, 2)`` float64 ``pos``/``vel`` in place by ``dt``, event by event, adding the
    number of collision instants of each scene to ``events`` ``(n,)`` if given.

    Each pass moves every still-active scene to its next collision (or to the end of the step),
    resolves the collision, and keeps only the scenes that still have time left, so after the first
    pass only the few scenes with a collision this step are touched.
    """
    idx = np.arange(pos.shape[0])
    left = np.full(pos.shape[0], dt)
    for _ in range(_MAX_EVENTS_PER_STEP):
        p, v, tau = pos[idx], vel[idx], left[idx]
        t_wall = _wall_times(p, v, radius)
        t_ball = _contact_time(p, v, radius)
        t_next = np.minimum(t_wall.min(axis=(1, 2)), t_ball)
        hit = t_next < tau
        h = np.minimum(t_next, tau)
        p += v * h[:, None, None]
        np.clip(p, radius, 1.0 - radius, out=p)

        wall = hit[:, None, None] & (t_wall <= t_next[:, None, None])
        v[wall] = -v[wall]

        ball = hit & (t_ball <= t_next)
        if ball.any():
            d = p[ball, 1] - p[ball, 0]
            normal = d / np.linalg.norm(d, axis=-1, keepdims=True)
            closing = np.einsum("ij,ij->i", v[ball, 1] - v[ball, 0], normal)
            # Equal masses: swap the velocity components along the line of centres. Contact times
            # are finite only for approaching balls, so this never pulls separating balls together.
            impulse = closing[:, None] * normal
            v[ball, 0] += impulse
            v[ball, 1] -= impulse

        pos[idx], vel[idx] = p, v
        left[idx] = tau - h
        if events is not None:
            events[idx[hit]] += 1
        idx = idx[hit]
        if idx.size == 0:
            break
