"""Training: Adam with step decay, periodic evaluation, checkpoints and resume.

(Over 400 lines because a checkpoint's writing, its checks on reading and the resume
that restores it are one protocol, kept in one file so that each reads beside the others.)

`fit` reads top to bottom: sample a batch, run teacher forcing, step the optimiser;
every `eval_every` steps roll the model out on held-out trajectories and append a
row to the metrics; every `checkpoint_every` steps (and at the end) save everything
needed to resume bit-for-bit.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from . import checkpoint as ckpt
from .config import load_config
from .errors import CheckpointError, ConfigError, DataError, PCNodeError
from .evaluate import evaluate
from .data import Trajectories
from .forcing import Losses, Objective, SkipRule
from .model import ModelConfig, SequenceModel, build_model
from .progress import TrainingBar

PRECISIONS = ("float32", "bfloat16")
WEIGHTS = {"last": ckpt.CHECKPOINT, "best": ckpt.BEST}  # which weights of a run `load_run` reads
# Each name carries its unit: spans in frames, errors in the units the model trains in (a
# task's own; for a series, its standardised values, which `pcnode eval` turns back into yours).
METRIC_FIELDS = ("step", "loss", "displacement", "zero_span", "dt_loss", "train_mean_dt_frames",
                 "test_mse_model_units", "test_mean_dt_frames", "test_updates", "lr", "train_s",
                 "val_mse_model_units", "val_updates")
RENAMED_METRICS = {"train_mean_dt": "train_mean_dt_frames", "test_mse": "test_mse_model_units",
                   "test_mean_dt": "test_mean_dt_frames", "val_mse": "val_mse_model_units"}  # older runs


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults are the authors' (25k steps of batch 256)."""

    steps: int = 25_000            # optimiser steps
    batch_size: int = 256          # trajectories per step (split across processes under torchrun)
    lr: float = 1e-3               # Adam's learning rate...
    weight_decay: float = 1e-7
    decay_every: int = 1000        # ...multiplied by decay_gamma every decay_every steps
    decay_gamma: float = 0.75
    eval_every: int = 1000         # steps between rollouts of the test trajectories
    eval_size: int = 512           # test trajectories rolled out then
    # Share of the training trajectories (the last ones) held out as a validation split:
    # every evaluation also rolls it out, and the run keeps the weights that scored best
    # on it in best.safetensors (`load_run(..., weights="best")`). 0: no split (the authors').
    val_fraction: float = 0.0
    checkpoint_every: int = 1000   # steps between checkpoints (and at the end)
    seed: int = 0                  # batches, random skips and (through build_model) initial weights
    device: str = "cpu"
    # "bfloat16" runs the forward pass under torch.autocast (matrix products in bfloat16,
    # losses and weights in float32); see the documentation's measurements before choosing it.
    precision: str = "float32"
    rule: SkipRule = field(default_factory=SkipRule)  # the skip rule and the loss weights

    def validate(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "decay_every", "eval_every", "eval_size", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        for name in ("lr", "weight_decay", "decay_gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive and finite, got {self.lr}")
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)) \
                or not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not (self.weight_decay >= 0 and 0 < self.decay_gamma <= 1):
            raise ConfigError("need weight_decay >= 0 and 0 < decay_gamma <= 1")
        self.rule.validate()
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


def run_config(model: SequenceModel, config: TrainConfig, data: dict | None = None) -> dict:
    """The JSON written next to every run: enough to rebuild and retrain it."""
    from . import __version__  # the package's __init__ imports this module, so not at the top
    return {"model": dataclasses.asdict(model.config), "train": dataclasses.asdict(config),
            "data": data or {}, "pcnode": __version__}


