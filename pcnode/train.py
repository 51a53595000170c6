"""Training: Adam with step decay, periodic evaluation, checkpoints and resume.

`fit` reads top to bottom: resolve the segment rule once from the training data, then
sample a batch, run teacher forcing, step the optimiser; every `eval_every` steps roll
the model out on held-out trajectories (and the validation split) and append a row to
the metrics; every `checkpoint_every` steps (and at the end) save everything needed to
resume bit for bit (`pcnode.checkpoint.RunFolder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor

from . import checkpoint as ckpt
from . import pretrained
from .config import TrainConfig
from .data import Trajectories
from .errors import ConfigError, DataError, PCNodeError
from .evaluate import evaluate
from .flows import ODERNN
from .forcing import Losses, Objective
from .lock import lock_run
from .model import SequenceModel
from .progress import TrainingBar
from .segments import SegmentRule, mean_square_change


class Place(NamedTuple):
    """Where this process trains: its rank among `world` processes and its device."""

    rank: int
    world: int
    device: torch.device


def fit(
    model: SequenceModel,
    train: Tensor | Trajectories,
    config: TrainConfig,
    *,
    rule: SegmentRule | None = None,
    test: Tensor | Trajectories | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    data: dict | None = None,
    on_step: Callable[[int, Losses], None] | None = None,
    progress: bool | str = True,
) -> list[dict]:
    """Train `model` on the trajectories `train`.

    Main arguments:
        model: a PCODE, RNN, ODERNN or CfC.
        train: training trajectories, (N, T, state_dim), or `Trajectories` with their
            times (unevenly sampled data, see `pcnode.series`), padding mask and known
            inputs (`u`, (N, T, input_dim), for a model with `model.config.input_dim`).
        config: optimisation settings, the skip threshold's form and the loss weights.

    Other arguments:
        rule: the segment rule to train under (default `model.rule`): burn-in, bounds on a
            jump, input threshold. Its skip threshold (and the event option's) is fixed
            here, once, from `config` and the training data (`SegmentRule.resolve`); the
            model keeps the resolved rule as `model.rule`, and the run saves it.
        test: held-out trajectories (the same forms) scored every `config.eval_every` steps.
        run_dir: folder for config.json, checkpoints and metrics.csv; nothing is
            written when None. The folder is locked while training writes there: a second
            training on it (in this process or another) raises CheckpointError naming
            the process that holds it; the lock of a process that died is taken over.
        resume: continue from `run_dir`'s checkpoint instead of refusing to overwrite it.
            (`config.init` starts a new run from another run's weights: `start_from`.)
        data: description of the data, saved in the config (task, seed, ...).
        on_step: called after every step with the step number and its losses.
        progress: a bar on stderr with the steps, the loss and the mean dt, once training
            has run for a second (False: none; a string: its label). See `pcnode.progress`.

    Returns the metrics rows (dicts keyed by `checkpoint.METRIC_FIELDS`), one per evaluation.
    """
    config.validate()
    if config.field_penalty and not isinstance(model, ODERNN):
        raise ConfigError(
            f"`field_penalty` regularises an ODE-RNN's vector field; the {model.config.kind} model "
            "has none, so leave it at 0"
        )
    rule = (rule or model.rule).bind(model)
    if config.events is not None and not rule.jumps:
        raise ConfigError(
            f"`events` ends a PC-ODE's training segments where the data's motion changes; the "
            f"{model.config.kind} model updates at every frame, so leave it unset"
        )
    if rule.threshold is not None and (config.epsilon is not None or config.relative_epsilon is not None):
        raise ConfigError(
            "the skip threshold is given twice, by the rule and by `epsilon`/`relative_epsilon`; give it once"
        )
    train, val = held_out(Trajectories.of(train), config.val_fraction)
    for name, held in (("training data", train), ("test data", test)):
        if held is not None:
            held = Trajectories.of(held)
            check_sequences(held.x, model.config.state_dim, rule.n_burn + 1, name)
            held.check_inputs(model.config.input_dim, name)
    if resume and run_dir is not None:
        config, rule = ckpt.resumed(Path(run_dir), config, rule)
    if config.init is not None:  # a resumed run's checkpoint then replaces these weights
        start_from(model, config.init)
    change = mean_square_change(train.x, train.mask, model.scored_dims)
    model.rule = rule = SegmentRule.resolve(rule, change, config.epsilon, config.relative_epsilon, config.events)
    test = None if test is None else Trajectories.of(test)
    shown = TrainingBar(config.steps, progress, model.config.kind, then=on_step)  # _fit calls it on rank 0 only
    with distributed(config) as place, shown:
        # Only the first process writes, so only it holds the run folder's lock.
        folder = None
        if run_dir is not None and (place.rank == 0 or resume):
            folder = ckpt.RunFolder(Path(run_dir), ckpt.run_config(model, config, rule, data))
        lock = lock_run(folder.path) if folder is not None and place.rank == 0 else contextlib.nullcontext()
        with lock:
            return _fit(model, config, rule, (train, val, test), place, folder, resume, shown)


def start_from(model: SequenceModel, run: str | Path) -> None:
    """Copy into `model` the weights of `run` (a folder or `pretrained:NAME`, the weights
    `pcnode eval` scores); its model settings must be `model`'s. Its segment rule is not
    taken: the new run resolves its own from its data and settings."""
    source, _ = ckpt.load_run(pretrained.resolve(run))
    if source.config != model.config:
        ours, theirs = dataclasses.asdict(model.config), dataclasses.asdict(source.config)
        differ = [k for k in ours if ours[k] != theirs[k]]
        raise ConfigError(
            f"`init` {run} holds a model with "
            + ", ".join(f"{k} {theirs[k]!r}" for k in differ)
            + " where this run's has "
            + ", ".join(f"{k} {ours[k]!r}" for k in differ)
            + ": give the model the same settings"
        )
    model.load_state_dict(source.state_dict())


def held_out(train: Trajectories, fraction: float) -> tuple[Trajectories, Trajectories | None]:
    """(the trajectories to train on, the validation split): the last `fraction` of
    `train` held out, at least one; (train, None) for a fraction of 0."""
    if not fraction:
        return train, None
    n_val = max(1, round(len(train) * fraction))
    if n_val >= len(train):
        raise DataError(
            f"{len(train)} training sequences are too few to hold out a validation split of "
            f"{fraction:g}; lower `val_fraction` or give more data"
        )
    return train[:-n_val], train[-n_val:]


def _fit(
    model: SequenceModel,
    config: TrainConfig,
    rule: SegmentRule,
    sets: tuple[Trajectories, Trajectories | None, Trajectories | None],
    place: Place,
    folder: ckpt.RunFolder | None,
    resume: bool,
    on_step,
) -> list[dict]:
    """The training loop, on this process's share of every batch: `sets` are the training,
    validation and test trajectories."""
    lead = place.rank == 0  # only the first process evaluates, logs and writes
    per_rank = config.batch_size // place.world
    model.to(place.device)
    train = sets[0].to(place.device)
    val, test = (None if s is None else s[: config.eval_size].to(place.device) for s in sets[1:])

    torch.manual_seed(config.seed + place.rank)  # random skips differ per process...
    batches = torch.Generator().manual_seed(config.seed)  # ...but all draw the same global batch
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.decay_every, gamma=config.decay_gamma)
    progress = ckpt.Progress() if folder is None else folder.start(resume, model, opt, sched, batches)
    if resume and place.world > 1:
        torch.manual_seed(config.seed + place.rank + 7919 * progress.step)
    folder, on_step = (folder, on_step) if lead else (None, None)
    net = Objective(model)
    if place.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=None if place.device.type != "cuda" else [place.device.index]
        )
    model.train()
    window: list[Losses] = []
    while progress.step < config.steps:
        tick = time.perf_counter()
        idx = torch.randint(len(train), (config.batch_size,), generator=batches)
        idx = idx[place.rank * per_rank : (place.rank + 1) * per_rank].to(place.device)
        with torch.autocast(place.device.type, dtype=torch.bfloat16, enabled=config.precision == "bfloat16"):
            losses = net(train[idx], rule, config)
        if not torch.isfinite(losses.total):
            raise PCNodeError(
                f"training diverged at step {progress.step + 1} (loss is {losses.total.item()}); "
                "lower the learning rate or check the data scale"
            )
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()
        sched.step()
        progress.step += 1
        progress.train_s += time.perf_counter() - tick
        window.append(losses._replace(total=losses.total.detach()))  # keep no graph alive
        if on_step is not None:
            on_step(progress.step, losses)
        last = progress.step == config.steps
        if lead and (progress.step % config.eval_every == 0 or last):
            _evaluate(model, progress, window, test, val, opt, folder)
            window = []
        if folder is not None and (progress.step % config.checkpoint_every == 0 or last):
            folder.save(model, progress, opt, sched, batches)
    return progress.history


def _evaluate(model, progress: ckpt.Progress, window: list[Losses], test, val, opt, folder) -> None:
    """Append a metrics row (the window's mean losses, and rollout scores on `test` and
    `val`); keep the weights when they score best on `val` so far."""
    n = len(window)
    row = {
        "step": progress.step,
        "loss": sum(losses.total.item() for losses in window) / n,
        "displacement": sum(losses.displacement.item() for losses in window) / n,
        "zero_span": sum(losses.zero_span.item() for losses in window) / n,
        "dt_loss": sum(losses.dt.item() for losses in window) / n,
        "train_mean_dt_frames": sum(losses.mean_dt for losses in window) / n,
        "test_mse_model_units": math.nan,
        "test_mean_dt_frames": math.nan,
        "test_updates": math.nan,
        "lr": opt.param_groups[0]["lr"],
        "train_s": progress.train_s,
    }
    if test is not None:
        m = evaluate(model, test, progress=False)  # the training bar stands for it
        row.update(test_mse_model_units=m["mse"], test_mean_dt_frames=m["mean_dt"], test_updates=m["updates"])
    if val is not None:
        m = evaluate(model, val, progress=False)
        row.update(val_mse_model_units=m["mse"], val_updates=m["updates"])
    progress.history.append(row)
    if folder is not None:
        folder.write_metrics(progress.history)
    if val is not None and row["val_mse_model_units"] < progress.best:  # a NaN score is never the best
        progress.best = row["val_mse_model_units"]
        if folder is not None:
            folder.save_best(model, progress.step, progress.best)


@contextlib.contextmanager
def distributed(config: TrainConfig):
    """Yield this process's `Place`; join the process group when launched by torchrun.

    `torchrun --nproc_per_node=N -m pcnode train ...` sets WORLD_SIZE, RANK and
    LOCAL_RANK. Each process then trains on its share of every batch and
    DistributedDataParallel averages the gradients (NCCL on GPUs, gloo on CPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(config.device)
    if world <= 1:
        yield Place(0, 1, device)
        return
    if config.batch_size % world:
        raise ConfigError(
            f"batch size {config.batch_size} does not split evenly over {world} processes; "
            "choose a multiple of the process count"
        )
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Place(dist.get_rank(), world, device)
    finally:
        if started:
            dist.destroy_process_group()


def check_sequences(x: Tensor, state_dim: int | None, min_frames: int, what: str = "data") -> None:
    """Raise DataError unless `x` is a finite float (N, T, state_dim) tensor with T >= min_frames."""
    if not isinstance(x, Tensor):
        raise DataError(f"{what} must be a torch tensor, got {type(x).__name__}")
    if x.ndim != 3:
        raise DataError(f"{what} must have shape (sequences, frames, dims); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DataError(f"{what} must be floating point, got {x.dtype}; convert with .float()")
    if x.shape[0] == 0:
        raise DataError(f"{what} holds no sequences")
    if state_dim is not None and x.shape[-1] != state_dim:
        raise DataError(f"{what} has {x.shape[-1]} dims per frame but the model expects {state_dim}")
    if x.shape[1] < min_frames:
        raise DataError(
            f"{what} has {x.shape[1]} frames per sequence; need at least {min_frames} (the burn-in plus one)"
        )
    if not torch.isfinite(x).all():
        raise DataError(f"{what} contains NaN or inf; remove or fill those values first")
