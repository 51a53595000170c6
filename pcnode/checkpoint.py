"""Run folders: safe, atomic reading and writing of checkpoints, configs and metrics.

Nothing loaded here can run code: tensors live in safetensors files, settings in
JSON. Every write goes to a temporary file in the same folder, is flushed and
fsynced, then renamed over the target, so a crash never leaves a half-written file.

A run folder holds:
    config.json               the full config the run was started with: its model, training
                              settings, segment rule ("segments") and data
    checkpoint.safetensors    model (`model.*`), optimiser (`optim.*`) and RNG tensors;
                              its metadata holds the step and the same config
    metrics.csv               one row per evaluation
    best.safetensors          with a validation split: the weights that scored best on it
    pcnode.lock               while a training writes there: the process that holds it

One training writes to a run folder at a time (`pcnode.lock.lock_run`).

`RunFolder` is what a training does with its folder (start or resume, checkpoint,
metrics, best weights); `load_run` reads a run back. Configs of runs written by older
versions are read through `pcnode.compat.upgrade`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .compat import RENAMED_METRICS, upgrade
from .config import TrainConfig, check_device, load_config
from .errors import CheckpointError, ConfigError
from .kinds import build_model
from .model import ModelConfig, SequenceModel
from .segments import SegmentRule
from .version import __version__

# The mode new files get, as the process's umask says (mkstemp would make them private).
_umask = os.umask(0)
os.umask(_umask)
FILE_MODE = 0o666 & ~_umask

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
CONFIG = "config.json"
METRICS = "metrics.csv"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # After the write: a writer may put a new file in the temporary's place (safetensors
        # does, private to its owner). Results read like any other file.
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temps(folder: Path) -> None:
    """Delete the temporary files `atomic_write` leaves when its process is killed mid-write."""
    for name in (CHECKPOINT, BEST, CONFIG, METRICS):
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text)

    atomic_write(path, write)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    """Read a JSON object, raising CheckpointError with the file name on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found; point at a run folder written by `pcnode train`")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); restore it or start a new run") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} must hold a JSON object; restore it or start a new run")
    return obj


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file and its metadata; refuse anything else clearly."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path}: checkpoints are .safetensors files; pickled formats (.pt, .pth, .ckpt) "
            "are refused because loading them can run code"
        )
    if not path.is_file():
        raise CheckpointError(f"{path} not found; train a model first or check the run folder")
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
            "delete it and retrain, or resume from a good copy"
        ) from None
    return tensors, header.get("__metadata__") or {}


# ---- the run-folder protocol: what a training writes there, and how a run is read back ----------------

# Each name carries its unit: spans in frames, errors in the units the model trains in (a
# task's own; for a series, its standardised values, which `pcnode eval` turns back into yours).
METRIC_FIELDS = (
    "step",
    "loss",
    "displacement",
    "zero_span",
    "dt_loss",
    "train_mean_dt_frames",
    "test_mse_model_units",
    "test_mean_dt_frames",
    "test_updates",
    "lr",
    "train_s",
    "val_mse_model_units",
    "val_updates",
)
WEIGHTS = {"last": CHECKPOINT, "best": BEST}  # which weights of a run `load_run` reads


def run_config(model: SequenceModel, config: TrainConfig, rule: SegmentRule, data: dict | None = None) -> dict:
    """The JSON written next to every run: enough to rebuild, retrain and roll it out."""
    return {
        "model": dataclasses.asdict(model.config),
        "train": dataclasses.asdict(config),
        "segments": rule.to_json(),
        "data": data or {},
        "pcnode": __version__,
    }


def read_run_config(run_dir: Path) -> dict:
    """A run folder's config.json in today's layout (`pcnode.compat.upgrade`)."""
    return upgrade(read_json(Path(run_dir) / CONFIG))


def resumed(run_dir: Path, config, rule):
    """The training settings and segment rule that continue the run in `run_dir`: the
    rule the run saved (its thresholds fixed when it started, on its data), and the
    threshold's form it was given where `config` gives none."""
    if not (Path(run_dir) / CONFIG).is_file():
        return config, rule
    saved = read_run_config(run_dir)
    form = {k: saved["train"].get(k) for k in ("epsilon", "relative_epsilon", "events")}
    if config.epsilon is None and config.relative_epsilon is None and config.events is None:
        config = dataclasses.replace(config, **form)
    thresholds = {k: saved["segments"].get(k) for k in ("threshold", "event_threshold")}
    if rule.threshold is None and rule.event_threshold is None:
        rule = rule.replace(**thresholds)
    return config, rule