def fit(model: SequenceModel, train: Tensor | Trajectories, config: TrainConfig, *,
        test: Tensor | Trajectories | None = None, run_dir: str | Path | None = None, resume: bool = False,
        data: dict | None = None, on_step: Callable[[int, Losses], None] | None = None,
        progress: bool | str = True) -> list[dict]:
    """Train `model` on the trajectories `train`.

    Main arguments:
        model: a PCODE, RNN or ODERNN.
        train: training trajectories, (N, T, state_dim), or `Trajectories` with their
            times (unevenly sampled data, see `pcnode.series`), padding mask and known
            inputs (`u`, (N, T, input_dim), for a model with `model.config.input_dim`).
        config: optimisation settings.

    Other arguments:
        test: held-out trajectories (the same forms) scored every `config.eval_every` steps.
        run_dir: folder for config.json, checkpoints and metrics.csv; nothing is
            written when None. The folder is locked while training writes there: a second
            training on it (in this process or another) raises CheckpointError naming
            the process that holds it; the lock of a process that died is taken over.
        resume: continue from `run_dir`'s checkpoint instead of refusing to overwrite it.
        data: description of the data, saved in the config (task, seed, ...).
        on_step: called after every step with the step number and its losses.
        progress: a bar on stderr with the steps, the loss and the mean dt, once training
            has run for a second (False: none; a string: its label). See `pcnode.progress`.

    Returns the metrics rows (dicts keyed by `METRIC_FIELDS`), one per evaluation.
    """
    config.validate()
    if config.rule.field_penalty and model.config.kind != "odernn":
        raise ConfigError(f"`field_penalty` regularises an ODE-RNN's vector field; the {model.config.kind} model "
                          "has none, so leave it at 0")
    train, val = held_out(Trajectories.of(train), config.val_fraction)
    check_sequences(train.x, model.config.state_dim, config.rule.n_burn + 1, "training data")
    train.check_inputs(model.config.input_dim, "training data")
    if test is not None:
        test = Trajectories.of(test)
        check_sequences(test.x, model.config.state_dim, config.rule.n_burn + 1, "test data")
        test.check_inputs(model.config.input_dim, "test data")
    if resume and run_dir is not None:
        config = dataclasses.replace(config, rule=_resumed_threshold(config.rule, Path(run_dir)))
    # A threshold relative to the data is fixed here, once, on the whole training set.
    config = dataclasses.replace(config, rule=config.rule.for_data(train.x, train.mask, model.config.aux_dims))
    shown = TrainingBar(config.steps, progress, model.config.kind, then=on_step)  # _fit calls it on rank 0 only
    with distributed(config) as (rank, world, device), shown:
        # Only the first process writes, so only it holds the run folder's lock.
        with ckpt.lock_run(run_dir) if run_dir is not None and rank == 0 else contextlib.nullcontext():
            return _fit(model, train, config, test, val, run_dir, resume, data, shown, rank, world, device)


def held_out(train: Trajectories, fraction: float) -> tuple[Trajectories, Trajectories | None]:
    """(the trajectories to train on, the validation split): the last `fraction` of
    `train` held out, at least one; (train, None) for a fraction of 0."""
    if not fraction:
        return train, None
    n_val = max(1, round(len(train) * fraction))
    if n_val >= len(train):
        raise DataError(f"{len(train)} training sequences are too few to hold out a validation split of "
                        f"{fraction:g}; lower `val_fraction` or give more data")
    return train[:-n_val], train[-n_val:]


