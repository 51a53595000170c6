"""Training with a progress bar: `fit` as every job here runs it."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor
from tqdm import tqdm

from ..data import Trajectories
from ..model import SequenceModel
from ..config import TrainConfig
from ..segments import SegmentRule
from ..train import fit


def fit_with_bar(model: SequenceModel, train: Tensor | Trajectories, test: Tensor | Trajectories | None,
                 config: TrainConfig, run_dir: Path, data: dict, rule: SegmentRule | None = None, resume: bool = False,
                 label: str | None = None) -> list[dict]:
    """`pcnode.fit` into `run_dir`, with a bar showing the loss and the training rule's mean dt."""
    bar = None

    def on_step(step, losses):
        nonlocal bar
        if bar is None:  # opened at the first step, so that bad input fails with one line on stderr
            bar = tqdm(total=config.steps, initial=step - 1, desc=label or model.config.kind, unit="step",
                       dynamic_ncols=True)
        bar.n = step
        if step % 10 == 0 or step == config.steps:
            bar.set_postfix(loss=f"{losses.displacement.item():.2e}", dt=f"{losses.mean_dt:.2f}")
            bar.refresh()

    try:
        return fit(model, train, config, rule=rule, test=test, run_dir=run_dir, resume=resume, data=data,
                   on_step=on_step)
    finally:
        if bar is not None:
            bar.close()
