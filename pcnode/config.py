"""Training settings, and one loader that reads any config dataclass back from JSON.

Configs are typed dataclasses (`ModelConfig`, `TrainConfig`, `SegmentRule`,
`SeriesSpec`, ...), saved as JSON next to every run. `load_config` turns such JSON
back into the dataclass: unknown keys are refused, nested configs are built, and the
result is validated, so a hand-edited config fails with one clear line.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

import torch

from .errors import ConfigError

PRECISIONS = ("float32", "bfloat16")


@dataclass
class TrainConfig:
    """Optimisation settings, the skip threshold's form and the loss weights.

    The defaults are the authors' (25k steps of batch 256), but for the threshold (see
    `pcnode.segments`) and the three settings marked as ours.
    """

    steps: int = 25_000  # optimiser steps
    batch_size: int = 256  # trajectories per step (split across processes under torchrun)
    lr: float = 1e-3  # Adam's learning rate...
    weight_decay: float = 1e-7
    decay_every: int = 1000  # ...multiplied by decay_gamma every decay_every steps
    decay_gamma: float = 0.75
    eval_every: int = 1000  # steps between rollouts of the test trajectories
    eval_size: int = 512  # test trajectories rolled out then
    # Ours: the share of the training trajectories (the last ones) held out as a validation
    # split; every evaluation also rolls it out, and the run keeps the weights that scored
    # best on it in best.safetensors (`load_run(..., weights="best")`). 0: no split.
    val_fraction: float = 0.0
    checkpoint_every: int = 1000  # steps between checkpoints (and at the end)
    seed: int = 0  # batches, random skips and (through build_model) initial weights
    device: str = "cpu"
    # "bfloat16" runs the forward pass under torch.autocast (matrix products in bfloat16,
    # losses and weights in float32); see the documentation's measurements before choosing it.
    precision: str = "float32"
    # The skip threshold, fixed in the data's units when the run starts (`SegmentRule.resolve`):
    epsilon: float | None = None  # a squared error in the data's units (the authors' form)...
    relative_epsilon: float | None = None  # ...or a multiple of the data's mean squared change per frame
    events: float | None = None  # ours: the event option's line threshold, a multiple of that change
    jump_prob: float = 0.01  # also skip at random with this probability
    zero_span_weight: float = 0.1  # weight of the zero-span loss
    dt_weight: float = 1e-5  # weight of the dt head's loss
    # Ours: the probability that an update after the burn-in reads the model's own
    # prediction of the frame instead of the true frame, as every update of a rollout does.
    feed_predictions: float = 0.0
    # Ours, for the ODE-RNN alone: the weight of the regulariser of Finlay et al. (2020),
    # the kinetic energy of its vector field plus the squared Frobenius norm of the field's
    # Jacobian (`VectorField.regulariser`), which rewards fields an adaptive solver crosses
    # in few steps. Finlay et al. integrate it along the path; it is taken once per span,
    # at the state the span starts from, times the span.
    field_penalty: float = 0.0
    # Ours: start from the weights of this run (a folder, or pretrained:NAME for a shipped
    # model; the weights `pcnode eval` scores) instead of the seed's, to fine-tune it. Its
    # model must be the one trained; a resumed run continues from its own checkpoint.
    init: str | None = None

    def validate(self) -> TrainConfig:
        for name in ("steps", "batch_size", "decay_every", "eval_every", "eval_size", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        numbers = (
            "lr",
            "weight_decay",
            "decay_gamma",
            "val_fraction",
            "epsilon",
            "relative_epsilon",
            "events",
            "jump_prob",
            "zero_span_weight",
            "dt_weight",
            "feed_predictions",
            "field_penalty",
        )
        for name in numbers:
            value = getattr(self, name)
            if value is None and name in ("epsilon", "relative_epsilon", "events"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"`{name}` must be a finite number, got {value!r}")
            # Written as `not (x >= 0)` so that NaN is refused too.
            if name != "lr" and not value >= 0:
                raise ConfigError(f"`{name}` must be >= 0, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive and finite, got {self.lr}")
        if not self.val_fraction < 1:
            raise ConfigError(f"`val_fraction` must be in [0, 1), got {self.val_fraction!r}")
        if not (0 < self.decay_gamma <= 1 and self.jump_prob <= 1 and self.feed_predictions <= 1):
            raise ConfigError("need 0 < `decay_gamma` <= 1, `jump_prob` <= 1 and `feed_predictions` <= 1")
        if self.epsilon is not None and self.relative_epsilon is not None:
            raise ConfigError(
                "give the skip threshold as `epsilon` (a squared error in the data's units) or as "
                "`relative_epsilon` (a multiple of the data's mean squared change per frame), not both"
            )
        if self.init is not None and (not isinstance(self.init, str) or not self.init):
            raise ConfigError(f"`init` must name a run folder or pretrained:NAME, got {self.init!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        check_device(self.device)
        return self


def check_device(name: str) -> torch.device:
    """The torch device `name` names, or ConfigError if it is malformed or not available here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but no CUDA GPU is available; use 'cpu'")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use 'cpu' or 'cuda'")
    return device


def check_fields(cls: type, d: dict, what: str) -> None:
    """Refuse keys of `d` that are not fields of the dataclass `cls`."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {what} settings {sorted(unknown)}; known: {sorted(names)}")


def load_config(cls: type, d: dict, what: str):
    """The dataclass `cls` from its JSON form `d`, validated when `cls` has `validate()`.

    `what` names the settings in messages ("model", "training", ...).
    """
    if not isinstance(d, dict):
        raise ConfigError(f"the {what} settings must be a mapping, got {type(d).__name__}")
    check_fields(cls, d, what)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in d.items():
        kind = hints.get(name)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            value = load_config(kind, value, f"{what} '{name}'")
        values[name] = value
    try:
        config = cls(**values)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"bad {what} settings ({e})") from None
    return config.validate() if hasattr(config, "validate") else config
