"""Training as every job here runs it: `fit` into a run folder, with its bar labelled."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ..config import TrainConfig
from ..data import Trajectories
from ..model import SequenceModel
from ..segments import SegmentRule
from ..train import fit


def fit_with_bar(
    model: SequenceModel,
    train: Tensor | Trajectories,
    test: Tensor | Trajectories | None,
    config: TrainConfig,
    run_dir: Path,
    data: dict,
    rule: SegmentRule | None = None,
    resume: bool = False,
    label: str | None = None,
) -> list[dict]:
    """`pcnode.fit` into `run_dir`, its bar labelled `label` (default: the model's kind)."""
    return fit(
        model,
        train,
        config,
        rule=rule,
        test=test,
        run_dir=run_dir,
        resume=resume,
        data=data,
        progress=label or model.config.kind,
    )
