"""pcnode: piecewise-constant neural ODEs (Greydanus, Lee & Fern, 2021) and their baselines.

Time is measured in data frames everywhere: a span of 1 is one frame.

    >>> import torch, pcnode
    >>> model = pcnode.PCODE(pcnode.ModelConfig(state_dim=2))
    >>> ro = pcnode.rollout(model, torch.zeros(8, 4, 2), horizon=20)
    >>> ro.at(torch.linspace(4, 20, 65)).shape
    torch.Size([8, 65, 2])
"""
__version__ = "0.1.0"

from .data import Trajectories
from .errors import CheckpointError, ConfigError, DataError, PCNodeError
from .evaluate import evaluate
from .forcing import SkipRule, teacher_forcing
from .model import ODERNN, PCODE, RNN, CfC, ModelConfig, build_model
from .rollout import Rollout, rollout
from .train import TrainConfig, fit, load_run

__all__ = [
    "PCODE", "RNN", "ODERNN", "CfC", "ModelConfig", "SkipRule", "TrainConfig", "Rollout", "Trajectories",
    "build_model", "teacher_forcing", "rollout", "fit", "evaluate", "load_run",
    "PCNodeError", "ConfigError", "DataError", "CheckpointError",
]
