"""benchmarks/frontier.py: the command it prints reproduces a run, seed included."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "frontier.py"
RECORDS = SCRIPT.parent / "results" / "frontier"


@pytest.fixture(scope="module")
def frontier():
    spec = importlib.util.spec_from_file_location("frontier_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("run, seed", [("billiards2d-pcode-d2500", None), ("billiards2d-pcode-d2500-8k-s1", 1)])
def test_the_printed_command_names_a_seed_other_than_the_default(frontier, run, seed):
    cfg = json.loads((RECORDS / run / "config.json").read_text())
    cmd = frontier.command(cfg)
    assert ("--seed" in cmd) == (seed is not None)
    if seed is not None:
        assert f"--seed {seed} " in cmd and cfg["data"]["seed"] == seed  # --seed draws the data too
