"""Nothing loaded may run code: checkpoints, run folders and data files carrying pickles are refused."""
import json
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from pcnode import ModelConfig, TrainConfig, build_model, fit, load_run
from pcnode import checkpoint as ckpt
from pcnode.cli import main
from pcnode.config import load_config
from pcnode.data import load_npz
from pcnode.errors import CheckpointError, DataError

torch.set_num_threads(1)


class Payload:
    """Unpickling this creates the file `marker`: proof that a loader ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def malicious_pickle(marker) -> bytes:
    return pickle.dumps({"model": Payload(marker)})


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "PWNED"



def copy_run(src, dst):
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def test_the_planted_payload_really_runs_code_when_unpickled(tmp_path, marker):
    # Guards the tests below: if this failed, "no marker" would prove nothing.
    pickle.loads(malicious_pickle(marker))
    assert marker.exists()


# ---- nothing loaded may run code -------------------------------------------------------------------

PICKLED_CHECKPOINT_NAMES = ["checkpoint.pt", "checkpoint.pth", "checkpoint.ckpt", "model.pt", "model.bin"]


@pytest.mark.parametrize("name", PICKLED_CHECKPOINT_NAMES)
def test_checkpoint_loader_refuses_pickle_formats_by_extension(tmp_path, marker, name):
    path = tmp_path / name
    path.write_bytes(malicious_pickle(marker))
    with pytest.raises(CheckpointError, match="safetensors"):
        ckpt.load_tensors(path)
    assert not marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_disguised_as_safetensors_is_refused(tmp_path, marker, writer):
    path = tmp_path / "checkpoint.safetensors"
    if writer == "pickle":
        path.write_bytes(malicious_pickle(marker))
    else:
        torch.save({"model": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ckpt.load_tensors(path)
    assert not marker.exists()


def plant(run, marker, where):
    """Replace or add one file of a run folder with the malicious pickle."""
    payload = malicious_pickle(marker)
    if where == "checkpoint.safetensors":
        (run / ckpt.CHECKPOINT).write_bytes(payload)
    elif where == "config.json":
        (run / ckpt.CONFIG).write_bytes(payload)
    elif where == "torch.save checkpoint":
        torch.save({"model": Payload(marker)}, run / ckpt.CHECKPOINT)
    else:  # a pickled checkpoint beside (instead of) the safetensors one
        (run / ckpt.CHECKPOINT).unlink()
        (run / where).write_bytes(payload)


RUN_PLANTS = ["checkpoint.safetensors", "config.json", "torch.save checkpoint"] + PICKLED_CHECKPOINT_NAMES


@pytest.mark.parametrize("where", RUN_PLANTS)
def test_malicious_run_folder_is_refused_by_load_run(tmp_path, good_run, marker, where):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, where)
    with pytest.raises(CheckpointError):
        load_run(run)
    assert not marker.exists()


@pytest.mark.parametrize("where", RUN_PLANTS)
def test_malicious_run_folder_is_refused_by_pcnode_eval(tmp_path, good_run, marker, capsys, where):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, where)
    code, err = cli(capsys, "eval", run)
    assert code == 2 and err.startswith("pcnode: error:") and err.count("\n") == 1
    assert not marker.exists() and not (run / "eval.json").exists()


def test_malicious_checkpoint_is_refused_on_resume(tmp_path, good_run, marker):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, "checkpoint.safetensors")
    cfg = json.loads((run / "config.json").read_text())
    model = build_model(ModelConfig(**cfg["model"]))
    with pytest.raises(CheckpointError):
        fit(model, torch.rand(4, 10, 2), load_config(TrainConfig, cfg["train"], "training"), run_dir=run, resume=True,
            data=cfg["data"])
    assert not marker.exists()


def plant_data(path, marker, kind):
    if kind == "object array in npz":
        np.savez(path, x=np.array([Payload(marker)], dtype=object))
    elif kind == "object .npy":
        with open(path, "wb") as f:
            np.save(f, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    else:  # a bare pickle
        path.write_bytes(malicious_pickle(marker))


DATA_PLANTS = [("data.npz", "object array in npz"), ("data.npz", "bare pickle"), ("data.npz", "object .npy"),
               ("data.pt", "bare pickle"), ("data.pkl", "bare pickle"), ("data.npy", "object .npy")]


@pytest.mark.parametrize("name, kind", DATA_PLANTS)
def test_malicious_data_file_is_refused_by_load_npz(tmp_path, marker, name, kind):
    path = tmp_path / name
    plant_data(path, marker, kind)
    with pytest.raises(DataError):
        load_npz(path)
    assert not marker.exists()


@pytest.mark.parametrize("name, kind", DATA_PLANTS)
def test_malicious_data_file_is_refused_by_pcnode_train(tmp_path, marker, capsys, name, kind):
    path = tmp_path / name
    plant_data(path, marker, kind)
    code, err = cli(capsys, "train", "--data", path, "--steps", 2, "--out", tmp_path / "run")
    assert code == 2 and err.startswith("pcnode: error:") and err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_pcnode_eval_refuses_a_malicious_checkpoint_in_a_real_process(tmp_path, good_run, marker):
    run = copy_run(good_run, tmp_path / "run")
    plant(run, marker, "torch.save checkpoint")
    proc = subprocess.run([sys.executable, "-m", "pcnode", "eval", str(run)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("pcnode: error:") and proc.stderr.count("\n") == 1
    assert not marker.exists()


def test_pcnode_train_refuses_a_malicious_npz_in_a_real_process(tmp_path, marker):
    plant_data(tmp_path / "data.npz", marker, "object array in npz")
    proc = subprocess.run([sys.executable, "-m", "pcnode", "train", "--data", "data.npz", "--out", "run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pickled objects" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_the_package_never_calls_torch_load_or_unpickles():
    source = "\n".join(p.read_text() for p in pathlib.Path(ckpt.__file__).parent.glob("*.py"))
    assert "torch.load" not in source and "pickle.load" not in source
    assert "allow_pickle=True" not in source
