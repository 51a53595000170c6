"""Trained models that ship with pcnode.

    >>> import pcnode.pretrained
    >>> pcnode.pretrained.names()[:3]
    ['billiards1d-pcode', 'billiards1d-rnn', 'billiards2d-pcode']
    >>> model = pcnode.pretrained.load("billiards2d-pcode")
    >>> model.config.kind, model.training
    ('pcode', False)

Each model is a run folder inside the package (`pcnode/zoo/NAME/`) without its
optimiser state: `checkpoint.safetensors` (the weights), `config.json` (the run's
full config, data included, so its test trajectories can be regenerated) and
`provenance.json` (the command that trained it, the commit, steps, wall time, the
machine, and its scores). It loads through the same checks as any run folder:
safetensors and JSON only, nothing that can run code. On the command line,
`pretrained:NAME` stands wherever a run folder does, and `pcnode pretrained` lists
the models with their scores.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import checkpoint as ckpt
from .checkpoint import WEIGHTS, load_run
from .errors import CheckpointError, did_you_mean
from .model import SequenceModel

ZOO = Path(__file__).parent / "zoo"
PREFIX = "pretrained:"
PROVENANCE = "provenance.json"
CHECK = "check.safetensors"  # a few test trajectories and, in the provenance, the MSE the model scores on them


def names() -> list[str]:
    """The models that ship, sorted."""
    return sorted(p.name for p in ZOO.iterdir() if (p / ckpt.CHECKPOINT).is_file()) if ZOO.is_dir() else []


def folder(name: str) -> Path:
    """The run folder of the shipped model `name`; CheckpointError naming the others if there is none."""
    if name not in names():
        shipped = ", ".join(names()) or "none"
        raise CheckpointError(
            f"no pretrained model {name!r}; the ones that ship: {shipped}{did_you_mean(name, names())}"
        )
    return ZOO / name


def load(name: str, device: str = "cpu") -> SequenceModel:
    """The shipped model `name`, in eval mode, ready to roll out."""
    return load_run(folder(name), device=device)[0]


def info(name: str) -> dict:
    """The provenance of the shipped model `name`: command, commit, steps, wall time, machine, scores."""
    return ckpt.read_json(folder(name) / PROVENANCE)


def resolve(run: str | Path) -> Path:
    """A run folder given as a path, or as `pretrained:NAME`."""
    text = str(run)
    return folder(text[len(PREFIX) :]) if text.startswith(PREFIX) else Path(run)


def is_pretrained(run: str | Path) -> bool:
    return str(run).startswith(PREFIX)


def export(
    run: str | Path, dest: str | Path, provenance: dict, data: dict | None = None, weights: str = "last"
) -> Path:
    """Write the trained run `run` as a shipped model into the folder `dest`: its weights
    (`weights`: "last", or "best" on its validation split; no optimiser or random state),
    its config (its `data` section replaced by `data` if given, say to regenerate data
    the run read from a file) and `provenance`."""
    run, dest = Path(run), Path(dest)
    load_run(run, weights=weights)  # refuses an unknown choice, or best weights a run does not keep
    tensors, meta = ckpt.load_tensors(run / WEIGHTS[weights])
    dest.mkdir(parents=True, exist_ok=True)
    model_tensors = {k: v for k, v in tensors.items() if k.startswith("model.")}
    ckpt.save_tensors(
        dest / ckpt.CHECKPOINT, model_tensors, {"config": meta.get("config", "{}"), "step": meta.get("step", "")}
    )
    config = ckpt.read_run_config(run)  # in today's layout, whichever version wrote the run
    ckpt.write_json(dest / ckpt.CONFIG, config if data is None else {**config, "data": data})
    ckpt.write_json(dest / PROVENANCE, json.loads(json.dumps(provenance)))
    load_run(dest)  # what ships must load
    return dest
