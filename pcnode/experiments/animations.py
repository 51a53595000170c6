"""Animations of rollouts: GIFs of models beside the truth, updates marked.

Frames are drawn with matplotlib, grabbed as images and written as looping GIFs; the
still figures are `pcnode.experiments.figures`. `draw_rollouts` rolls models out and
writes both, the picture and the animation.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle

from ..model import SequenceModel
from ..plotting import LABELS, grab, save_gif, table
from ..progress import bar
from ..rollout import rollout
from .figures import BALL_COLORS, plot_paths, points


def _updated_near(update_times: np.ndarray, t: float, span: float) -> bool:
    """Whether an update happened in (t - span, t]."""
    return bool(((update_times > t - span - 1e-9) & (update_times <= t + 1e-9)).any())


def rollout_gif(
    path: Path,
    truth_t: np.ndarray,
    truth: np.ndarray,
    times: np.ndarray,
    preds: dict[str, np.ndarray],
    update_times: dict[str, np.ndarray],
    radius: float = 0.1,
    fps: int = 12,
    marked: tuple[str, ...] = ("pcode",),
    hold: float = 0.5,
    progress: bool | str = False,
) -> None:
    """Animate one rollout per model beside the truth.

    Args:
        truth_t: (T,) frame times of `truth` (T, 2k).
        times: (Q,) animation times; preds: model name -> (Q, 2k) states at those times.
        update_times: model name -> times at which that model updated (counted in the titles).
        marked: models whose panel is framed in red and says "update" for `hold` seconds
            of the animation after each of their updates (a baseline updates every frame).
        progress: a bar over the frames drawn (see `pcnode.progress`).
    """
    names = ["truth", *preds]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.9), squeeze=False)
    axes = axes[0]
    # The artists are made once and moved: clearing the axes every frame took most of the time.
    discs, notes = {}, {}
    for ax, name in zip(axes, names):
        table(ax)
        discs[name] = [
            ax.add_patch(Circle((0.5, 0.5), radius, color=BALL_COLORS[k % 3])) for k in range(truth.shape[1] // 2)
        ]
        notes[name] = ax.text(
            0.5,
            0.93,
            "update",
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=10,
            fontweight="bold",
            color="tab:red",
            visible=False,
        )
    step = times[1] - times[0] if len(times) > 1 else 1.0
    shown_for = max(1, round(hold * fps)) * step  # animation time a marker stays on
    frames = []
    with bar(progress, total=len(times), desc=Path(path).name, unit="frame") as counter:
        for q, tq in enumerate(times):
            for ax, name in zip(axes, names):
                if name == "truth":
                    state = np.array([np.interp(tq, truth_t, truth[:, d]) for d in range(truth.shape[1])])
                    ax.set_title(f"truth  t={tq:4.1f}", fontsize=9)
                else:
                    state = preds[name][q]
                    ups = update_times.get(name, np.array([]))
                    flash = name in marked and bool(((ups > tq - shown_for + 1e-9) & (ups <= tq + 1e-9)).any())
                    ax.set_title(
                        f"{LABELS.get(name, name)}  updates={int((ups <= tq + 1e-9).sum())}",
                        fontsize=9,
                        color="tab:red" if flash else "black",
                    )
                    notes[name].set_visible(flash)
                    for side in ax.spines.values():
                        side.set_color("tab:red" if flash else "black")
                        side.set_linewidth(4 if flash else 0.8)
                for disc, centre in zip(discs[name], points(state)):
                    disc.center = tuple(centre)
            frames.append(grab(fig))
            counter.update()
    plt.close(fig)
    save_gif(path, frames, fps)


def pixel_gif(
    path: Path,
    times: np.ndarray,
    truth: np.ndarray,
    preds: dict[str, np.ndarray],
    update_times: dict[str, np.ndarray],
    size: int,
    fps: int = 6,
    marked: tuple[str, ...] = ("pcode",),
) -> None:
    """Animate pixel rollouts beside the truth, flashing a marked model's frame red when it updated.

    Args:
        times: (Q,) frame times; truth: (Q, size*size); preds: model name -> (Q, size*size).
        marked: models whose updates flash (a baseline updates every frame).
    """
    names = ["truth", *preds]
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names), 2.5))
    span = times[1] - times[0] if len(times) > 1 else 1.0
    images = {}
    for ax, name in zip(axes, names):
        first = truth[0] if name == "truth" else preds[name][0]
        images[name] = ax.imshow(first.reshape(size, size), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    frames = []
    for q, tq in enumerate(times):
        for ax, name in zip(axes, names):
            if name == "truth":
                images[name].set_data(truth[q].reshape(size, size))
                ax.set_title(f"truth  t={tq:4.1f}", fontsize=9)
                continue
            images[name].set_data(preds[name][q].reshape(size, size))
            ups = update_times.get(name, np.array([]))
            flash = name in marked and _updated_near(ups, tq, span)
            ax.set_title(
                f"{LABELS.get(name, name)}  updates={int((ups <= tq + 1e-9).sum())}",
                fontsize=9,
                color="tab:red" if flash else "black",
            )
            for side in ax.spines.values():
                side.set_color("tab:red" if flash else "black")
                side.set_linewidth(3 if flash else 0.8)
        frames.append(grab(fig))
    plt.close(fig)
    save_gif(path, frames, fps)


@torch.no_grad()
def draw_rollouts(
    out: Path,
    models: dict[str, SequenceModel],
    seqs: torch.Tensor,
    n_burn: int,
    every: float = 0.25,
    box: bool = True,
    events: np.ndarray | None = None,
    name: str = "paths",
    gif_name: str | None = "rollout",
    first: int = 0,
    progress: bool | str = False,
) -> list[Path]:
    """Write NAME.png (truth vs each model, update points marked) and GIF_NAME.gif (the
    first trajectory, truth beside each model; None: no GIF) into `out`.

    Args:
        seqs: (P, T, state_dim) true trajectories, test trajectories `first..first+P-1`;
            frames before `n_burn` are given.
        every: spacing in frames of the times the rollouts are read at.
        events: (P, T) true collisions per frame, marked on the paths.
        progress: a bar over the GIF's frames (see `pcnode.progress`).
    """
    out = Path(out)
    T = seqs.shape[1]
    times = torch.arange(n_burn - 1, T - 1 + 1e-6, every, dtype=seqs.dtype)
    paths, updates, update_times = {}, {}, {}
    for kind, model in models.items():
        ro = rollout(model, seqs[:, :n_burn], horizon=T - 1)
        paths[kind] = (times.numpy(), ro.at(times).numpy())
        chosen = ro.t[:, n_burn - 1 :]
        update_times[kind] = chosen[0][torch.isfinite(chosen[0])].numpy()
        if ro.updates.float().mean() < T - n_burn:  # circling every frame a baseline reads would say nothing
            t_up = torch.where(torch.isfinite(chosen), chosen, chosen.new_full((), float(n_burn - 1)))
            updates[kind] = ro.at(t_up).numpy()
    truth = seqs.numpy()
    png = out / f"{name}.png"
    plot_paths(
        png,
        truth,
        n_burn,
        paths,
        updates,
        box=box,
        events=events,
        first=first,
        title=f"held-out trajectories: truth (grey) and rollouts from {n_burn} burn-in frames",
    )
    if gif_name is None:
        return [png]
    gif = out / f"{gif_name}.gif"
    rollout_gif(
        gif,
        np.arange(T, dtype=np.float32),
        truth[0],
        times.numpy(),
        {m: p[1][0] for m, p in paths.items()},
        update_times,
        progress=progress,
    )
    return [png, gif]
