import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcnode.render import render
from pcnode.tasks import TASKS, billiards, simulate

R = 0.1
SHAPES = {
    "lines": (21, 2),
    "circles": (30, 2),
    "billiards1d": (45, 4),
    "billiards2d": (45, 4),
    "pixel_billiards1d": (45, 784),
    "pixel_billiards2d": (45, 784),
}
# Float32 output rounding; the simulator itself works in float64.
TOL = 1e-6


def random_states(rng, n, speed=1.0):
    """Non-overlapping (n, 2, 2) positions inside the box and (n, 2, 2) velocities of the given speed."""
    pos = rng.uniform(R, 1 - R, size=(4 * n, 2, 2))
    pos = pos[np.linalg.norm(pos[:, 1] - pos[:, 0], axis=-1) > 2 * R][:n]
    angle = rng.uniform(0, 2 * np.pi, size=(n, 2))
    vel = speed * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return pos, vel


def centre_gap(x):
    return np.linalg.norm(x[..., 2:].astype(np.float64) - x[..., :2], axis=-1)


def energy(v):
    return (v.astype(np.float64) ** 2).sum(-1)


@pytest.mark.parametrize("task", TASKS)
def test_simulate_returns_float32_with_task_shape(task):
    x, coords = simulate(task, 3, seed=0)
    assert x.dtype == np.float32
    assert x.shape == (3, *SHAPES[task])
    if task.startswith("pixel_"):
        assert coords.dtype == np.float32 and coords.shape == (3, 45, 4)
    else:
        assert coords is None


@pytest.mark.parametrize("task", TASKS)
def test_simulate_same_seed_gives_same_data(task):
    np.testing.assert_array_equal(simulate(task, 4, seed=7)[0], simulate(task, 4, seed=7)[0])


@pytest.mark.parametrize("task", TASKS)
def test_simulate_different_seed_gives_different_data(task):
    assert not np.array_equal(simulate(task, 4, seed=1)[0], simulate(task, 4, seed=2)[0])


def test_unknown_task_raises_naming_the_choices():
    with pytest.raises(ValueError, match="unknown task 'foo'; choose one of: lines, circles, billiards1d"):
        simulate("foo", 1)


@pytest.mark.parametrize("n", [0, -3])
def test_simulate_rejects_fewer_than_one_trajectory(n):
    with pytest.raises(ValueError):
        simulate("lines", n)


def test_lines_are_perfectly_linear_from_0_to_2_1():
    x, _ = simulate("lines", 50, seed=0)
    np.testing.assert_allclose(np.diff(x[..., 0], axis=1), 2.1 / 20, rtol=1e-5)
    np.testing.assert_allclose(x[:, [0, -1], 0], np.tile([0.0, 2.1], (50, 1)), rtol=1e-6)
    assert np.all(x[..., 1] == x[:, :1, 1])
    assert np.all((x[..., 1] >= 0) & (x[..., 1] < 1))


def test_circles_keep_a_constant_radius_between_1_and_2():
    x, _ = simulate("circles", 200, seed=0)
    radius = np.linalg.norm(x, axis=-1)
    np.testing.assert_allclose(radius, np.broadcast_to(radius[:, :1], radius.shape), rtol=1e-5)
    assert np.all((radius > 1 - 1e-5) & (radius < 2 + 1e-5))


def test_circles_step_0_3_arc_length_counter_clockwise():
    x = simulate("circles", 200, seed=0)[0].astype(np.float64)
    radius = np.linalg.norm(x[:, 0], axis=-1, keepdims=True)
    a, b = x[:, :-1], x[:, 1:]
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    turn = np.arctan2(cross, (a * b).sum(-1))
    np.testing.assert_allclose(turn * radius, 0.3, rtol=1e-4)


@pytest.mark.parametrize("task", ["billiards1d", "billiards2d", "pixel_billiards2d"])
def test_simulated_balls_stay_in_the_box(task):
    coords = simulate(task, 500, seed=0)[1 if task.startswith("pixel_") else 0]
    assert coords.min() >= R - TOL and coords.max() <= 1 - R + TOL


@pytest.mark.parametrize("task", ["billiards1d", "billiards2d"])
def test_simulated_balls_never_overlap(task):
    x, _ = simulate(task, 500, seed=0)
    assert centre_gap(x).min() >= 2 * R - TOL


@pytest.mark.parametrize("task", ["billiards1d", "billiards2d"])
def test_simulated_balls_start_at_unit_speed(task):
    x, _ = simulate(task, 500, seed=0)
    step = np.linalg.norm(x[:, 1].reshape(-1, 2, 2) - x[:, 0].reshape(-1, 2, 2), axis=-1)
    # Balls that hit nothing during the first frame travel exactly speed * 5 * 0.01.
    assert np.isclose(step, 0.05, atol=1e-5).mean() > 0.8


def test_billiards1d_keeps_both_balls_at_x_one_half_exactly():
    x, _ = simulate("billiards1d", 500, seed=0)
    assert np.all(x[..., [0, 2]] == 0.5)


def test_billiards_frame_zero_is_the_initial_state():
    pos, vel = random_states(np.random.default_rng(0), 20)
    x = billiards(pos, vel, 3)
    np.testing.assert_array_equal(x[:, 0], pos.reshape(20, 4).astype(np.float32))


def test_billiards_conserves_kinetic_energy():
    pos, vel = random_states(np.random.default_rng(0), 500)
    _, v = billiards(pos, vel, 45, return_velocity=True)
    np.testing.assert_allclose(energy(v), 2.0, rtol=1e-6)


