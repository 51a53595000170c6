"""Trains a tiny model with `fit`; launched by test_distributed.py, alone or under torchrun.

usage: ddp_worker.py KIND STEPS OUT_DIR
Writes OUT_DIR/rank{RANK}.safetensors with the initial (`initial.*`) and final parameters.
"""
import os
import sys

import torch
from safetensors.torch import save_file

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, fit

kind, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
torch.manual_seed(0)
model = build_model(ModelConfig(kind=kind, state_dim=2, hidden=16, latent=16)).double()
data = torch.cumsum(torch.rand(64, 12, 2, dtype=torch.float64) * 0.1, 1)
# Deterministic skip rule and no dt term: then the loss is a plain mean over the batch,
# so half a batch on each of two processes must equal the whole batch on one.
config = TrainConfig(steps=steps, batch_size=16, eval_every=steps, jump_prob=0.0, dt_weight=0.0, epsilon=1e-4)
initial = {f"initial.{k}": v.clone() for k, v in model.state_dict().items()}
fit(model, data, config)
rank = os.environ.get("RANK", "0")
save_file({**initial, **model.state_dict()}, os.path.join(out, f"rank{rank}.safetensors"))
