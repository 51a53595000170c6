"""Known inputs given to a rollout as readings, each in force until the next.

`check_readings` refuses inputs a model cannot read (a wrong width, times after the
burn-in's first frame, NaN) and warns where no reading lies past the burn-in, so the last
one is held; `Readings` answers which reading is in force at a time, and when an input
next moves past a segment rule's `input_threshold` (where a PC-ODE's jump must end).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from .errors import DataError
from .model import SequenceModel


class Readings:
    """Known inputs as readings (B, Q, U) at times (B, Q), each in force until the next."""

    def __init__(self, u: Tensor, t: Tensor):
        self.u, self.t = u, t.contiguous()

    def at(self, rows: Tensor, t: Tensor) -> Tensor:
        """The last reading at or before each time `t` (R, n) of the rows `rows` (R,) -> (R, n, U)."""
        k = (torch.searchsorted(self.t[rows], t.contiguous(), right=True) - 1).clamp(min=0)
        return self.u[rows.unsqueeze(-1), k]

    def next_change(self, rows: Tensor, t: Tensor, read: Tensor, threshold: float) -> Tensor:
        """For each row, the time (R, 1) of the first reading after `t` (R, 1) that differs
        from `read` (R, U) by more than `threshold` in some input; inf where none does."""
        after = self.t[rows] > t
        changed = (self.u[rows] - read.unsqueeze(1)).abs().amax(-1) > threshold
        return torch.where(after & changed, self.t[rows], math.inf).amin(-1, keepdim=True)


def check_readings(model: SequenceModel, u, t_u, t_burn: Tensor) -> Readings | None:
    """Check the known inputs given to `rollout` against the model and the burn-in times."""
    U = model.config.input_dim
    B, n_burn = t_burn.shape
    if not U:
        if u is not None or t_u is not None:
            raise DataError(
                "known inputs were given but the model reads none (its input_dim is 0); leave out `u` and `t_u`"
            )
        return None
    if not isinstance(u, Tensor) or u.ndim != 3 or u.shape[0] != B or u.shape[2] != U or u.shape[1] == 0:
        raise DataError(
            f"the model reads {U} known input(s): give `u` shaped ({B}, readings, {U}) with their "
            f"times `t_u`; got {tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__}"
        )
    if not u.is_floating_point() or not torch.isfinite(u).all():
        raise DataError("known inputs `u` must be finite floating-point numbers; fill or drop the gaps")
    Q = u.shape[1]
    if t_u is None:
        t_u = torch.arange(Q, dtype=t_burn.dtype, device=t_burn.device).expand(B, Q)
    if (
        not isinstance(t_u, Tensor)
        or t_u.shape != (B, Q)
        or not torch.isfinite(t_u).all()
        or (t_u.diff(dim=1) < 0).any()
    ):
        raise DataError(
            f"reading times `t_u` must be finite, non-decreasing and shaped ({B}, {Q}); got "
            f"{tuple(t_u.shape) if isinstance(t_u, Tensor) else type(t_u).__name__}"
        )
    t_u = t_u.to(t_burn.dtype)
    late = (t_u[:, 0] > t_burn[:, 0]).nonzero()
    if len(late):
        b = int(late[0, 0])
        raise DataError(
            f"trajectory {b}'s known inputs begin at {t_u[b, 0].item():g}, after its first burn-in "
            f"frame ({t_burn[b, 0].item():g}); give a reading at or before it"
        )
    held = (t_u[:, -1] <= t_burn[:, -1]).sum().item()
    if held:
        warnings.warn(
            f"no known inputs after the last burn-in frame for {held} of {B} trajectories: their last "
            "reading is held to the horizon; give `u` and `t_u` up to the horizon to use the true future "
            "inputs",
            RuntimeWarning,
            stacklevel=3,
        )
    return Readings(u.to(t_burn.dtype), t_u)
