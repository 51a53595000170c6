"""Scoring rollouts the way the authors do.

Each test trajectory is rolled out from its burn-in frames to its last frame; the
rollout is read at the integer frame times and compared with the truth after the
burn-in. Alongside the error we report how the model spent its updates.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor

from .errors import ConfigError, DataError
from .model import SequenceModel
from .rollout import rollout


@torch.no_grad()
def evaluate(model: SequenceModel, seqs: Tensor, n_burn: int = 4, batch_size: int = 1024,
             progress=None, times: Tensor | None = None, mask: Tensor | None = None,
             scale: Tensor | None = None) -> dict[str, float]:
    """Roll out every sequence and score it.

    Args:
        seqs: (N, T, state_dim) true trajectories; frames `0..n_burn-1` are given.
        progress: optional callable receiving the number of trajectories done per batch.
        times: (N, T) real times of the frames for unevenly sampled data; the rollout
            is then read at those times and runs until each sequence's last real frame.
        mask: (N, T-1) bool, False for padded transitions; padded frames are not scored.
        scale: (state_dim,) factors applied to errors before squaring (a standard
            deviation per dim turns standardised errors back into your units).

    Returns a dict with
        mse: mean squared error over frames `n_burn..T-1` (auxiliary dims left out),
        mean_dt: mean span between model-chosen updates,
        updates: mean model-chosen updates per trajectory (from the last burn-in frame on),
        rollout_s: wall time of the rollouts alone,
        nfe: mean vector-field evaluations per trajectory batch (ODE-RNN; else 0).
    """
    if batch_size < 1 or n_burn < 1:
        raise ConfigError(f"need batch_size >= 1 and n_burn >= 1, got {batch_size} and {n_burn}")
    if seqs.ndim != 3 or seqs.shape[-1] != model.config.state_dim:
        raise DataError(f"sequences must have shape (N, T, {model.config.state_dim}); got {tuple(seqs.shape)}")
    N, T, _ = seqs.shape
    if N == 0:
        raise DataError("no sequences to evaluate")
    if T <= n_burn:
        raise DataError(f"sequences have {T} frames; need more than the {n_burn} burn-in frames")
    keep = seqs.shape[-1] - model.config.aux_dims
    if mask is None:
        mask = torch.ones(N, T - 1, dtype=torch.bool, device=seqs.device)
    # Frame j is scored when the transition into it is real.
    real = torch.cat([mask.new_ones(N, 1), mask.bool()], 1)
    short = (real.sum(1) <= n_burn).nonzero()
    if len(short):
        raise DataError(f"sequence {short[0, 0].item()} has {real[short[0, 0]].sum().item()} real frames; "
                        f"need more than the {n_burn} burn-in frames")
    scale = seqs.new_ones(seqs.shape[-1]) if scale is None else scale.to(seqs)
    was_training = model.training
    model.eval()
    sq_err, dts, updates, seconds, nfe, batches = 0.0, [], [], 0.0, 0, 0
    for lo in range(0, N, batch_size):
        batch = seqs[lo:lo + batch_size]
        start = time.perf_counter()
        if times is None:
            ro = rollout(model, batch[:, :n_burn], horizon=T - 1)
            pred = ro.frames()
        else:
            tb = times[lo:lo + batch_size]
            ro = rollout(model, batch[:, :n_burn], horizon=tb[:, -1], t_burn=tb[:, :n_burn])
            pred = ro.at(tb[:, n_burn:])
        if batch.is_cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        w = real[lo:lo + batch_size, n_burn:].to(seqs.dtype).unsqueeze(-1)
        err = ((pred - batch[:, n_burn:]) * scale)[..., :keep].pow(2) * w
        sq_err += (err.sum(dim=(1, 2)) / (w.sum(dim=(1, 2)) * keep)).sum().item()
        dts.append(ro.dt[:, n_burn - 1:][torch.isfinite(ro.t[:, n_burn - 1:])])
        updates.append(ro.updates.to(seqs.dtype))
        nfe += ro.nfe
        batches += 1
        if progress is not None:
            progress(len(batch))
    model.train(was_training)
    return {
        "mse": sq_err / N,
        "mean_dt": torch.cat(dts).mean().item(),
        "updates": torch.cat(updates).mean().item(),
        "rollout_s": seconds,
        "nfe": nfe / batches,
    }
