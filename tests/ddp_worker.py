"""Trains a tiny model with `fit`; launched by test_distributed.py, alone or under torchrun.

usage: ddp_worker.py KIND STEPS OUT_DIR
Writes OUT_DIR/rank{RANK}.safetensors with the initial (`initial.*`) and final parameters,
the rows this process trained on at each step (`seen`, (steps, rows per process)) and the
world size its training ran in (`world`).
"""
import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, fit
from pcnode.forcing import Objective

kind, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
torch.manual_seed(0)
model = build_model(ModelConfig(kind=kind, state_dim=2, hidden=16, latent=16)).double()
data = torch.cumsum(torch.rand(64, 12, 2, dtype=torch.float64) * 0.1, 1)
# Deterministic skip rule and no dt term: then the loss is a plain mean over the batch,
# so half a batch on each of two processes must equal the whole batch on one.
config = TrainConfig(steps=steps, batch_size=16, eval_every=steps, jump_prob=0.0, dt_weight=0.0, epsilon=1e-4)
initial = {f"initial.{k}": v.clone() for k, v in model.state_dict().items()}

# Each trajectory is named by its first value, unique in this data: which rows did this process train on?
seen, world = [], []
forward = Objective.forward


def recording(self, batch, *settings):
    seen.append(batch.x[:, 0, 0].clone())
    world.append(dist.get_world_size() if dist.is_initialized() else 1)
    return forward(self, batch, *settings)


Objective.forward = recording
fit(model, data, config, rule=SegmentRule())
rank = os.environ.get("RANK", "0")
save_file({**initial, **model.state_dict(), "seen": torch.stack(seen), "world": torch.tensor(world)},
          os.path.join(out, f"rank{rank}.safetensors"))
