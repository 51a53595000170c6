"""pcnode: piecewise-constant neural ODEs (Greydanus, Lee & Fern, 2021) and their baselines.

Time is measured in data frames everywhere: a span of 1 is one frame.

    >>> import torch, pcnode
    >>> model = pcnode.PCODE(pcnode.ModelConfig(state_dim=2))
    >>> ro = pcnode.rollout(model, torch.zeros(8, 4, 2), horizon=20)
    >>> ro.at(torch.linspace(4, 20, 65)).shape
    torch.Size([8, 65, 2])
"""
from .checkpoint import load_run
from .config import TrainConfig
from .data import Trajectories
from .errors import CheckpointError, ConfigError, DataError, PCNodeError
from .evaluate import evaluate
from .flows import ODERNN, CfC
from .forcing import teacher_forcing
from .model import PCODE, RNN, ModelConfig, build_model
from .rollout import Rollout, rollout
from .segments import SegmentRule
from .train import fit
from .version import __version__

__all__ = [
    "PCODE", "RNN", "ODERNN", "CfC", "ModelConfig", "SegmentRule", "TrainConfig", "Rollout", "Trajectories",
    "build_model", "teacher_forcing", "rollout", "fit", "evaluate", "load_run",
    "PCNodeError", "ConfigError", "DataError", "CheckpointError", "__version__",
]