def _fit(model, train, config, test, val, run_dir, resume, data, on_step, rank, world, device) -> list[dict]:
    lead = rank == 0  # only the first process evaluates, logs and writes
    per_rank = config.batch_size // world
    model.to(device)
    train = train.to(device)
    test = None if test is None else test[:config.eval_size].to(device)
    val = None if val is None else val[:config.eval_size].to(device)

    torch.manual_seed(config.seed + rank)  # random skips differ per process...
    batches = torch.Generator().manual_seed(config.seed)  # ...but all draw the same global batch
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.decay_every, gamma=config.decay_gamma)
    step, train_s, history = 0, 0.0, []
    best = math.inf  # the best validation MSE so far
    cfg = run_config(model, config, data)
    if run_dir is not None:
        run_dir = Path(run_dir)
        if lead or resume:
            step, train_s, history = _open_run(run_dir, cfg, resume, model, opt, sched, batches)
            best = _best_so_far(run_dir) if resume else best
        if resume and world > 1:
            torch.manual_seed(config.seed + rank + 7919 * step)
        run_dir = run_dir if lead else None
    on_step = on_step if lead else None
    net = Objective(model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                        else None)

    model.train()
    window: list[Losses] = []
    while step < config.steps:
        tick = time.perf_counter()
        idx = torch.randint(len(train), (config.batch_size,), generator=batches)
        idx = idx[rank * per_rank:(rank + 1) * per_rank].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bfloat16"):
            losses = net(train[idx], config.rule)
        if not torch.isfinite(losses.total):
            raise PCNodeError(f"training diverged at step {step + 1} (loss is {losses.total.item()}); "
                              "lower the learning rate or check the data scale")
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()
        sched.step()
        step += 1
        train_s += time.perf_counter() - tick
        window.append(losses._replace(total=losses.total.detach()))  # keep no graph alive
        if on_step is not None:
            on_step(step, losses)
        if lead and (step % config.eval_every == 0 or step == config.steps):
            history.append(_metrics_row(model, step, window, test, val, config, opt, train_s))
            window = []
            if run_dir is not None:
                _write_metrics(run_dir / ckpt.METRICS, history)
            if val is not None and history[-1]["val_mse_model_units"] < best:  # a NaN score is never the best
                best = history[-1]["val_mse_model_units"]
                if run_dir is not None:
                    save_best(run_dir, model, cfg, step, best)
        if run_dir is not None and (step % config.checkpoint_every == 0 or step == config.steps):
            save_checkpoint(run_dir, model, cfg, step, train_s, opt, sched, batches)
    return history


@contextlib.contextmanager
def distributed(config: TrainConfig):
    """Yield (rank, world size, device); join the process group when launched by torchrun.

    `torchrun --nproc_per_node=N -m pcnode train ...` sets WORLD_SIZE, RANK and
    LOCAL_RANK. Each process then trains on its share of every batch and
    DistributedDataParallel averages the gradients (NCCL on GPUs, gloo on CPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(config.device)
    if world <= 1:
        yield 0, 1, device
        return
    if config.batch_size % world:
        raise ConfigError(f"batch size {config.batch_size} does not split evenly over {world} processes; "
                          "choose a multiple of the process count")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), world, device
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
        raise DataError(f"{what} has {x.shape[1]} frames per sequence; need at least {min_frames} "
                        "(the burn-in plus one)")
    if not torch.isfinite(x).all():
        raise DataError(f"{what} contains NaN or inf; remove or fill those values first")


def _metrics_row(model, step, window, test, val, config, opt, train_s) -> dict:
    row = {
        "step": step,
        "loss": sum(l.total.item() for l in window) / len(window),
        "displacement": sum(l.displacement.item() for l in window) / len(window),
        "zero_span": sum(l.zero_span.item() for l in window) / len(window),
        "dt_loss": sum(l.dt.item() for l in window) / len(window),
        "train_mean_dt_frames": sum(l.mean_dt for l in window) / len(window),
        "test_mse_model_units": math.nan, "test_mean_dt_frames": math.nan, "test_updates": math.nan,
        "lr": opt.param_groups[0]["lr"],
        "train_s": train_s,
    }
    if test is not None:
        m = evaluate(model, test, n_burn=config.rule.n_burn, progress=False)  # the training bar stands for it
        row.update(test_mse_model_units=m["mse"], test_mean_dt_frames=m["mean_dt"], test_updates=m["updates"])
    if val is not None:
        m = evaluate(model, val, n_burn=config.rule.n_burn, progress=False)
        row.update(val_mse_model_units=m["mse"], val_updates=m["updates"])
    return row


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    # The validation columns appear in runs with a validation split only.
    w = csv.DictWriter(buf, fieldnames=[f for f in METRIC_FIELDS if any(f in r for r in rows)], restval="nan")
    w.writeheader()
    w.writerows(rows)
    ckpt.write_text(path, buf.getvalue())


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (step as int), keyed by `METRIC_FIELDS`
    (the older names of a run written before they carried their units are read as those)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [{RENAMED_METRICS.get(k, k): (int(v) if k == "step" else float(v)) for k, v in r.items()}
                for r in rows]
    except (TypeError, ValueError):
        raise CheckpointError(f"{path} is malformed; delete it to start the metrics afresh") from None


def save_checkpoint(run_dir: Path, model, cfg, step, train_s, opt, sched, batches) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.batches"] = batches.get_state()
    if torch.cuda.is_available() and next(model.parameters()).is_cuda:
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {"config": json.dumps(cfg, sort_keys=True), "step": str(step), "train_s": repr(train_s),
            "optim_groups": json.dumps(opt_state["param_groups"]), "scheduler": json.dumps(sched.state_dict())}
    ckpt.save_tensors(run_dir / ckpt.CHECKPOINT, tensors, meta)


def save_best(run_dir: Path, model, cfg, step: int, val_mse: float) -> None:
    """The weights that scored best on the validation split so far, with their step and score."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(cfg, sort_keys=True), "step": str(step), "val_mse": repr(val_mse)}
    ckpt.save_tensors(run_dir / ckpt.BEST, tensors, meta)


