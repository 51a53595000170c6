"""Scoring rollouts the way the authors do.

Each test trajectory is rolled out from its burn-in frames to its last frame; the
rollout is read at the integer frame times and compared with the truth after the
burn-in. Alongside the error we report how the model spent its updates.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor

from .errors import DataError
from .model import SequenceModel
from .rollout import rollout


@torch.no_grad()
def evaluate(model: SequenceModel, seqs: Tensor, n_burn: int = 4, batch_size: int = 1024,
             progress=None) -> dict[str, float]:
    """Roll out every sequence and score it.

    Args:
        seqs: (N, T, state_dim) true trajectories; frames `0..n_burn-1` are given.
        progress: optional callable receiving the number of trajectories done per batch.

    Returns a dict with
        mse: mean squared error over frames `n_burn..T-1` (auxiliary dims left out),
        mean_dt: mean span between model-chosen updates,
        updates: mean model-chosen updates per trajectory (from the last burn-in frame on),
        rollout_s: wall time of the rollouts alone,
        nfe: mean vector-field evaluations per trajectory batch (ODE-RNN; else 0).
    """
    if seqs.ndim != 3 or seqs.shape[-1] != model.config.state_dim:
        raise DataError(f"sequences must have shape (N, T, {model.config.state_dim}); got {tuple(seqs.shape)}")
    N, T, _ = seqs.shape
    if N == 0:
        raise DataError("no sequences to evaluate")
    if T <= n_burn:
        raise DataError(f"sequences have {T} frames; need more than the {n_burn} burn-in frames")
    keep = seqs.shape[-1] - model.config.aux_dims
    was_training = model.training
    model.eval()
    sq_err, dts, updates, seconds, nfe, batches = 0.0, [], [], 0.0, 0, 0
    for lo in range(0, N, batch_size):
        batch = seqs[lo:lo + batch_size]
        start = time.perf_counter()
        ro = rollout(model, batch[:, :n_burn], horizon=T - 1)
        pred = ro.frames()
        if batch.is_cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        sq_err += (pred - batch[:, n_burn:])[..., :keep].pow(2).mean(dim=(1, 2)).sum().item()
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
