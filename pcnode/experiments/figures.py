"""Still figures of rollouts, training curves, forecasts and ablations.

States are drawn as objects in the plane: a state of `2k` numbers is read as `k`
points `(x, y)` (two billiard balls for the billiards tasks, one point for Lines and
Circles). Every function takes numpy arrays already read off a rollout; the animations,
and `draw_rollouts`, which rolls models out to draw them, are in `animations`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..plotting import COLORS, LABELS, save_figure


def points(s: np.ndarray) -> np.ndarray:
    """(..., 2k) -> (..., k, 2)"""
    return s.reshape(*s.shape[:-1], -1, 2)


def _bounced(balls: np.ndarray, events: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """(T, k) bool: ball j took part in a collision between frames t - 1 and t.

    The simulator counts collisions per scene, not per ball; a ball took part if its
    velocity across the frame (from t-2..t-1 to t..t+1) changed. At the ends of the
    trajectory, where one side is missing, every ball of a scene with an event is marked.

    Args:
        balls: (T, k, 2) positions; events: (T,) collision counts.
    """
    v = np.diff(balls, axis=0)  # v[t] moves frame t to t + 1
    T = balls.shape[0]
    out = np.zeros(balls.shape[:2], dtype=bool)
    for t in np.flatnonzero(events):
        if 2 <= t <= T - 2:
            out[t] = np.linalg.norm(v[t] - v[t - 2], axis=-1) > tol
        else:
            out[t] = True
    return out


BALL_STYLES = ("-", "--", ":")  # line style of ball k, in the truth as in every model's rollout
BALL_COLORS = ("tab:orange", "tab:blue", "tab:green")  # fill of ball k in the animations
# The axis label of each training metric (`pcnode.train.METRIC_FIELDS`), its unit included.
METRIC_LABELS = {
    "test_mse_model_units": "test MSE (model units, log scale)",
    "test_mean_dt_frames": "mean span between updates\nin test rollouts (frames)",
    "train_mean_dt_frames": "mean span between updates\nin teacher forcing (frames)",
    "val_mse_model_units": "validation MSE (model units, log scale)",
    "test_updates": "updates per rollout",
}


def _legend_below(fig, axes) -> None:
    """One legend for the figure, below its panels, clear of the data (entries named twice shown once)."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(
        entries.values(),
        entries.keys(),
        loc="outside lower center",
        ncol=min(len(entries), 4),
        fontsize=8,
        frameon=False,
    )


