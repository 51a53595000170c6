import os

import numpy as np
import pytest
import torch

from pcnode import ModelConfig, TrainConfig, build_model, fit
from pcnode.data import save_npz


@pytest.fixture
def device() -> str:
    """Where device-agnostic tests run: CPU here and in CI, CUDA under benchmarks/gpu_check.sh."""
    name = os.environ.get("PCNODE_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("PCNODE_TEST_DEVICE asks for CUDA but none is available")
    return name


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A small trained run whose data spec points at an .npz file, as `pcnode train --data` writes."""
    root = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    x = np.cumsum(np.random.default_rng(0).random((20, 10, 2), dtype=np.float32) * 0.1, axis=1)
    save_npz(root / "data.npz", x=x)
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16))
    data = torch.from_numpy(x)
    fit(model, data[:18], TrainConfig(steps=2, batch_size=4, eval_every=2, checkpoint_every=2, eval_size=2),
        test=data[18:], run_dir=root / "run", data={"file": str(root / "data.npz"), "test_fraction": 0.1})
    return root / "run"