def _best_so_far(run_dir: Path) -> float:
    """The validation MSE of a resumed run's best weights (inf if it kept none)."""
    if not (run_dir / ckpt.BEST).is_file():
        return math.inf
    return float(ckpt.load_tensors(run_dir / ckpt.BEST)[1].get("val_mse", "inf"))


def _resumed_threshold(rule: SkipRule, run_dir: Path) -> SkipRule:
    """A rule that gives no threshold continues a run with the threshold the run started
    with (runs from before the relative default stored the authors' absolute one)."""
    if rule.epsilon is not None or rule.relative_epsilon is not None or not (run_dir / ckpt.CONFIG).is_file():
        return rule
    stored = ckpt.read_json(run_dir / ckpt.CONFIG).get("train", {}).get("rule", {})
    if not isinstance(stored, dict):
        return rule
    return dataclasses.replace(rule, **{k: stored[k] for k in ("epsilon", "relative_epsilon", "data_change")
                                        if stored.get(k) is not None})


def _open_run(run_dir: Path, cfg: dict, resume: bool, model, opt, sched, batches):
    """Prepare `run_dir` for training; on resume restore everything and return (step, train_s, history)."""
    path = run_dir / ckpt.CHECKPOINT
    if run_dir.is_dir():
        ckpt.remove_stale_temps(run_dir)
    if resume:
        if not path.exists():
            raise CheckpointError(f"nothing to resume in {run_dir}: no {ckpt.CHECKPOINT}; start fresh without `resume`")
        saved = ckpt.read_json(run_dir / ckpt.CONFIG)
        if _comparable(saved) != _comparable(cfg):
            raise CheckpointError(f"{run_dir} holds a run with a different config; resume with the same "
                                  "settings or train into a new folder")
        tensors, meta = ckpt.load_tensors(path)
        _load_model_tensors(model, tensors, path)
        opt_state = {"state": {}, "param_groups": json.loads(meta["optim_groups"])}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state["state"].setdefault(int(idx), {})[name] = value.to(next(model.parameters()).device) \
                    if name != "step" else value
        opt.load_state_dict(opt_state)
        sched.load_state_dict(json.loads(meta["scheduler"]))
        torch.set_rng_state(tensors["rng.torch"])
        batches.set_state(tensors["rng.batches"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        step = int(meta["step"])
        metrics = run_dir / ckpt.METRICS
        history = [r for r in read_metrics(metrics) if r["step"] <= step] if metrics.exists() else []
        return step, float(meta["train_s"]), history
    if path.exists():
        raise CheckpointError(f"{run_dir} already holds a run; continue it with `resume=True` or choose another `run_dir`")
    if (run_dir / ckpt.CONFIG).exists():
        # A run that failed before its first checkpoint left only its config (and maybe
        # metrics); the same run may start over there, a different one may not.
        if _comparable(ckpt.read_json(run_dir / ckpt.CONFIG)) != _comparable(cfg):
            raise CheckpointError(f"{run_dir} already holds a different run; choose another `run_dir`")
        (run_dir / ckpt.METRICS).unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(run_dir / ckpt.CONFIG, cfg)
    except OSError as e:
        raise CheckpointError(f"cannot write to {run_dir} ({e.strerror}); choose a writable `run_dir`") from None
    return 0, 0.0, []


def _comparable(cfg: dict) -> dict:
    """A config without the settings that may change on resume (total steps, device).

    Settings newer than the run that wrote `cfg` take their defaults, which that run used.
    """
    out = json.loads(json.dumps(cfg))
    if isinstance(out.get("train"), dict) and isinstance(out["train"].get("rule", {}), dict):
        rule = {**dataclasses.asdict(SkipRule()), **out["train"].get("rule", {})}
        out["train"] = {**dataclasses.asdict(TrainConfig()), **out["train"], "rule": rule}
    if isinstance(out.get("model"), dict):
        out["model"] = {**dataclasses.asdict(ModelConfig()), **out["model"]}
    for key in ("steps", "device"):
        out.get("train", {}).pop(key, None)
    out.pop("pcnode", None)
    return out


def _load_model_tensors(model: SequenceModel, tensors: dict, path: Path) -> None:
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    for name, value in state.items():
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: weight {name} is {value.dtype} or holds NaN/inf; "
                                  "the checkpoint is damaged: retrain or resume from a good copy")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        # The first line only names the model class; the second says what differs.
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        first = lines[1] if len(lines) > 1 else (lines[0] if lines else "mismatch")
        raise CheckpointError(f"{path} does not match its model config ({first}); "
                              "the checkpoint belongs to another model or was edited") from None


def load_run(run_dir: str | Path, device: str = "cpu", weights: str = "last") -> tuple[SequenceModel, dict]:
    """Rebuild the trained model in `run_dir` from its config and checkpoint.

    `weights`: "last", the latest checkpoint, or "best", the weights that scored best on
    the run's validation split (a run trained with `val_fraction > 0`).
    Returns (model in eval mode, the run's config dict).
    """
    run_dir = Path(run_dir)
    check_device(device)
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown weights {weights!r}; choose one of: {', '.join(WEIGHTS)}")
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} not found; train one with `pcnode train`")
    cfg = ckpt.read_json(run_dir / ckpt.CONFIG)
    for section in ("model", "train", "data"):
        if not isinstance(cfg.get(section), dict):
            raise CheckpointError(f"{run_dir / ckpt.CONFIG} has no {section} section; it was not written by pcnode")
    try:
        model_cfg = load_config(ModelConfig, cfg["model"], "model")
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{run_dir / ckpt.CONFIG}: bad model config ({e})") from None
    try:
        # The device trained on need not exist where the run is loaded.
        train_cfg = load_config(TrainConfig, {**cfg["train"], "device": "cpu"}, "training")
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{run_dir / ckpt.CONFIG}: bad training config ({e})") from None
    cfg["train"] = {**dataclasses.asdict(train_cfg), "device": cfg["train"].get("device", "cpu")}
    path = run_dir / WEIGHTS[weights]
    if weights == "best" and not path.is_file():
        raise CheckpointError(f"{run_dir} keeps no best weights; train with a validation split (`val_fraction`) "
                              "or load its last weights")
    tensors, meta = ckpt.load_tensors(path)
    try:
        own = json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError:
        own = None
    if not isinstance(own, dict):
        raise CheckpointError(f"{run_dir / ckpt.CHECKPOINT}: its stored config is not a JSON object; "
                              "the checkpoint was edited or not written by pcnode")
    if "model" in own and own["model"] != cfg["model"]:
        raise CheckpointError(f"{run_dir}: config.json does not match the checkpoint's own config; "
                              "it was edited or copied from another run")
    model = build_model(model_cfg)
    _load_model_tensors(model, tensors, path)
    return model.to(device).eval(), cfg
