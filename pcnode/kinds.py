"""The models by name: `build_model` makes the one a config's `kind` names.

The PC-ODE and the RNN are in `pcnode.model`, the ODE-RNN and the CfC peer, which
build on it, in `pcnode.flows`; this table sits above both.
"""

from __future__ import annotations

import torch

from .flows import ODERNN, CfC
from .model import PCODE, RNN, ModelConfig, SequenceModel


def build_model(config: ModelConfig, seed: int | None = None) -> SequenceModel:
    """Make the model `config.kind` names.

    With `seed`, its initial weights depend on the seed alone, and the global random
    state is left as it was. (PyTorch seeds a new process at random, so a model built
    without a seed starts from different weights in every process.)
    """
    config.validate()
    cls = {"pcode": PCODE, "rnn": RNN, "odernn": ODERNN, "cfc": CfC}[config.kind]
    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)