def plot_paths(
    path: Path,
    truth: np.ndarray,
    n_burn: int,
    paths: dict[str, tuple[np.ndarray, np.ndarray]],
    updates: dict[str, np.ndarray],
    title: str = "",
    box: bool = False,
    events: np.ndarray | None = None,
    first: int = 0,
) -> None:
    """Truth vs predicted paths for a few trajectories, one labelled panel each, the
    legend below them.

    Ball k of a state is drawn in `BALL_STYLES[k]`, in the truth (grey) as in each model
    (its colour). Billiards (`box`) draw the unit table without ticks; other tasks share
    their axes, with ticks, so that the panels can be compared.

    Args:
        truth: (P, T, 2k) true trajectories, test trajectories `first..first+P-1`.
        paths: model name -> (times (Q,), states (P, Q, 2k)) read off its rollout, finely.
        updates: model name -> (P, K, 2k) states at the model's update times (drawn as circles).
        box: draw the unit box (billiards).
        events: (P, T) counts of true events (collisions) per frame; each ball whose
            velocity changed across such a frame is crossed at its true position there.
    """
    P = truth.shape[0]
    fig, axes = plt.subplots(
        1, P, figsize=(3.3 * P, 4.3), squeeze=False, sharex=not box, sharey=not box, layout="constrained"
    )
    balls = truth.shape[-1] // 2
    for p, ax in enumerate(axes[0]):
        tr = points(truth[p])
        for k in range(balls):
            ax.plot(tr[:, k, 0], tr[:, k, 1], color="0.55", lw=3, alpha=0.55, ls=BALL_STYLES[k % 3], label="truth")
            ax.plot(tr[:n_burn, k, 0], tr[:n_burn, k, 1], "o", color="black", ms=3, label="burn-in (given)")
        for name, (_, states) in paths.items():
            pts = points(states[p])
            for k in range(balls):
                ax.plot(
                    pts[:, k, 0],
                    pts[:, k, 1],
                    color=COLORS.get(name),
                    lw=1.2,
                    ls=BALL_STYLES[k % 3],
                    label=LABELS.get(name, name),
                )
            if name in updates:
                up = points(updates[name][p])
                ax.plot(
                    up[..., 0].ravel(),
                    up[..., 1].ravel(),
                    "o",
                    mfc="none",
                    color=COLORS.get(name),
                    ms=6,
                    label=f"{LABELS.get(name, name)} updates",
                )
        if events is not None:
            hit = tr[_bounced(tr, events[p])]
            ax.plot(hit[:, 0], hit[:, 1], "x", color="black", ms=5, mew=1, label="collisions (truth)")
        if balls > 1:  # the key to the line styles, drawn off the data
            for k in range(balls):
                ax.plot([], [], color="black", lw=1, ls=BALL_STYLES[k % 3], label=f"ball {k + 1}")
        ax.set_title(f"({chr(ord('a') + p)}) test trajectory {first + p}", fontsize=9)
        if box:
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal", adjustable="box")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.tick_params(labelsize=7)
            ax.set_xlabel("x", fontsize=8)
    if not box:
        axes[0][0].set_ylabel("y", fontsize=8)
        extent = np.ptp(points(truth).reshape(-1, 2), axis=0)
        if extent.max() < 1.5 * extent.min():  # shapes such as circles keep their aspect; lines keep their spread
            for ax in axes[0]:
                ax.set_aspect("equal", adjustable="box")
    _legend_below(fig, axes[0])
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def plot_curves(
    path: Path,
    curves: dict[str, list[dict]],
    keys: tuple[str, ...] = ("test_mse_model_units", "test_mean_dt_frames"),
    title: str = "",
) -> None:
    """Training curves: one panel per metric key, one line per model (rows from metrics.csv)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False, layout="constrained")
    for ax, key in zip(axes[0], keys):
        for name, rows in curves.items():
            ax.plot(
                [r["step"] for r in rows],
                [r[key] for r in rows],
                color=COLORS.get(name),
                label=LABELS.get(name, name),
                marker=".",
            )
        ax.set_xlabel("training step")
        ax.set_ylabel(METRIC_LABELS.get(key, key), fontsize=9)
        if "mse" in key:
            ax.set_yscale("log")
    if len(curves) > 1:
        _legend_below(fig, axes[0])
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def plot_time_series(
    path: Path,
    truth_t: np.ndarray,
    truth: np.ndarray,
    times: np.ndarray,
    preds: dict[str, np.ndarray],
    update_times: dict[str, np.ndarray],
    n_burn: int,
    title: str = "",
) -> None:
    """Each state dimension against time: truth at its frames, models read at `times`.

    Args:
        truth_t: (T,) frame times of `truth` (T, D).
        times: (Q,) query times, finer than the frames; preds: model name -> (Q, D).
        update_times: model name -> times the model updated (ticks along the bottom).
    """
    D = truth.shape[1]
    fig, axes = plt.subplots(D, 1, figsize=(8, 1.6 * D + 0.6), sharex=True, squeeze=False)
    for d, ax in enumerate(axes[:, 0]):
        ax.plot(truth_t, truth[:, d], "o", color="0.5", ms=3, label="truth (frames)")
        ax.plot(truth_t[:n_burn], truth[:n_burn, d], "o", color="black", ms=4, label="burn-in")
        for name, p in preds.items():
            ax.plot(times, p[:, d], color=COLORS.get(name), lw=1.2, label=LABELS.get(name, name))
        lo = ax.get_ylim()[0]
        for name, ups in update_times.items():
            if name == "pcode":
                ax.plot(ups, np.full(len(ups), lo), "|", color=COLORS[name], ms=10, mew=2, label="PC-ODE updates")
        ax.set_ylabel(f"dim {d}")
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper right")
    axes[-1, 0].set_xlabel("time (frames)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_pixel_strip(
    path: Path,
    truth: np.ndarray,
    preds: dict[str, np.ndarray],
    times: np.ndarray,
    update_times: dict[str, np.ndarray],
    size: int,
) -> None:
    """Rows of frames, truth on top and one row per model; under each PC-ODE frame, how
    many updates it made since the previous column (a red border when any).

    Args:
        truth: (F, size*size) true frames at `times` (F,); preds: model name -> (F, size*size).
    """
    rows = {"truth": truth, **preds}
    F = len(times)
    fig, axes = plt.subplots(len(rows), F, figsize=(0.9 * F + 0.8, 0.95 * len(rows) + 0.4), squeeze=False)
    span = times[1] - times[0] if F > 1 else 1.0
    for r, (name, frames) in enumerate(rows.items()):
        for f, ax in enumerate(axes[r]):
            ax.imshow(frames[f].reshape(size, size), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if name == "pcode":
                ups = update_times.get(name, np.array([]))
                count = int(((ups > times[f] - span - 1e-9) & (ups <= times[f] + 1e-9)).sum())
                ax.set_xlabel(
                    f"{count} update{'s' * (count != 1)}", fontsize=6, labelpad=1, color="tab:red" if count else "black"
                )
                if count:
                    for side in ax.spines.values():
                        side.set_color("tab:red")
                        side.set_linewidth(2.5)
            if r == 0:
                ax.set_title(f"t={times[f]:g}", fontsize=7)
        axes[r][0].set_ylabel(LABELS.get(name, name), fontsize=8)
    fig.tight_layout(pad=0.3)
    save_figure(fig, path)


def plot_ablation(path: Path, ablation: list[dict], results: list[dict]) -> None:
    """Test MSE of a trained PC-ODE forced to constant dt, one panel per task, with its
    learned dt (star) and the RNN (dashed) for reference.

    Args:
        ablation: rows with task, dt, mse; results: rows with task, model, mse, mean_dt.
    """
    tasks = list(dict.fromkeys(a["task"] for a in ablation))
    cols = min(3, len(tasks))
    rows_ = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3.6 * cols, 3.2 * rows_), squeeze=False)
    for ax in axes.ravel()[len(tasks) :]:
        ax.set_visible(False)
    for ax, task in zip(axes.ravel(), tasks):
        rows = [a for a in ablation if a["task"] == task]
        ax.plot([a["dt"] for a in rows], [a["mse"] for a in rows], "o-", color="0.4", label="constant dt")
        for r in results:
            if r["task"] != task:
                continue
            if r["model"] == "pcode":
                ax.plot([r["mean_dt"]], [r["mse"]], "*", ms=14, color=COLORS["pcode"], label="learned dt")
            elif r["model"] == "rnn":
                ax.axhline(r["mse"], ls="--", color=COLORS["rnn"], label="RNN")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("dt (frames)")
        ax.set_ylabel("test MSE")
        ax.set_title(task, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def plot_forecast(
    path: Path,
    truth_t: np.ndarray,
    truth: np.ndarray,
    columns: list[str],
    forecasts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    burn_t: np.ndarray,
    burn_x: np.ndarray,
    title: str = "",
    time_label: str = "time",
) -> None:
    """Your series against the models' rollouts, one panel per column, in your units.

    Args:
        truth_t: (T,) times of the readings `truth` (T, D).
        forecasts: model name -> (times (Q,), values (Q, D), update times (K,)); the
            update times are drawn as vertical ticks.
        burn_t, burn_x: (n_burn,) and (n_burn, D), the readings the rollouts started from.
    """
    D = truth.shape[1]
    fig, axes = plt.subplots(D, 1, figsize=(8, 1.9 * D + 1.2), sharex=True, squeeze=False, layout="constrained")
    for d, ax in enumerate(axes[:, 0]):
        ax.plot(truth_t, truth[:, d], ".-", color="0.6", lw=1, ms=3, label="truth")
        ax.plot(burn_t, burn_x[:, d], "o", color="black", ms=4, label="burn-in")
        for name, (t, v, ups) in forecasts.items():
            color = COLORS.get(name)
            ax.plot(t, v[:, d], color=color, lw=1.5, label=f"{LABELS.get(name, name)} ({len(ups)} updates)")
            for u in ups:
                ax.axvline(u, color=color, lw=0.6, alpha=0.35)
        ax.set_ylabel(columns[d], fontsize=8)
    axes[-1, 0].set_xlabel(f"{time_label}  (vertical lines: model updates)")
    _legend_below(fig, axes[:, 0])
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
