"""Drawing to files: matplotlib on machines without a display, figures and GIFs written
atomically, and the colours and names every figure gives the models.

Shared by the experiments' figures and animations and the planning application's.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draws into files on machines without a display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from . import checkpoint as ckpt  # noqa: E402
from .model import MODEL_NAMES  # noqa: E402

COLORS = {
    "truth": "black",
    "pcode": "tab:red",
    "rnn": "tab:blue",
    "odernn": "tab:green",
    "cfc": "tab:purple",
    "odernn-adaptive": "tab:olive",
    "odernn-kinetic": "tab:cyan",
}
LABELS = {
    "truth": "truth",
    **MODEL_NAMES,
    "odernn-adaptive": "ODE-RNN (torchode)",
    "odernn-kinetic": "ODE-RNN (torchode, regularised)",
}


def save_figure(fig, path: Path) -> None:
    """Write a figure as a PNG, atomically, and close it."""
    ckpt.atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def table(ax) -> None:
    """Clear `ax` and draw it as the empty unit table of the billiards tasks."""
    ax.clear()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def grab(fig) -> Image.Image:
    """The figure as drawn now, as an RGB image (one frame of an animation)."""
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())


def save_gif(path: Path, frames: list, fps: int) -> None:
    """Write PIL frames as a looping GIF, atomically."""
    palette = [f.convert("P", palette=Image.Palette.ADAPTIVE, colors=64) for f in frames]
    ckpt.atomic_write(
        Path(path),
        lambda tmp: palette[0].save(
            tmp, format="GIF", save_all=True, append_images=palette[1:], duration=int(1000 / fps), loop=0
        ),
    )
