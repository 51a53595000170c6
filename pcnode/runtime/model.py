"""An exported model read back: its two ONNX functions under onnxruntime, and its segment rule."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError

FORMAT = 1  # the model.json layout this runtime reads (`pcnode.export.FORMAT`)
EXPORT_EXTRA = "pip install 'pcnode[export]'"


@dataclass(frozen=True)
class Rule:
    """The exported segment rule, as the host loop applies it (`pcnode.SegmentRule`'s fields;
    the bounds on a jump are applied inside `update`)."""

    jumps: bool
    n_burn: int = 4
    threshold: float | None = None
    event_threshold: float | None = None
    min_dt: float = 1.0
    max_dt: float = 1000.0
    input_threshold: float = 0.0

    def keeps(self, err: np.ndarray, away: np.ndarray | None = None) -> np.ndarray:
        """Where a segment still holds: `err` (R,) below the threshold and, with the event
        option, `away` (R,) below the event threshold (as `SegmentRule.keeps`)."""
        fits = err < self.threshold
        if away is not None and self.event_threshold is not None:
            fits &= away < self.event_threshold
        return fits


class Exported:
    """A model exported by `pcnode export`: `update` and `read` run its ONNX functions.

    Attributes: `config` (the model's config as a dict), `rule`, `fingerprint`,
    `state_size`, `segment_size`, `state_dim`, `input_dim`, `scored_dims`, `data` (the
    run's data section: a series run's scaling).
    """

    def __init__(self, meta: dict, sessions: dict):
        self.meta = meta
        self.config: dict = meta["model"]
        self.rule = Rule(**{f.name: meta["segments"][f.name] for f in fields(Rule)})
        self.fingerprint: str = meta["fingerprint"]
        self.state_size: int = meta["state_size"]
        self.segment_size: int = meta["segment_size"]
        self.state_dim: int = self.config["state_dim"]
        self.input_dim: int = self.config["input_dim"]
        self.scored_dims: int = meta["scored_dims"]
        self.data: dict = meta.get("data", {})
        self._update, self._read = sessions["update"], sessions["read"]

    def update(self, h: np.ndarray, span: np.ndarray, xu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """From states `h` (R, state_size), spans since them (R, 1) and readings with their
        inputs `xu` (R, state_dim + input_dim): the updated states, their segments
        (R, segment_size) and their bounded waits (R, 1). float32 throughout."""
        c = np.ascontiguousarray
        return tuple(self._update.run(None, {"h": c(h), "span": c(span), "xu": c(xu)}))

    def read(self, seg: np.ndarray, span: np.ndarray) -> np.ndarray:
        """The predicted change (R, state_dim) `span` (R, 1) frames into segments `seg`."""
        return self._read.run(None, {"seg": np.ascontiguousarray(seg), "span": np.ascontiguousarray(span)})[0]


def load(folder: str | Path, threads: int = 1) -> Exported:
    """The model `pcnode export` wrote into `folder`, its functions on `threads` CPU threads."""
    folder = Path(folder)
    path = folder / "model.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} holds no exported model (no model.json); write one with `pcnode export`")
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); export the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an export this runtime reads (format {FORMAT}); export the model again "
            "with this version of pcnode"
        )
    rule = meta.get("segments", {})
    if rule.get("jumps") and not (isinstance(rule.get("threshold"), (int, float)) and math.isfinite(rule["threshold"])):
        raise CheckpointError(f"{path}: the model jumps but its rule has no skip threshold; export a trained run")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"`threads` must be a positive integer, got {threads!r}")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"running an exported model needs onnxruntime: {EXPORT_EXTRA}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sessions = {}
    for name in ("update", "read"):
        onnx = folder / f"{name}.onnx"
        if not onnx.is_file():
            raise CheckpointError(f"{folder} lacks {onnx.name}; export the model again")
        try:
            sessions[name] = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own classes for a damaged file
            raise CheckpointError(
                f"{onnx} is not a readable ONNX model ({str(e).splitlines()[0]}); export the model again"
            ) from None
    try:
        return Exported(meta, sessions)
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path} lacks {e} or holds it in the wrong form; export the model again") from None
