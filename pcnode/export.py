"""A trained model's step as pure functions, for running it where PyTorch is not.

A model is exported as two functions of tensors, batch a dynamic dimension, with no
loop and no decision inside:

    update(h, span, xu) -> (h_new, seg, dt)
        h (B, state_size) the state after the last update, span (B, 1) the frames since
        it, xu (B, state_dim + input_dim) a reading with its known inputs:
        `model.update(model.encode(xu), model.advance(h, span))`, its segment
        `model.segment(h_new)` (B, segment_size) and its bounded wait `rule.wait` (B, 1).
    read(seg, span) -> change
        seg (B, segment_size), span (B, 1): `model.along(seg, span)`, the predicted change
        since the reading that opened the segment (B, state_dim); the auxiliary dims of
        runs from before known inputs existed are held (no change).

Everything data-dependent stays in the host loop: when to update, the burn-in, the
anchors, the rollout's clocks (`pcnode.runtime`, numpy and onnxruntime only; torch's
exporters do not yet handle data-dependent loops reliably). A state that starts a
stream or a burn-in is zero, and the PC-ODE's and the RNN's `advance` leave it zero over
a zero span, so `update(0, 0, x)` is their first update; the ODE-RNN (its solver checks
its inputs in Python) and CfC are not exported.

`export` writes, into one folder:

- `update.onnx`, `read.onnx`: the two functions as ONNX, by torch's dynamo exporter
  (the `export` extra: onnx, onnxscript, onnxruntime); checked against the model on a
  batch of another size before anything is written;
- `update.pt2`, `read.pt2`: the same functions as `torch.export` programs, for
  PyTorch-based deployment (ExecuTorch, AOTInductor). `torch.export.load` unpickles, so
  loading such a file can run code: load only files you made. pcnode never loads them;
- `model.json`: the model's config, the segment rule the host loop applies, the
  model's fingerprint (a stream's state resumes across the eager and exported forms of
  one model), the functions' signatures, and the data section of the run (a series
  run's scaling, to convert your units).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import checkpoint as ckpt
from .errors import CheckpointError, ConfigError
from .model import SequenceModel, evaluating
from .segments import SegmentRule
from .stream import fingerprint
from .version import __version__

FORMAT = 1  # the layout of model.json; the runtime refuses others
EXPORTABLE = ("pcode", "rnn")
EXPORT_EXTRA = "pip install 'pcnode[export]'"
FILES = ("update.onnx", "read.onnx", "update.pt2", "read.pt2", "model.json")
# How far the exported functions may drift from the model's on the check batch, relative to its values' size.
TOLERANCE = 1e-4
# Each function's input and output names, as the ONNX files and model.json give them.
SIGNATURES = {"update": (("h", "span", "xu"), ("h_new", "seg", "dt")), "read": (("seg", "span"), ("change",))}


class Update(nn.Module):
    """`update(h, span, xu) -> (h_new, seg, dt)` (see the module docstring)."""

    def __init__(self, model: SequenceModel, rule: SegmentRule):
        super().__init__()
        self.model, self.rule = model, rule

    def forward(self, h: Tensor, span: Tensor, xu: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        new = self.model.update(self.model.encode(xu), self.model.advance(h, span))
        return new, self.model.segment(new), self.rule.wait(self.model, new)


class Read(nn.Module):
    """`read(seg, span) -> change` (see the module docstring)."""

    def __init__(self, model: SequenceModel):
        super().__init__()
        self.model = model
        scored = torch.ones(model.config.state_dim)
        scored[model.scored_dims :] = 0.0  # auxiliary dims hold their value, as `rollout.hold_aux` does
        self.register_buffer("scored", scored)

    scored: Tensor  # (state_dim,) 1 for the dims a rollout predicts, 0 for auxiliary dims

    def forward(self, seg: Tensor, span: Tensor) -> Tensor:
        return self.model.along(seg, span) * self.scored


def example_inputs(model: SequenceModel, batch: int, seed: int = 0) -> dict[str, dict[str, Tensor]]:
    """Inputs of both functions for `batch` rows, drawn from `seed`: states of the size an
    update gives, spans of up to 10 frames, readings around 0."""
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    c = model.config

    def draw(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    h = draw(batch, model.state_size, scale=0.5)
    span = (torch.rand(batch, 1, generator=g) * 10).to(dtype)
    with torch.no_grad():
        seg = model.segment(h)
    return {
        "update": {"h": h, "span": span, "xu": draw(batch, c.state_dim + c.input_dim)},
        "read": {"seg": seg, "span": span},
    }


def export(
    model: SequenceModel, out: str | Path, rule: SegmentRule | None = None, data: dict | None = None, batch: int = 2
) -> Path:
    """Write `model`'s step functions into the folder `out` (see the module docstring).

    Args:
        model: a PC-ODE or RNN (a trained run's, `load_run`).
        rule: the segment rule the exported stream and rollout apply (default `model.rule`).
        data: the run's data section, written beside the model (a series run's scaling).
        batch: the example batch the functions are traced with (2 or more); any batch runs.

    Returns `out`. Refuses (ConfigError) a model that does not export, or a missing
    `export` extra, before writing anything.
    """
    kind = model.config.kind
    if kind not in EXPORTABLE:
        raise ConfigError(
            f"the {kind} model does not export: its step between readings runs an ODE solver or a "
            f"cell that torch.export does not trace; export a PC-ODE or an RNN"
        )
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 2:
        raise ConfigError(
            f"the example `batch` must be an integer of at least 2 (1 would fix the batch size), got {batch!r}"
        )
    try:
        import onnxruntime  # noqa: F401  (the check below runs the files)
        import onnxscript  # noqa: F401  (torch's dynamo exporter writes through it)
    except ImportError:
        raise ConfigError(
            f"exporting to ONNX needs the packages onnx, onnxscript and onnxruntime: {EXPORT_EXTRA}"
        ) from None
    rule = (rule or model.rule).bind(model)
    with evaluating(model):
        functions = {"update": Update(model, rule), "read": Read(model)}
        with _quiet():
            programs = {name: _trace(fn, example_inputs(model, batch)[name]) for name, fn in functions.items()}
            onnx = {name: _to_onnx(program, SIGNATURES[name]) for name, program in programs.items()}
            pt2 = {name: _pt2(program) for name, program in programs.items()}
        _check(functions, onnx, example_inputs(model, batch + 3, seed=1))
    meta = describe(model, rule, data)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in functions:
            ckpt.atomic_write(out / f"{name}.onnx", _writer(onnx[name]))
            ckpt.atomic_write(out / f"{name}.pt2", _writer(pt2[name]))
        ckpt.write_json(out / "model.json", meta)  # last: a folder without it is not an export
    except OSError as e:
        raise CheckpointError(f"cannot write to {out} ({e.strerror or e}); choose a writable folder") from None
    return out


def describe(model: SequenceModel, rule: SegmentRule, data: dict | None = None) -> dict:
    """What `model.json` holds: enough for the runtime's host loop to run the two functions."""
    c = model.config
    with torch.no_grad():
        segment_size = model.segment(next(model.parameters()).new_zeros(1, model.state_size)).shape[-1]
    return {
        "format": FORMAT,
        "pcnode": __version__,
        "model": dataclasses.asdict(c),
        "segments": rule.to_json(),
        "fingerprint": fingerprint(model),
        "state_size": model.state_size,
        "segment_size": segment_size,
        "scored_dims": model.scored_dims,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "functions": {name: {"inputs": list(ins), "outputs": list(outs)} for name, (ins, outs) in SIGNATURES.items()},
        "data": data or {},
    }


