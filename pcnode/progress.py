"""Progress bars for the long loops (training, scoring, animations), on stderr by tqdm.

A function whose loop can run for long takes `progress`: True shows a bar, False none,
a string shows a bar with that label. A bar appears only once its loop has run for
`DELAY` seconds, so a quick call prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

DELAY = 1.0  # seconds a loop runs before its bar appears


def bar(
    progress: bool | str,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    leave: bool = True,
) -> tqdm:
    """A tqdm bar that `progress` turns on, off or labels (see the module docstring)."""
    return tqdm(
        total=total,
        initial=initial,
        desc=progress if isinstance(progress, str) else desc,
        unit=unit,
        disable=not progress,
        delay=DELAY,
        leave=leave,
        dynamic_ncols=True,
    )


class TrainingBar:
    """The bar `pcnode.fit` shows: steps done of `total`, with the loss and the mean dt of
    the training rule's segments, every 10 steps.

    Called after every step as `fit`'s `on_step` is, it calls `then` (the caller's own
    `on_step`) too. It opens at the first step, so that a training refused at once
    prints nothing but its error, and a resumed one counts from where it was.
    """

    def __init__(self, total: int, progress: bool | str, desc: str, then: Callable[[int, Any], None] | None = None):
        self.total, self.progress, self.desc, self.then = total, progress, desc, then
        self._bar: tqdm | None = None

    def __call__(self, step: int, losses) -> None:
        if self.progress and self._bar is None:
            self._bar = bar(self.progress, total=self.total, desc=self.desc, unit="step", initial=step - 1)
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if step % 10 == 0 or step == self.total:
                self._bar.set_postfix(
                    loss=f"{losses.displacement.item():.2e}", dt=f"{losses.mean_dt:.2f}", refresh=False
                )
        if self.then is not None:
            self.then(step, losses)

    def __enter__(self) -> TrainingBar:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
