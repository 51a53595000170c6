"""The segment rule: where a model's updates happen, resolved once and read everywhere.

Between two updates a model is on a *segment*. `SegmentRule` says where segments end:
the burn-in in which every frame updates, the skip threshold a stretched segment must
meet, the straight-line test of the event option, the bounds on a jump and the input
changes that end one, and whether the model chooses its updates at all. It plays the
part of a step-size controller in an ODE solver: one small object, resolved once and
handed down, instead of settings tested in many places.

`fit` resolves a run's rule from the training data (the threshold in the data's units)
and saves it in the run's config.json under "segments"; a model carries its rule as
`model.rule` (`load_run` restores it), and teacher forcing, rollouts, scoring, planning
and `Stream` read it from the model unless the caller passes another.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError

# The authors' skip threshold, a squared error in the units of their data.
AUTHORS_EPSILON = 3e-3
# The threshold a training run takes when given none: this multiple of the training
# data's mean squared change per frame (the measurements behind it are in docs/training.md).
DEFAULT_RELATIVE_EPSILON = 2.5


@dataclass(frozen=True)
class SegmentRule:
    """Where a model's segments end.

    jumps: the model chooses when to update (a PC-ODE); False: it updates at every
        frame or reading (RNN, ODE-RNN, CfC, or a PC-ODE stepped frame by frame). None:
        whichever the model can (`bind`).
    n_burn: frames at the start of a trajectory where every row updates.
    threshold: the skip threshold, a mean squared error in the data's units: a segment
        is stretched over one more frame while its prediction stays within it (teacher
        forcing), and a streamed reading that departs further ends it. None until a
        training run resolves it from its data (`resolve`).
    event_threshold: the event option (None: off): a segment also ends where the data
        leaves the straight line through its first frame with the velocity of its first
        step by more than this (a mean squared distance in the data's units).
    min_dt, max_dt: bounds on a chosen jump (frames); a jump that would stop less than
        `min_dt` short of a rollout's horizon runs on to it. Teacher forcing keeps the
        lower bound in frames: a segment over fewer than `min_dt` frames is stretched
        whatever its error (on evenly sampled data, the bound a rollout's jumps keep).
    input_threshold: a jump also ends where a known input moves more than this (the
        model's units, max over inputs) from the value its update read; 0: at any change.
    """

    jumps: bool | None = None
    n_burn: int = 4
    threshold: float | None = None
    event_threshold: float | None = None
    min_dt: float = 1.0
    max_dt: float = 1000.0
    input_threshold: float = 0.0

    def __post_init__(self):
        if self.jumps is not None and not isinstance(self.jumps, bool):
            raise ConfigError(f"`jumps` must be true, false or null, got {self.jumps!r}")
        if isinstance(self.n_burn, bool) or not isinstance(self.n_burn, int) or self.n_burn < 1:
            raise ConfigError(f"`n_burn` must be a positive integer, got {self.n_burn!r}")
        for name in ("threshold", "event_threshold", "input_threshold", "min_dt", "max_dt"):
            value = getattr(self, name)
            if value is None and name in ("threshold", "event_threshold"):
                continue
            # `not value >= 0` also refuses NaN; an infinite max_dt would let a rollout's clock overflow.
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not value >= 0
            ):
                raise ConfigError(f"`{name}` must be a finite number >= 0, got {value!r}")
        if not 0 < self.min_dt <= self.max_dt:
            raise ConfigError(f"need 0 < `min_dt` <= `max_dt`, got {self.min_dt} and {self.max_dt}")

    def replace(self, **changes) -> SegmentRule:
        """This rule with some fields changed (and checked)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def keeps(self, err: Tensor, away: Tensor | None = None, frames: Tensor | None = None) -> Tensor:
        """Where a segment stretched over one more frame still holds: its prediction's mean
        squared error `err` (B,) is below the threshold and, with the event option, the
        data's mean squared distance `away` (B,) from the segment's straight line is below
        `event_threshold`. With `frames` (B,), the frames the segment would span if it
        ended here, one shorter than `min_dt` holds whatever its error. -> (B,) bool."""
        if self.threshold is None:
            raise ConfigError(
                "this segment rule has no skip threshold yet; a training run resolves it from its "
                "data (`SegmentRule.resolve`), or give `threshold`"
            )
        fits = err < self.threshold
        if away is not None and self.event_threshold is not None:
            fits = fits & (away < self.event_threshold)
        if frames is not None:
            fits = fits | (frames < self.min_dt)
        return fits

    def wait(self, model, h: Tensor) -> Tensor:
        """Frames until the next update from the states `h` (B, state_size) -> (B, 1): the
        model's dt head within [min_dt, max_dt] if it jumps, else one frame (`bind` first)."""
        if not self.jumps:
            return h.new_ones(h.shape[0], 1)
        # `clamp` passes NaN through (overflowing weights give inf - inf): NaN means "update soon".
        dt = torch.nan_to_num(model.dt_raw(h), nan=self.min_dt)
        return dt.clamp(self.min_dt, self.max_dt)

    def bind(self, model) -> SegmentRule:
        """This rule for `model`: `jumps` decided (None: whether the model has a dt head);
        refused if it asks a model without one to choose its updates."""
        if self.jumps is None:
            return self.replace(jumps=model.jumpy)
        if self.jumps and not model.jumpy:
            raise ConfigError(
                f"the {model.config.kind} model has no dt head, so it cannot choose its updates; "
                "give it a rule with jumps=False"
            )
        return self

    @classmethod
    def resolve(
        cls,
        rule: SegmentRule,
        data_change: float,
        epsilon: float | None = None,
        relative_epsilon: float | None = None,
        events: float | None = None,
    ) -> SegmentRule:
        """`rule` with its thresholds in the data's units, fixed once for a training run.

        The skip threshold is `epsilon` (a squared error in the data's units, the authors'
        form), or `relative_epsilon` times `data_change`, the training data's mean squared
        change per frame (`mean_square_change`; default `DEFAULT_RELATIVE_EPSILON`), which
        means the same in any units. `events`, a multiple of `data_change`, turns the
        event option on. A threshold the rule already holds is kept.
        """
        if epsilon is not None and relative_epsilon is not None:
            raise ConfigError(
                "give the skip threshold as `epsilon` (a squared error in the data's units) or as "
                "`relative_epsilon` (a multiple of the data's mean squared change per frame), not both"
            )
        threshold = rule.threshold
        if threshold is None:
            relative = DEFAULT_RELATIVE_EPSILON if relative_epsilon is None else relative_epsilon
            threshold = epsilon if epsilon is not None else relative * data_change
        event = rule.event_threshold
        if event is None and events is not None:
            event = events * data_change
        return rule.replace(threshold=threshold, event_threshold=event)


def mean_square_change(seq: Tensor, mask: Tensor | None = None, keep: int | None = None) -> float:
    """The mean squared change of the state over one transition of `seq` (N, T, D): over
    the real transitions (`mask`, (N, T-1)) and the first `keep` dims (default all)."""
    keep = seq.shape[-1] if keep is None else keep
    total, count = 0.0, 0
    for lo in range(0, len(seq), 256):  # a few MB at a time, even for pixel frames
        sq = seq[lo : lo + 256, :, :keep].diff(dim=1).double().pow(2).mean(-1)
        if mask is not None:
            sq = sq[mask[lo : lo + 256]]
        total, count = total + sq.sum().item(), count + sq.numel()
    return total / max(count, 1)
