"""Training: Adam with step decay, periodic evaluation, checkpoints and resume.

`fit` reads top to bottom: sample a batch, run teacher forcing, step the optimiser;
every `eval_every` steps roll the model out on held-out trajectories and append a
row to the metrics; every `checkpoint_every` steps (and at the end) save everything
needed to resume bit-for-bit.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from . import checkpoint as ckpt
from .errors import CheckpointError, ConfigError, DataError, PCNodeError
from .evaluate import evaluate
from .model import Losses, ModelConfig, SequenceModel, SkipRule, build_model, teacher_forcing

METRIC_FIELDS = ("step", "loss", "displacement", "zero_span", "dt_loss", "train_mean_dt", "test_mse",
                 "test_mean_dt", "test_updates", "lr", "train_s")


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults are the authors' (25k steps of batch 256)."""

    steps: int = 25_000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-7
    decay_every: int = 1000
    decay_gamma: float = 0.75
    eval_every: int = 1000
    eval_size: int = 512
    checkpoint_every: int = 1000
    seed: int = 0
    device: str = "cpu"
    rule: SkipRule = field(default_factory=SkipRule)

    def validate(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "decay_every", "eval_every", "eval_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be positive and finite, got {self.lr}")
        if self.weight_decay < 0 or not 0 < self.decay_gamma <= 1:
            raise ConfigError("need weight_decay >= 0 and 0 < decay_gamma <= 1")
        r = self.rule
        if r.n_burn < 1 or r.epsilon < 0 or not 0 <= r.jump_prob <= 1:
            raise ConfigError("need n_burn >= 1, epsilon >= 0 and 0 <= jump_prob <= 1")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        rule = d.pop("rule", {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown or not isinstance(rule, dict):
            raise ConfigError(f"unknown training settings {sorted(unknown)}")
        return cls(**d, rule=SkipRule(**rule)).validate()


def run_config(model: SequenceModel, config: TrainConfig, data: dict | None = None) -> dict:
    """The JSON written next to every run: enough to rebuild and retrain it."""
    from . import __version__
    return {"model": dataclasses.asdict(model.config), "train": dataclasses.asdict(config),
            "data": data or {}, "pcnode": __version__}


def fit(model: SequenceModel, train: Tensor, config: TrainConfig, *, test: Tensor | None = None,
        run_dir: str | Path | None = None, resume: bool = False, data: dict | None = None,
        on_step: Callable[[int, Losses], None] | None = None) -> list[dict]:
    """Train `model` on `train` (N, T, state_dim) sequences.

    Main arguments:
        model: a PCODE, RNN or ODERNN.
        train: training trajectories, (N, T, state_dim).
        config: optimisation settings.

    Other arguments:
        test: held-out trajectories scored every `config.eval_every` steps.
        run_dir: folder for config.json, checkpoints and metrics.csv; nothing is
            written when None.
        resume: continue from `run_dir`'s checkpoint instead of refusing to overwrite it.
        data: description of the data, saved in the config (task, seed, ...).
        on_step: called after every step with the step number and its losses.

    Returns the metrics rows (dicts keyed by `METRIC_FIELDS`), one per evaluation.
    """
    config.validate()
    check_sequences(train, model.config.state_dim, config.rule.n_burn + 1, "training data")
    if test is not None:
        check_sequences(test, model.config.state_dim, config.rule.n_burn + 1, "test data")
    device = torch.device(config.device)
    model.to(device)
    train = train.to(device)
    test = None if test is None else test[:config.eval_size].to(device)

    torch.manual_seed(config.seed)
    batches = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.decay_every, gamma=config.decay_gamma)
    step, train_s, history = 0, 0.0, []
    cfg = run_config(model, config, data)
    if run_dir is not None:
        run_dir = Path(run_dir)
        step, train_s, history = _open_run(run_dir, cfg, resume, model, opt, sched, batches)

    model.train()
    window: list[Losses] = []
    while step < config.steps:
        tick = time.perf_counter()
        seq = train[torch.randint(len(train), (config.batch_size,), generator=batches).to(device)]
        losses = teacher_forcing(model, seq, config.rule)
        if not torch.isfinite(losses.total):
            raise PCNodeError(f"training diverged at step {step + 1} (loss is {losses.total.item()}); "
                              "lower the learning rate or check the data scale")
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()
        sched.step()
        step += 1
        train_s += time.perf_counter() - tick
        window.append(losses)
        if on_step is not None:
            on_step(step, losses)
        if step % config.eval_every == 0 or step == config.steps:
            history.append(_metrics_row(model, step, window, test, config, opt, train_s))
            window = []
            if run_dir is not None:
                _write_metrics(run_dir / ckpt.METRICS, history)
        if run_dir is not None and (step % config.checkpoint_every == 0 or step == config.steps):
            save_checkpoint(run_dir, model, cfg, step, train_s, opt, sched, batches)
    return history


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


def _metrics_row(model, step, window, test, config, opt, train_s) -> dict:
    row = {
        "step": step,
        "loss": sum(l.total.item() for l in window) / len(window),
        "displacement": sum(l.displacement.item() for l in window) / len(window),
        "zero_span": sum(l.zero_span.item() for l in window) / len(window),
        "dt_loss": sum(l.dt.item() for l in window) / len(window),
        "train_mean_dt": sum(l.mean_dt for l in window) / len(window),
        "test_mse": math.nan, "test_mean_dt": math.nan, "test_updates": math.nan,
        "lr": opt.param_groups[0]["lr"],
        "train_s": train_s,
    }
    if test is not None:
        m = evaluate(model, test, n_burn=config.rule.n_burn)
        row.update(test_mse=m["mse"], test_mean_dt=m["mean_dt"], test_updates=m["updates"])
    return row


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
    w.writeheader()
    w.writerows(rows)
    ckpt.write_text(path, buf.getvalue())


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (step as int)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [{k: (int(v) if k == "step" else float(v)) for k, v in r.items()} for r in rows]
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


def _open_run(run_dir: Path, cfg: dict, resume: bool, model, opt, sched, batches):
    """Prepare `run_dir` for training; on resume restore everything and return (step, train_s, history)."""
    path = run_dir / ckpt.CHECKPOINT
    if resume:
        if not path.exists():
            raise CheckpointError(f"nothing to resume in {run_dir}: no {ckpt.CHECKPOINT}; drop --resume to start fresh")
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
    if path.exists() or (run_dir / ckpt.CONFIG).exists():
        raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(run_dir / ckpt.CONFIG, cfg)
    except OSError as e:
        raise CheckpointError(f"cannot write to {run_dir} ({e.strerror}); choose a writable --out folder") from None
    return 0, 0.0, []


def _comparable(cfg: dict) -> dict:
    """A config without the settings that may change on resume (total steps, device)."""
    out = json.loads(json.dumps(cfg))
    for key in ("steps", "device"):
        out.get("train", {}).pop(key, None)
    out.pop("pcnode", None)
    return out


def _load_model_tensors(model: SequenceModel, tensors: dict, path: Path) -> None:
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "mismatch"
        raise CheckpointError(f"{path} does not match its model config ({first}); "
                              "the checkpoint belongs to another model or was edited") from None


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[SequenceModel, dict]:
    """Rebuild the trained model in `run_dir` from its config and checkpoint.

    Returns (model in eval mode, the run's config dict).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} not found; train one with `pcnode train`")
    cfg = ckpt.read_json(run_dir / ckpt.CONFIG)
    if not isinstance(cfg.get("model"), dict):
        raise CheckpointError(f"{run_dir / ckpt.CONFIG} has no model section; it was not written by pcnode")
    try:
        model_cfg = ModelConfig.from_dict(cfg["model"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{run_dir / ckpt.CONFIG}: bad model config ({e})") from None
    tensors, meta = ckpt.load_tensors(run_dir / ckpt.CHECKPOINT)
    if "config" in meta and json.loads(meta["config"]).get("model") != cfg["model"]:
        raise CheckpointError(f"{run_dir}: config.json does not match the checkpoint's own config; "
                              "it was edited or copied from another run")
    model = build_model(model_cfg)
    _load_model_tensors(model, tensors, run_dir / ckpt.CHECKPOINT)
    return model.to(device).eval(), cfg
