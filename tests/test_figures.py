"""Pictures that read at a glance: labelled panels, each ball's truth in its own style,
the legend clear of the data, ticks where the scale matters, metric names with units,
and an update marker in the GIF that lasts long enough to see."""
import numpy as np
import pytest
from PIL import Image, ImageSequence

import pcnode.experiments.figures as figures
from pcnode.experiments.animations import rollout_gif
from pcnode.experiments.figures import BALL_STYLES, plot_curves, plot_paths


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions save, kept open for inspection."""
    kept = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: (fig.canvas.draw(), kept.append(fig)))
    return kept


def two_balls(P=3, T=12):
    t = np.linspace(0, 1, T)[None, :, None]
    start = np.random.default_rng(0).uniform(0.2, 0.8, (P, 1, 4))
    return start + 0.1 * t * np.array([1, -1, -1, 1])


def test_path_panels_are_labelled_and_the_legend_sits_clear_of_every_panel(drawn):
    truth = two_balls()
    plot_paths("p.png", truth, 4, {"pcode": (np.arange(12.0), truth + 0.01)}, {}, box=True)
    fig = drawn[0]
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [f"({c}) test trajectory {i}" for i, c in enumerate("abc")]
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in axes)
    assert all(ax.get_legend() is None for ax in axes)


def test_each_balls_truth_has_its_own_line_style(drawn):
    truth = two_balls()
    plot_paths("p.png", truth, 4, {}, {}, box=True)
    grey = [line for line in drawn[0].axes[0].get_lines() if line.get_label() == "truth"]
    assert [line.get_linestyle() for line in grey] == [BALL_STYLES[0], BALL_STYLES[1]]


def test_panels_of_a_task_without_a_table_share_their_axes_and_show_ticks(drawn):
    t = np.linspace(0, 2.1, 21)
    truth = np.stack([np.stack([t, np.full(21, y)], -1) for y in (0.2, 0.5, 0.8)])  # three Lines
    plot_paths("lines.png", truth, 4, {}, {}, box=False)
    axes = drawn[0].axes
    assert len({ax.get_ylim() for ax in axes}) == 1 and len(axes[0].get_yticks()) > 1
    low, high = axes[0].get_ylim()
    assert low < 0.2 and high > 0.8  # every line at its own height, not each panel scaled to its own


def test_training_curves_name_their_units(drawn):
    rows = [{"step": s, "test_mse_model_units": 1.0 / s, "test_mean_dt_frames": s / 10} for s in (10, 20)]
    plot_curves("c.png", {"pcode": rows})
    labels = [ax.get_ylabel() for ax in drawn[0].axes]
    assert "model units" in labels[0] and "(frames)" in labels[1]


def test_an_update_in_the_animation_is_marked_for_half_a_second(tmp_path):
    times = np.arange(3, 12, 0.25)
    truth = two_balls(P=1, T=12)[0]
    rollout_gif(tmp_path / "r.gif", np.arange(12.0), truth, times, {"pcode": np.repeat(truth[:1], len(times), 0)},
                {"pcode": np.array([3.0, 7.0])}, fps=12)
    gif = Image.open(tmp_path / "r.gif")
    red = [((f[..., 0] > 200) & (f[..., 1] < 80) & (f[..., 2] < 80)).sum() > 500
           for f in (np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif))]
    at_seven = int(np.argmin(np.abs(times - 7.0)))
    assert red[at_seven:at_seven + 6] == [True] * 6 and not red[at_seven + 6]
    assert not red[at_seven - 1] and sum(red) == 12  # two updates, six frames each (0.5 s at 12 fps)
