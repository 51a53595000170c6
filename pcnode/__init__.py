"""pcnode: piecewise-constant neural ODEs (Greydanus, Lee & Fern, 2021) and their baselines.

Time is measured in data frames everywhere: a span of 1 is one frame.

    >>> import torch, pcnode
    >>> model = pcnode.PCODE(pcnode.ModelConfig(state_dim=2))
    >>> ro = pcnode.rollout(model, torch.zeros(8, 4, 2), horizon=20)
    >>> ro.at(torch.linspace(4, 20, 65)).shape
    torch.Size([8, 65, 2])

The names below are imported from their modules when first used, so that a part of the
package that needs no PyTorch (`pcnode.runtime`, which runs exported models) can be
imported without it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING

from .errors import CheckpointError, ConfigError, DataError, PCNodeError
from .version import __version__

if TYPE_CHECKING:  # what type checkers and editors see; at run time `__getattr__` imports them
    from .checkpoint import load_run
    from .config import TrainConfig
    from .data import Trajectories
    from .evaluate import evaluate
    from .flows import ODERNN, CfC
    from .forcing import teacher_forcing
    from .kinds import build_model
    from .model import PCODE, RNN, ModelConfig
    from .rollout import Rollout, rollout
    from .segments import SegmentRule
    from .stream import Stream
    from .train import fit

# Each public name and the module that defines it.
_HOME = {
    "load_run": "checkpoint",
    "TrainConfig": "config",
    "Trajectories": "data",
    "evaluate": "evaluate",
    "ODERNN": "flows",
    "CfC": "flows",
    "teacher_forcing": "forcing",
    "PCODE": "model",
    "RNN": "model",
    "ModelConfig": "model",
    "build_model": "kinds",
    "Rollout": "rollout",
    "rollout": "rollout",
    "SegmentRule": "segments",
    "Stream": "stream",
    "fit": "train",
}

__all__ = [
    "PCODE",
    "RNN",
    "ODERNN",
    "CfC",
    "ModelConfig",
    "SegmentRule",
    "TrainConfig",
    "Rollout",
    "Trajectories",
    "Stream",
    "build_model",
    "teacher_forcing",
    "rollout",
    "fit",
    "evaluate",
    "load_run",
    "PCNodeError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "__version__",
]


def __getattr__(name: str):
    """`pcnode.NAME` for the public names and the submodules, imported on first use."""
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module. `pcnode.rollout` and `pcnode.evaluate` are functions named like
    their modules; importing such a module binds the module to the package's attribute,
    which would hide the function, so the function is bound instead (as an eager
    `from .rollout import rollout` did)."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _HOME.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
