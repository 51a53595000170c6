import os

import pytest
import torch


@pytest.fixture
def device() -> str:
    """Where device-agnostic tests run: CPU here and in CI, CUDA under benchmarks/gpu_check.sh."""
    name = os.environ.get("PCNODE_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("PCNODE_TEST_DEVICE asks for CUDA but none is available")
    return name