@dataclass
class Progress:
    """Where a training stands: its step, training seconds, metrics rows and best validation MSE."""

    step: int = 0
    train_s: float = 0.0
    history: list = field(default_factory=list)
    best: float = math.inf


@dataclass
class RunFolder:
    """The folder a training writes: config.json, checkpoints, metrics.csv and the best weights.

    `config` is the run's full config (`run_config`), written when the run starts and
    kept in every checkpoint's metadata.
    """

    path: Path
    config: dict

    def start(self, resume: bool, model, opt, sched, batches) -> Progress:
        """Prepare the folder; on resume restore everything the last checkpoint holds."""
        path = self.path / CHECKPOINT
        if self.path.is_dir():
            remove_stale_temps(self.path)
        if resume:
            return self._restore(model, opt, sched, batches)
        if path.exists():
            raise CheckpointError(
                f"{self.path} already holds a run; continue it with `resume=True` or choose another `run_dir`"
            )
        if (self.path / CONFIG).exists():
            # A run that failed before its first checkpoint left only its config (and maybe
            # metrics); the same run may start over there, a different one may not.
            if comparable(read_run_config(self.path)) != comparable(self.config):
                raise CheckpointError(f"{self.path} already holds a different run; choose another `run_dir`")
            (self.path / METRICS).unlink(missing_ok=True)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.path / CONFIG, self.config)
        except OSError as e:
            raise CheckpointError(f"cannot write to {self.path} ({e.strerror}); choose a writable `run_dir`") from None
        return Progress()

    def _restore(self, model, opt, sched, batches) -> Progress:
        path = self.path / CHECKPOINT
        if not path.exists():
            raise CheckpointError(f"nothing to resume in {self.path}: no {CHECKPOINT}; start fresh without `resume`")
        if comparable(read_run_config(self.path)) != comparable(self.config):
            raise CheckpointError(
                f"{self.path} holds a run with a different config; resume with the same "
                "settings or train into a new folder"
            )
        tensors, meta = load_tensors(path)
        load_weights(model, tensors, path)
        opt_state = {"state": {}, "param_groups": json.loads(meta["optim_groups"])}
        device = next(model.parameters()).device
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state["state"].setdefault(int(idx), {})[name] = value.to(device) if name != "step" else value
        opt.load_state_dict(opt_state)
        sched.load_state_dict(json.loads(meta["scheduler"]))
        torch.set_rng_state(tensors["rng.torch"])
        batches.set_state(tensors["rng.batches"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        step = int(meta["step"])
        write_json(self.path / CONFIG, self.config)  # the settings it goes on with (its total steps, device)
        metrics = self.path / METRICS
        history = [r for r in read_metrics(metrics) if r["step"] <= step] if metrics.exists() else []
        best = math.inf
        if (self.path / BEST).is_file():
            best = float(load_tensors(self.path / BEST)[1].get("val_mse", "inf"))
        return Progress(step, float(meta["train_s"]), history, best)

    def save(self, model, progress: Progress, opt, sched, batches) -> None:
        """A checkpoint from which the run resumes bit for bit."""
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        opt_state = opt.state_dict()
        for idx, state in opt_state["state"].items():
            for key, value in state.items():
                tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.batches"] = batches.get_state()
        if torch.cuda.is_available() and next(model.parameters()).is_cuda:
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        meta = {
            "config": json.dumps(self.config, sort_keys=True),
            "step": str(progress.step),
            "train_s": repr(progress.train_s),
            "optim_groups": json.dumps(opt_state["param_groups"]),
            "scheduler": json.dumps(sched.state_dict()),
        }
        save_tensors(self.path / CHECKPOINT, tensors, meta)

    def save_best(self, model, step: int, val_mse: float) -> None:
        """The weights that scored best on the validation split so far, with their step and score."""
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        meta = {"config": json.dumps(self.config, sort_keys=True), "step": str(step), "val_mse": repr(val_mse)}
        save_tensors(self.path / BEST, tensors, meta)

    def write_metrics(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        # The validation columns appear in runs with a validation split only.
        w = csv.DictWriter(buf, fieldnames=[f for f in METRIC_FIELDS if any(f in r for r in rows)], restval="nan")
        w.writeheader()
        w.writerows(rows)
        write_text(self.path / METRICS, buf.getvalue())


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (step as int), keyed by `METRIC_FIELDS`
    (the older names of a run written before they carried their units are read as those)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [{RENAMED_METRICS.get(k, k): (int(v) if k == "step" else float(v)) for k, v in r.items()} for r in rows]
    except (TypeError, ValueError):
        raise CheckpointError(f"{path} is malformed; delete it to start the metrics afresh") from None


def comparable(cfg: dict) -> dict:
    """A run's config without what may differ on resume (total steps, device, version) or
    what the run fixed from its data (the thresholds). Settings newer than the run that
    wrote `cfg` take their defaults, which that run used."""
    out = upgrade(cfg)
    if isinstance(out.get("train"), dict):
        out["train"] = {**dataclasses.asdict(TrainConfig()), **out["train"]}
        for key in ("steps", "device"):
            out["train"].pop(key, None)
    if isinstance(out.get("model"), dict):
        out["model"] = {**dataclasses.asdict(ModelConfig()), **out["model"]}
    if isinstance(out.get("segments"), dict):
        out["segments"] = {
            k: v
            for k, v in {**SegmentRule().to_json(), **out["segments"]}.items()
            if k not in ("threshold", "event_threshold")
        }
    out.pop("pcnode", None)
    return out


def load_weights(model, tensors: dict, path: Path) -> None:
    """Put a checkpoint's `model.*` tensors into `model`, refusing damaged or foreign ones."""
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    for name, value in state.items():
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise CheckpointError(
                f"{path}: weight {name} is {value.dtype} or holds NaN/inf; "
                "the checkpoint is damaged: retrain or resume from a good copy"
            )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        # The first line only names the model class; the second says what differs.
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        first = lines[1] if len(lines) > 1 else (lines[0] if lines else "mismatch")
        raise CheckpointError(
            f"{path} does not match its model config ({first}); the checkpoint belongs to another model or was edited"
        ) from None


def load_run(run_dir: str | Path, device: str = "cpu", weights: str = "last") -> tuple[SequenceModel, dict]:
    """Rebuild the trained model in `run_dir` from its config and checkpoint.

    `weights`: "last", the latest checkpoint, or "best", the weights that scored best on
    the run's validation split (a run trained with `val_fraction > 0`). The model carries
    the run's segment rule (`model.rule`).
    Returns (model in eval mode, the run's config dict, in today's layout).
    """
    run_dir = Path(run_dir)
    check_device(device)
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown weights {weights!r}; choose one of: {', '.join(WEIGHTS)}")
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} not found; train one with `pcnode train`")
    cfg = read_run_config(run_dir)
    for section in ("model", "train", "segments", "data"):
        if not isinstance(cfg.get(section), dict):
            raise CheckpointError(f"{run_dir / CONFIG} has no {section} section; it was not written by pcnode")
    settings = {}
    for section, cls, what in (
        ("model", ModelConfig, "model"),
        ("segments", SegmentRule, "segment"),
        ("train", TrainConfig, "training"),
    ):
        # The device trained on need not exist where the run is loaded.
        given = {**cfg[section], "device": "cpu"} if section == "train" else cfg[section]
        try:
            settings[section] = load_config(cls, given, what)
        except (ConfigError, TypeError) as e:
            raise CheckpointError(f"{run_dir / CONFIG}: bad {what} config ({e})") from None
    cfg["train"] = {**dataclasses.asdict(settings["train"]), "device": cfg["train"].get("device", "cpu")}
    path = run_dir / WEIGHTS[weights]
    if weights == "best" and not path.is_file():
        raise CheckpointError(
            f"{run_dir} keeps no best weights; train with a validation split (`val_fraction`) or load its last weights"
        )
    tensors, meta = load_tensors(path)
    try:
        own = json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError:
        own = None
    if not isinstance(own, dict):
        raise CheckpointError(
            f"{path}: its stored config is not a JSON object; the checkpoint was edited or not written by pcnode"
        )
    if "model" in own and upgrade(own)["model"] != cfg["model"]:
        raise CheckpointError(
            f"{run_dir}: config.json does not match the checkpoint's own config; "
            "it was edited or copied from another run"
        )
    model = build_model(settings["model"])
    load_weights(model, tensors, path)
    model.rule = settings["segments"].bind(model)
    return model.to(device).eval(), cfg
