"""Data-parallel training with torchrun: two CPU processes (gloo) behave like one."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def launch(args, tmp_path, nproc=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), *args, str(tmp_path)]
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *cmd[1:]]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("kind", ["rnn", "pcode"])
def test_two_processes_with_half_batches_match_one_with_the_full_batch(tmp_path, kind):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    launch([kind, "5"], tmp_path / "one")
    launch([kind, "5"], tmp_path / "two", nproc=2)
    single = load_file(tmp_path / "one" / "rank0.safetensors")
    rank0 = load_file(tmp_path / "two" / "rank0.safetensors")
    rank1 = load_file(tmp_path / "two" / "rank1.safetensors")
    # Distribution engaged: each rank trained in a world of two, on its own half of every
    # batch, and the halves together are the one process's whole batch.
    assert single["world"].tolist() == [1] * 5
    assert rank0["world"].tolist() == rank1["world"].tolist() == [2] * 5
    assert rank0["seen"].shape == rank1["seen"].shape == (5, 8) and single["seen"].shape == (5, 16)
    assert torch.equal(torch.cat([rank0["seen"], rank1["seen"]], 1), single["seen"])
    assert not torch.equal(rank0["seen"], rank1["seen"])
    for name in single:
        if name in ("seen", "world"):
            continue
        assert torch.equal(rank0[name], rank1[name]), f"ranks disagree on {name}"
        assert torch.allclose(rank0[name], single[name], rtol=1e-9, atol=1e-11), name
    assert not torch.allclose(single["cell.weight_hh"], single["initial.cell.weight_hh"]), "training changed nothing"
