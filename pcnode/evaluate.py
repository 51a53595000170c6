"""Scoring rollouts: their error, how the model spent its updates, and where.

Each test trajectory is rolled out from its burn-in frames to its last frame; the
rollout is read at the frame times after the burn-in and compared with the truth
(`evaluate`; `protocol="authors"` scores as the authors' released code does, to set
figures beside theirs). `trajectory_mse` gives each trajectory's error, and `mse_ratio`
compares two models on the same trajectories with a paired bootstrap interval. On
billiards, `event_recall` says how many collisions the model updated at (`updates_near`
the same for update times from any source, such as teacher forcing's,
`pcnode.forcing.forced_update_times`; `chance_recall` what as many updates at random
times would reach).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .data import Trajectories
from .errors import ConfigError, DataError
from .model import SequenceModel, evaluating
from .progress import bar
from .rollout import Rollout, rollout
from .segments import SegmentRule

PROTOCOLS = ("pcnode", "authors")


@torch.no_grad()
def evaluate(
    model: SequenceModel,
    data: Tensor | Trajectories,
    rule: SegmentRule | None = None,
    batch_size: int = 1024,
    progress: bool | str | Callable[[int], object] | None = True,
    scale: Tensor | None = None,
    protocol: str = "pcnode",
) -> dict[str, float]:
    """Roll out every trajectory from its burn-in and score it.

    Main arguments:
        data: N true trajectories, (N, T, state_dim) or `Trajectories` with their
            times (unevenly sampled: the rollout is read at those times and runs until
            each trajectory's last real frame), padding mask (padded frames are not
            scored) and known inputs (`u`, for a model that reads them: the rollout is
            given every frame's inputs, the future ones included, as readings at the
            frames' times). Frames `0..n_burn-1` are given.
        rule: where the model's updates happen, its burn-in `n_burn` included (default
            `model.rule`, the run's).

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
            than half a frame before it (evenly sampled, unpadded trajectories only).
            Their code also reports the mean length of the segments teacher forcing
            makes, a training metric: `pcnode.forcing.forced_mean_dt`.

    Returns a dict with
        mse: mean squared error over frames `n_burn..T-1` (auxiliary dims left out),
        mean_dt: mean span between model-chosen updates,
        updates: mean model-chosen updates per trajectory (from the last burn-in frame on),
        rollout_s: wall time of the rollouts alone,
        nfe: mean vector-field evaluations per trajectory batch (ODE-RNN; else 0),
        solver_steps: mean accepted ODE solver steps per trajectory (ODE-RNN; else 0;
            NaN for torchdiffeq's adaptive solvers).
    """
    parts = _scored(model, data, rule, batch_size, progress, scale, protocol)
    return {
        "mse": torch.cat([p.mse for p in parts]).double().mean().item(),
        "mean_dt": torch.cat([p.dts for p in parts]).mean().item(),
        "updates": torch.cat([p.updates for p in parts]).mean().item(),
        "rollout_s": sum(p.seconds for p in parts),
        "nfe": sum(p.nfe for p in parts) / len(parts),
        "solver_steps": sum(p.solver_steps for p in parts) / len(data),
    }


@torch.no_grad()
def trajectory_mse(
    model: SequenceModel,
    data: Tensor | Trajectories,
    rule: SegmentRule | None = None,
    batch_size: int = 1024,
    scale: Tensor | None = None,
    protocol: str = "pcnode",
) -> Tensor:
    """Each trajectory's MSE, (N,) float64: the numbers `evaluate`'s `mse` is the mean of
    (same arguments), for comparing two models on the same trajectories (`mse_ratio`)."""
    parts = _scored(model, data, rule, batch_size, False, scale, protocol)
    return torch.cat([p.mse for p in parts]).double().cpu()


def mse_ratio(a: Tensor, b: Tensor, draws: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Model A's test MSE over model B's on the same trajectories, with a 95% interval.

    `a`, `b`: (N,) per-trajectory MSEs (`trajectory_mse`) of the same N trajectories. The
    interval is the paired bootstrap's: the trajectories are drawn with replacement
    `draws` times, both models' errors on each draw together, and the ratio of the
    means taken each time; its 2.5% and 97.5% quantiles. An interval that holds 1 says
    the test set cannot tell the two apart. Returns (ratio, low, high).
    """
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise DataError(
            f"need two per-trajectory errors of the same N trajectories; got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    a, b = a.double().cpu(), b.double().cpu()
    pick = torch.randint(0, len(a), (draws, len(a)), generator=torch.Generator().manual_seed(seed))
    ratios = a[pick].mean(1) / b[pick].mean(1)
    low, high = torch.quantile(ratios, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return (a.mean() / b.mean()).item(), low, high


def _scored(
    model: SequenceModel,
    data: Tensor | Trajectories,
    rule: SegmentRule | None,
    batch_size: int,
    progress: bool | str | Callable[[int], object] | None,
    scale: Tensor | None,
    protocol: str,
) -> list[Scored]:
    """Score `data` batch by batch (see `evaluate`)."""
    data = Trajectories.of(data)
    rule = (rule or model.rule).bind(model)
    real = _check(model, data, rule.n_burn, batch_size, protocol)
    scale = data.x.new_ones(data.x.shape[-1]) if scale is None else scale.to(data.x)
    shown = bar(
        not callable(progress) and bool(progress) and progress,
        total=len(data),
        desc="evaluate",
        unit="traj",
        leave=False,
    )
    count = progress if callable(progress) else shown.update
    try:
        with evaluating(model):
            return [
                _score_batch(
                    model, data[lo : lo + batch_size], real[lo : lo + batch_size], rule, scale, protocol, count
                )
                for lo in range(0, len(data), batch_size)
            ]
    finally:
        shown.close()


def _check(model: SequenceModel, data: Trajectories, n_burn: int, batch_size: int, protocol: str) -> Tensor:
    """Refuse what `evaluate` cannot score; return which frames are scored, (N, T) bool:
    frame j where the transition into it is real."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown scoring protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if protocol == "authors" and (data.t is not None or data.mask is not None):
        raise ConfigError(
            "the authors' protocol scores evenly sampled, unpadded trajectories; "
            "use protocol='pcnode' for series with times or padding"
        )
    if batch_size < 1:
        raise ConfigError(f"need batch_size >= 1, got {batch_size}")
    seqs = data.x
    if seqs.ndim != 3 or seqs.shape[-1] != model.config.state_dim:
        raise DataError(f"sequences must have shape (N, T, {model.config.state_dim}); got {tuple(seqs.shape)}")
    data.check_inputs(model.config.input_dim, "data")
    N, T, _ = seqs.shape
    if N == 0:
        raise DataError("no sequences to evaluate")
    if T <= n_burn:
        raise DataError(f"sequences have {T} frames; need more than the {n_burn} burn-in frames")
    real = torch.cat([data.real.new_ones(N, 1), data.real], 1)
    short = (real.sum(1) <= n_burn).nonzero()
    if len(short):
        raise DataError(
            f"sequence {short[0, 0].item()} has {real[short[0, 0]].sum().item()} real frames; "
            f"need more than the {n_burn} burn-in frames"
        )
    return real


class Scored(NamedTuple):
    """One batch's share of the scores: each trajectory's MSE, the chosen dts, updates per
    trajectory, rollout seconds, vector-field evaluations and summed solver steps."""

    mse: Tensor
    dts: Tensor
    updates: Tensor
    seconds: float
    nfe: int
    solver_steps: float


def _score_batch(
    model: SequenceModel,
    batch: Trajectories,
    real: Tensor,
    rule: SegmentRule,
    scale: Tensor,
    protocol: str,
    count: Callable[[int], object],
) -> Scored:
    """Roll one batch out from its burn-in and score it (see `evaluate`)."""
    seqs, n_burn = batch.x, rule.n_burn
    T = seqs.shape[1]
    keep = model.scored_dims
    # Known inputs: every frame's, as readings at the frames' times.
    u, t_u = (None, None) if batch.u is None else (batch.u, batch.times)
    start = time.perf_counter()
    if protocol == "authors":
        ro = rollout(model, seqs[:, :n_burn], horizon=T - 1, rule=rule, u=u, t_u=t_u)
        pred = ro.at(torch.arange(1, T, dtype=seqs.dtype, device=seqs.device), offset=0.5)
    elif batch.t is None:
        ro = rollout(model, seqs[:, :n_burn], horizon=T - 1, rule=rule, u=u, t_u=t_u)
        pred = ro.frames()
    else:
        tb = batch.times
        ro = rollout(model, seqs[:, :n_burn], horizon=tb[:, -1], t_burn=tb[:, :n_burn], rule=rule, u=u, t_u=t_u)
        pred = ro.at(tb[:, n_burn:])
    if seqs.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if protocol == "authors":  # frame 0 is exact and counts in the mean
        err = ((pred - seqs[:, 1:]) * scale)[..., :keep].pow(2)
        mse = err.sum(dim=(1, 2)) / (T * keep)
    else:
        w = real[:, n_burn:].to(seqs.dtype).unsqueeze(-1)
        err = ((pred - seqs[:, n_burn:]) * scale)[..., :keep].pow(2) * w
        mse = err.sum(dim=(1, 2)) / (w.sum(dim=(1, 2)) * keep)
    count(len(seqs))
    return Scored(
        mse,
        ro.dt[:, n_burn - 1 :][torch.isfinite(ro.t[:, n_burn - 1 :])],
        ro.updates.to(seqs.dtype),
        seconds,
        ro.nfe,
        ro.solver_steps * len(seqs),
    )


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
    return updates_near(_chosen(ro), events, ro.n_burn, within)


def _chosen(ro: Rollout) -> Tensor:
    """The start times of a rollout's steps from the last burn-in frame on: the updates
    `event_recall` and `chance_recall` judge. (B, K), inf where there is none."""
    return ro.t[:, ro.n_burn - 1 :]


def updates_near(times: Tensor, events: Tensor, first: int, within: float = 1.0) -> float:
    """How many of the events at frames k >= `first` have an update at a time in
    [k - within, k + within]: `event_recall` for update times from any source (a
    `Stream`'s, say). times: (B, K) update times, inf where there is none; events: (B, T)
    as `event_recall` takes them. NaN if there are no events."""
    k = torch.arange(first, events.shape[1], dtype=times.dtype, device=times.device)
    chosen = times.unsqueeze(1)  # (B, 1, K)
    lo, hi = (k - within).view(1, -1, 1), (k + within).view(1, -1, 1)
    near = ((chosen >= lo) & (chosen <= hi)).any(-1)  # (B, frames from `first`)
    counts = events[:, first:].to(times.dtype)
    total = counts.sum().item()
    return (counts * near).sum().item() / total if total else math.nan


def chance_recall(times: Tensor | Rollout, events: Tensor, first: int | None = None, within: float = 1.0) -> float:
    """The recall `updates_near` expects of as many updates placed at random: what a
    recall is worth, since the denser the updates, the more events land near one by chance.
    Given a rollout, the chance level of its `event_recall`: its updates as that reads
    them, `first` its `n_burn`.

    Each row keeps its updates at times <= `first - 1` (the burn-in's) and moves the
    others, n of them, to n independent times uniform on (first - 1, T - 1], the span a
    rollout of T frames chooses its updates in. An event at frame k whose window
    [k - within, k + within] covers a length l of that span is then recalled with
    probability 1 - (1 - l / (T - first))^n. Arguments as `updates_near` takes them.
    """
    if isinstance(times, Rollout):
        times, first = _chosen(times), times.n_burn
    if first is None:
        raise ConfigError("chance_recall needs `first`, the first frame whose events count, with update times")
    T = events.shape[1]
    k = torch.arange(first, T, dtype=times.dtype, device=times.device)
    lo, hi = k - within, k + within
    kept = times.masked_fill(times > first - 1, math.inf).unsqueeze(1)  # (B, 1, K)
    fixed = ((kept >= lo.view(1, -1, 1)) & (kept <= hi.view(1, -1, 1))).any(-1)  # (B, frames)
    n = (torch.isfinite(times) & (times > first - 1)).sum(1, keepdim=True).to(times.dtype)  # (B, 1)
    cover = (hi.clamp(max=T - 1) - lo.clamp(min=first - 1)).clamp(min=0) / (T - first)  # (frames,)
    hit = torch.where(fixed, 1.0, 1 - (1 - cover).pow(n))
    counts = events[:, first:].to(times.dtype)
    total = counts.sum().item()
    return (counts * hit).sum().item() / total if total else math.nan
