"""Scoring rollouts: their error, how the model spent its updates, and where.

Each test trajectory is rolled out from its burn-in frames to its last frame; the
rollout is read at the frame times after the burn-in and compared with the truth
(`evaluate`; `protocol="authors"` scores as the authors' released code does, to set
figures beside theirs). On billiards, `event_recall` says how many collisions the
model updated at.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import Tensor

from .data import Trajectories
from .errors import ConfigError, DataError
from .forcing import SkipRule, teacher_forcing
from .model import SequenceModel
from .progress import bar
from .rollout import Rollout, rollout

PROTOCOLS = ("pcnode", "authors")


@torch.no_grad()
def evaluate(model: SequenceModel, data: Tensor | Trajectories, n_burn: int = 4, batch_size: int = 1024,
             progress: bool | str | Callable[[int], None] | None = True, scale: Tensor | None = None,
             protocol: str = "pcnode",
             rule: SkipRule | None = None) -> dict[str, float]:
    """Roll out every trajectory from its burn-in and score it.

    Main arguments:
        data: N true trajectories, (N, T, state_dim) or `Trajectories` with their
            times (unevenly sampled: the rollout is read at those times and runs until
            each trajectory's last real frame), padding mask (padded frames are not
            scored) and known inputs (`u`, for a model that reads them: the rollout is
            given every frame's inputs, the future ones included, as readings at the
            frames' times). Frames `0..n_burn-1` are given.

    Other arguments:
        progress: a bar over the trajectories scored, once scoring has run for a second
            (False or None: none; a string: its label; see `pcnode.progress`), or a
            callable given the number of trajectories done per batch.
        scale: (state_dim,) factors applied to errors before squaring (a standard
            deviation per dim turns standardised errors back into your units).
        protocol: "pcnode" (the default, described below) or "authors", the scoring of
            the authors' released code, so that figures can be set beside theirs: the
            MSE is the mean over all T frames, frame 0 (exact), frames 1..n_burn-1 (the
            burn-in's one-step predictions from the true previous frame) and the
            rollout after it, read at each frame from the last step that started more
            than half a frame before it; and the mean dt is that of the segments that
            ended during teacher forcing on `data` with `rule` (evenly sampled,
            unpadded trajectories only).
        rule: the skip rule of that teacher forcing (default `SkipRule(n_burn=n_burn)`).

    Returns a dict with
        mse: mean squared error over frames `n_burn..T-1` (auxiliary dims left out),
        mean_dt: mean span between model-chosen updates,
        updates: mean model-chosen updates per trajectory (from the last burn-in frame on),
        rollout_s: wall time of the rollouts alone,
        nfe: mean vector-field evaluations per trajectory batch (ODE-RNN; else 0),
        solver_steps: mean accepted ODE solver steps per trajectory (ODE-RNN; else 0;
            NaN for torchdiffeq's adaptive solvers).
    """
    data = Trajectories.of(data)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown scoring protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if protocol == "authors" and (data.t is not None or data.mask is not None):
        raise ConfigError("the authors' protocol scores evenly sampled, unpadded trajectories; "
                          "use protocol='pcnode' for series with times or padding")
    if batch_size < 1 or n_burn < 1:
        raise ConfigError(f"need batch_size >= 1 and n_burn >= 1, got {batch_size} and {n_burn}")
    seqs = data.x
    if seqs.ndim != 3 or seqs.shape[-1] != model.config.state_dim:
        raise DataError(f"sequences must have shape (N, T, {model.config.state_dim}); got {tuple(seqs.shape)}")
    data.check_inputs(model.config.input_dim, "data")
    N, T, _ = seqs.shape
    if N == 0:
        raise DataError("no sequences to evaluate")
    if T <= n_burn:
        raise DataError(f"sequences have {T} frames; need more than the {n_burn} burn-in frames")
    keep = seqs.shape[-1] - model.config.aux_dims
    # Frame j is scored when the transition into it is real.
    real = torch.cat([data.real.new_ones(N, 1), data.real], 1)
    short = (real.sum(1) <= n_burn).nonzero()
    if len(short):
        raise DataError(f"sequence {short[0, 0].item()} has {real[short[0, 0]].sum().item()} real frames; "
                        f"need more than the {n_burn} burn-in frames")
    scale = seqs.new_ones(seqs.shape[-1]) if scale is None else scale.to(seqs)
    was_training = model.training
    model.eval()
    sq_err, dts, updates, seconds, nfe, steps, batches = 0.0, [], [], 0.0, 0, 0.0, 0
    shown = bar(not callable(progress) and progress, total=N, desc="evaluate", unit="traj", leave=False)
    count = progress if callable(progress) else shown.update
    for lo in range(0, N, batch_size):
        batch = seqs[lo:lo + batch_size]
        # Known inputs: every frame's, as readings at the frames' times.
        given = {} if data.u is None else {"u": data.u[lo:lo + batch_size], "t_u": data.times[lo:lo + batch_size]}
        start = time.perf_counter()
        if protocol == "authors":
            ro = rollout(model, batch[:, :n_burn], horizon=T - 1, **given)
            pred = ro.at(torch.arange(1, T, dtype=seqs.dtype, device=seqs.device), offset=0.5)
        elif data.t is None:
            ro = rollout(model, batch[:, :n_burn], horizon=T - 1, **given)
            pred = ro.frames()
        else:
            tb = data.times[lo:lo + batch_size]
            ro = rollout(model, batch[:, :n_burn], horizon=tb[:, -1], t_burn=tb[:, :n_burn], **given)
            pred = ro.at(tb[:, n_burn:])
        if batch.is_cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        if protocol == "authors":  # frame 0 is exact and counts in the mean
            err = ((pred - batch[:, 1:]) * scale)[..., :keep].pow(2)
            sq_err += (err.sum(dim=(1, 2)) / (T * keep)).sum().item()
        else:
            w = real[lo:lo + batch_size, n_burn:].to(seqs.dtype).unsqueeze(-1)
            err = ((pred - batch[:, n_burn:]) * scale)[..., :keep].pow(2) * w
            sq_err += (err.sum(dim=(1, 2)) / (w.sum(dim=(1, 2)) * keep)).sum().item()
        dts.append(ro.dt[:, n_burn - 1:][torch.isfinite(ro.t[:, n_burn - 1:])])
        updates.append(ro.updates.to(seqs.dtype))
        nfe += ro.nfe
        steps += ro.solver_steps * len(batch)
        batches += 1
        count(len(batch))
    shown.close()
    mean_dt = torch.cat(dts).mean().item()
    if protocol == "authors":
        mean_dt = teacher_forcing(model, data, rule or SkipRule(n_burn=n_burn)).mean_dt
    model.train(was_training)
    return {
        "mse": sq_err / N,
        "mean_dt": mean_dt,
        "updates": torch.cat(updates).mean().item(),
        "rollout_s": seconds,
        "nfe": nfe / batches,
        "solver_steps": steps / N,
    }


def event_recall(ro: Rollout, events: Tensor, within: float = 1.0) -> float:
    """How many of the true events (collisions) after the burn-in have a model update near them.

    Args:
        ro: rollouts of B trajectories.
        events: (B, T) counts of events per frame interval: `events[:, k]` happened after
            frame k-1 and up to frame k (`pcnode.tasks.collisions`).
        within: frames of slack on either side of that interval.

    Returns the fraction of the events at frames k >= n_burn whose trajectory has a
    model-chosen update at a time in [k - within, k + within] (NaN if there are none):
    with `within` = 1, from the start of the event's interval to one frame after its end.
    """
    k = torch.arange(ro.n_burn, events.shape[1], dtype=ro.t.dtype, device=ro.t.device)
    chosen = ro.t[:, ro.n_burn - 1:].unsqueeze(1)                          # (B, 1, K)
    lo, hi = (k - within).view(1, -1, 1), (k + within).view(1, -1, 1)
    near = ((chosen >= lo) & (chosen <= hi)).any(-1)                        # (B, frames after the burn-in)
    counts = events[:, ro.n_burn:].to(ro.t.dtype)
    total = counts.sum().item()
    return (counts * near).sum().item() / total if total else math.nan