def test_billiards_moves_free_balls_in_straight_lines():
    pos = np.array([[[0.3, 0.3], [0.7, 0.7]]])
    vel = np.array([[[0.2, 0.1], [-0.1, 0.2]]])
    x = billiards(pos, vel, 5)
    t = 0.05 * np.arange(5)[:, None, None]
    np.testing.assert_allclose(x[0].reshape(5, 2, 2), pos[0] + t * vel[0], atol=TOL)


def test_billiards_reflects_a_ball_off_a_wall():
    pos = np.array([[[0.85, 0.5], [0.2, 0.2]]])
    vel = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    x, v = billiards(pos, vel, 3, return_velocity=True)
    # After 0.1 time units the ball has gone 0.05 to the wall at 0.9 and 0.05 back.
    np.testing.assert_allclose(x[0, 2, :2], [0.85, 0.5], atol=TOL)
    np.testing.assert_allclose(v[0, 2, :2], [-1.0, 0.0])


def test_billiards_head_on_collision_exchanges_velocities():
    pos = np.array([[[0.3, 0.5], [0.7, 0.5]]])
    vel = np.array([[[1.0, 0.0], [-0.5, 0.0]]])
    x, v = billiards(pos, vel, 5, return_velocity=True)
    # Contact at t = 0.2 / 1.5, well before the last frame at t = 0.2 and far from the walls.
    np.testing.assert_allclose(v[0, -1], [-0.5, 0.0, 1.0, 0.0])
    t_hit = 0.2 / 1.5
    expected_x1 = 0.3 + t_hit - 0.5 * (0.2 - t_hit)
    np.testing.assert_allclose(x[0, -1, 0], expected_x1, atol=TOL)


def test_billiards_leaves_touching_balls_that_move_apart_alone():
    pos = np.array([[[0.4, 0.5], [0.6 - 1e-9, 0.5]]])
    vel = np.array([[[-0.3, 0.1], [0.2, 0.0]]])
    _, v = billiards(pos, vel, 3, return_velocity=True)
    np.testing.assert_array_equal(v[0, -1], vel[0].reshape(4).astype(np.float32))


def test_billiards_oblique_collision_conserves_momentum_and_energy():
    pos = np.array([[[0.4, 0.45], [0.6, 0.55]]])
    vel = np.array([[[0.5, 0.0], [-0.5, 0.0]]])
    x, v = billiards(pos, vel, 6, return_velocity=True)
    assert not np.allclose(v[0, -1], v[0, 0])
    np.testing.assert_allclose(v[0, :, :2] + v[0, :, 2:], 0.0, atol=TOL)
    np.testing.assert_allclose(energy(v[0]), 0.5, rtol=1e-6)
    assert centre_gap(x).min() >= 2 * R - TOL


coordinate = st.floats(R, 1 - R)
ball = st.tuples(coordinate, coordinate, st.floats(0, 2 * np.pi), st.floats(0, 2))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(ball, ball), min_size=1, max_size=8))
def test_billiards_random_states_stay_in_box_conserve_energy_and_never_overlap(scenes):
    s = np.array(scenes, dtype=np.float64)  # (n, ball, [x, y, angle, speed])
    pos = s[..., :2]
    s = s[np.linalg.norm(pos[:, 1] - pos[:, 0], axis=-1) > 2 * R + 1e-9]
    if s.size == 0:
        return
    pos = s[..., :2]
    vel = s[..., 3:] * np.stack([np.cos(s[..., 2]), np.sin(s[..., 2])], axis=-1)
    x, v = billiards(pos, vel, 45, return_velocity=True)
    assert x.min() >= R - TOL and x.max() <= 1 - R + TOL
    assert centre_gap(x).min() >= 2 * R - TOL
    e0 = (vel**2).sum(axis=(1, 2))[:, None]
    np.testing.assert_allclose(energy(v), np.broadcast_to(e0, (len(e0), 45)), rtol=1e-6, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    gap=st.floats(0.21, 0.3),
    offset=st.floats(-0.08, 0.08),
    speeds=st.tuples(st.floats(0.2, 0.3), st.floats(0.2, 0.3)),
    drift=st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05)),
)
def test_ball_collision_away_from_walls_conserves_total_momentum(gap, offset, speeds, drift):
    pos = np.array([[[0.5 - gap / 2, 0.5 + offset / 2], [0.5 + gap / 2, 0.5 - offset / 2]]])
    vel = np.array([[[speeds[0], drift[0]], [-speeds[1], drift[1]]]])
    # 0.4 time units: the balls must meet, yet even the fastest post-collision ball stays clear of
    # the walls, so any change in total momentum would be the collision's fault.
    _, v = billiards(pos, vel, 9, return_velocity=True)
    assert not np.allclose(v[0, -1], v[0, 0])
    np.testing.assert_allclose(v[0, :, :2] + v[0, :, 2:], np.tile(vel[0].sum(0), (9, 1)), atol=TOL)


@pytest.mark.parametrize("task", ["pixel_billiards1d", "pixel_billiards2d"])
def test_pixel_tasks_render_their_coordinates(task):
    x, coords = simulate(task, 3, seed=0)
    np.testing.assert_array_equal(x, render(coords))
    np.testing.assert_array_equal(coords, simulate(task.removeprefix("pixel_"), 3, seed=0)[0])
