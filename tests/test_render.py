import numpy as np
import pytest

from pcnode.render import render
from pcnode.tasks import simulate

SIZE = 28


def pixel_centre(row, col):
    """Unit-box (x, y) of the centre of pixel (row, col); row 0 is the top (y = 1)."""
    return (col + 0.5) / SIZE, 1.0 - (row + 0.5) / SIZE


@pytest.fixture(scope="module")
def coords():
    return simulate("billiards2d", 20, seed=0)[0]


def test_render_returns_float32_flat_images_keeping_leading_shape(coords):
    images = render(coords)
    assert images.dtype == np.float32
    assert images.shape == (20, 45, SIZE * SIZE)
    assert render(coords[0, 0]).shape == (SIZE * SIZE,)


def test_render_values_lie_in_unit_interval(coords):
    images = render(coords)
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_render_is_deterministic(coords):
    np.testing.assert_array_equal(render(coords), render(coords))


def test_render_coverage_follows_distance_to_the_centre():
    x, y = pixel_centre(10, 12)
    image = render(np.array([x, y, x, y])).reshape(SIZE, SIZE)
    assert image[10, 12] == 1.0
    # Three pixels away from the centre: coverage = 2.8 + 0.5 - 3 = 0.3.
    np.testing.assert_allclose(image[10, 15], 0.3, atol=1e-5)
    np.testing.assert_allclose(image[13, 12], 0.3, atol=1e-5)
    assert image[10, 16] == 0.0


def test_render_puts_row_zero_at_the_top_of_the_table():
    image = render(np.array([0.5, 0.85, 0.5, 0.85])).reshape(SIZE, SIZE)
    assert image[: SIZE // 2].sum() > 0 and image[SIZE // 2 :].sum() == 0


def test_render_combines_overlapping_balls_with_max():
    a, b = [0.5, 0.5], [0.6, 0.55]
    alone_a = render(np.array(a + a))
    alone_b = render(np.array(b + b))
    both = render(np.array(a + b))
    assert both.max() <= 1.0
    np.testing.assert_array_equal(both, np.maximum(alone_a, alone_b))


def test_render_ball_centroids_recover_positions_within_one_pixel():
    rng = np.random.default_rng(0)
    n = 200
    # Ball 1 in the left half, ball 2 in the right half, both clear of the image edges.
    left = rng.uniform([0.15, 0.15], [0.35, 0.85], size=(n, 2))
    right = rng.uniform([0.65, 0.15], [0.85, 0.85], size=(n, 2))
    images = render(np.concatenate([left, right], axis=1)).reshape(n, SIZE, SIZE)
    rows, cols = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    for half, truth in ((cols < SIZE // 2, left), (cols >= SIZE // 2, right)):
        w = images * half
        total = w.sum(axis=(1, 2))
        col = (w * cols).sum(axis=(1, 2)) / total
        row = (w * rows).sum(axis=(1, 2)) / total
        estimate = np.stack([(col + 0.5) / SIZE, 1.0 - (row + 0.5) / SIZE], axis=-1)
        assert np.abs(estimate - truth).max() < 1.0 / SIZE


def test_render_in_chunks_matches_rendering_each_part_alone():
    c = np.random.default_rng(1).uniform(0.1, 0.9, size=(5000, 4))
    whole = render(c)
    np.testing.assert_array_equal(whole[4000:], render(c[4000:]))
    np.testing.assert_array_equal(whole[2040:2060], render(c[2040:2060]))
