"""Figures and animations of rollouts.

States are drawn as objects in the plane: a state of `2k` numbers is read as `k`
points `(x, y)` (two billiard balls for the billiards tasks, one point for Lines and
Circles). Everything here takes numpy arrays already read off a rollout, so the
figures never touch the model.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from . import checkpoint as ckpt  # noqa: E402

COLORS = {"truth": "black", "pcode": "tab:red", "rnn": "tab:blue", "odernn": "tab:green"}
LABELS = {"truth": "truth", "pcode": "PC-ODE", "rnn": "RNN", "odernn": "ODE-RNN"}


def _points(s: np.ndarray) -> np.ndarray:
    """(..., 2k) -> (..., k, 2)"""
    return s.reshape(*s.shape[:-1], -1, 2)


def plot_paths(path: Path, truth: np.ndarray, n_burn: int, paths: dict[str, tuple[np.ndarray, np.ndarray]],
               updates: dict[str, np.ndarray], title: str = "", box: bool = False) -> None:
    """Truth vs predicted paths for a few trajectories, one panel each.

    Args:
        truth: (P, T, 2k) true trajectories.
        paths: model name -> (times (Q,), states (P, Q, 2k)) read off its rollout, finely.
        updates: model name -> (P, K, 2k) states at the model's update times (drawn as dots).
        box: draw the unit box (billiards).
    """
    P = truth.shape[0]
    fig, axes = plt.subplots(1, P, figsize=(3.2 * P, 3.4), squeeze=False)
    for p, ax in enumerate(axes[0]):
        tr = _points(truth[p])
        for k in range(tr.shape[1]):
            ax.plot(tr[:, k, 0], tr[:, k, 1], color="0.6", lw=3, alpha=0.6, label="truth" if k == 0 else None)
            ax.plot(tr[:n_burn, k, 0], tr[:n_burn, k, 1], "o", color="black", ms=3,
                    label="burn-in" if k == 0 else None)
        for name, (_, states) in paths.items():
            pts = _points(states[p])
            for k in range(pts.shape[1]):
                ax.plot(pts[:, k, 0], pts[:, k, 1], color=COLORS.get(name), lw=1.2,
                        label=LABELS.get(name, name) if k == 0 else None)
            if name in updates:
                up = _points(updates[name][p])
                ax.plot(up[..., 0].ravel(), up[..., 1].ravel(), "o", mfc="none", color=COLORS.get(name), ms=6,
                        label=f"{LABELS.get(name, name)} updates")
        if box:
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
        ax.set_aspect("equal", adjustable="datalim" if not box else "box")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, path)


def rollout_gif(path: Path, truth_t: np.ndarray, truth: np.ndarray, times: np.ndarray,
                preds: dict[str, np.ndarray], update_times: dict[str, np.ndarray], radius: float = 0.1,
                fps: int = 12) -> None:
    """Animate one rollout per model beside the truth.

    Args:
        truth_t: (T,) frame times of `truth` (T, 2k).
        times: (Q,) animation times; preds: model name -> (Q, 2k) states at those times.
        update_times: model name -> times at which that model updated; frames at or just
            after an update are marked.
    """
    names = ["truth", *preds]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.9))
    step = times[1] - times[0] if len(times) > 1 else 1.0
    frames = []
    for q, tq in enumerate(times):
        for ax, name in zip(axes, names):
            ax.clear()
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if name == "truth":
                state = np.array([np.interp(tq, truth_t, truth[:, d]) for d in range(truth.shape[1])])
                ax.set_title(f"truth  t={tq:4.1f}", fontsize=9)
            else:
                state = preds[name][q]
                ups = update_times.get(name, np.array([]))
                n_up = int((ups <= tq + 1e-9).sum())
                flash = bool(((ups > tq - step) & (ups <= tq + 1e-9)).any())
                ax.set_title(f"{LABELS.get(name, name)}  updates={n_up}", fontsize=9,
                             color="tab:red" if flash else "black")
                if flash:
                    for side in ax.spines.values():
                        side.set_color("tab:red")
                        side.set_linewidth(3)
            for k, (x, y) in enumerate(_points(state)):
                ax.add_patch(plt.Circle((x, y), radius, color=("tab:orange", "tab:blue", "tab:green")[k % 3]))
        fig.canvas.draw()
        frames.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    plt.close(fig)
    palette = [f.convert("P", palette=Image.ADAPTIVE, colors=64) for f in frames]
    ckpt.atomic_write(Path(path), lambda tmp: palette[0].save(tmp, format="GIF", save_all=True,
                                                             append_images=palette[1:],
                                                             duration=int(1000 / fps), loop=0))


def plot_curves(path: Path, curves: dict[str, list[dict]], keys: tuple[str, ...] = ("test_mse", "test_mean_dt")) -> None:
    """Training curves: one panel per metric key, one line per model (rows from metrics.csv)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, rows in curves.items():
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], color=COLORS.get(name),
                    label=LABELS.get(name, name), marker=".")
        ax.set_xlabel("training step")
        ax.set_ylabel(key)
        if key.endswith("mse"):
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    ckpt.atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