def _trace(fn: nn.Module, inputs: dict[str, Tensor]) -> torch.export.ExportedProgram:
    """`fn` as a torch.export program whose first dimension (the batch) is dynamic."""
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        return torch.export.export(fn, tuple(inputs.values()), dynamic_shapes={k: {0: batch} for k in inputs})


def _writer(content: bytes) -> Callable[[Path], None]:
    """What `atomic_write` calls to write `content` to a file."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(content)

    return write


def _to_onnx(program: torch.export.ExportedProgram, signature: tuple[tuple[str, ...], tuple[str, ...]]) -> bytes:
    """The program as an ONNX model's bytes (torch's dynamo exporter), its inputs and outputs named."""
    onnx_program = torch.onnx.export(
        program, dynamo=True, verbose=False, input_names=list(signature[0]), output_names=list(signature[1])
    )
    assert onnx_program is not None  # the dynamo exporter returns its program
    return onnx_program.model_proto.SerializeToString()


def _pt2(program: torch.export.ExportedProgram) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


class _quiet:
    """Torch's exporters log notes about optional packages (torchvision) and warn about their own
    internals; none concerns the user, so they are held back while they run."""

    def __enter__(self):
        self._logger = logging.getLogger("torch.onnx")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        self._logger.setLevel(self._level)


def _check(functions: dict[str, nn.Module], onnx: dict[str, bytes], inputs: dict[str, dict[str, Tensor]]) -> None:
    """Refuse an export whose ONNX functions do not give the model's outputs on `inputs`."""
    import onnxruntime as ort

    for name, fn in functions.items():
        session = ort.InferenceSession(onnx[name], providers=["CPUExecutionProvider"])
        feed = {key: value.numpy() for key, value in inputs[name].items()}
        with torch.no_grad():
            want = fn(**inputs[name])
        want = want if isinstance(want, tuple) else (want,)
        for out_value, ref in zip(session.run(None, feed), want):
            got, ref = np.asarray(out_value), ref.numpy()
            if got.shape != ref.shape or not np.allclose(got, ref, rtol=TOLERANCE, atol=TOLERANCE * np.abs(ref).max()):
                raise ConfigError(
                    f"the exported `{name}` does not reproduce the model (largest difference "
                    f"{np.abs(got - ref).max() if got.shape == ref.shape else 'in shape'}); "
                    "please report it with the model's config"
                )
