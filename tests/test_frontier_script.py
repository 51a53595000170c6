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


def test_a_record_is_read_from_its_scores_without_weights(frontier):
    folder = RECORDS / "billiards2d-pcode-d2500"
    saved = json.loads((folder / frontier.CACHE).read_text())
    row = frontier.score(folder, folder.name, shipped=False)
    assert not any(folder.glob("*.safetensors"))  # scored without loading a model
    assert (row["mse"], row["updates"], row["step"]) == (saved["mse"], saved["updates"], saved["step"])
    assert row["trained_steps"] == 25_000 and row["command"] == frontier.command(json.loads(
        (folder / "config.json").read_text()))


def test_a_folder_with_neither_weights_nor_current_scores_is_refused(frontier, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text((RECORDS / "billiards2d-pcode-d2500" / "config.json").read_text())
    (folder / frontier.CACHE).write_text(json.dumps({"scores": frontier.SCORES - 1, "step": 1000}))
    with pytest.raises(SystemExit, match="neither weights nor scores"):
        frontier.score(folder, "run", shipped=False)


def test_the_error_by_frame_is_averaged_over_bands_and_skips_rows_without_it(frontier):
    rows = [{"name": "a", "task": "circles", "kind": "pcode", "updates": 5.0,
             "mse_by_frame": [1.0] * 5 + [2.0] * 5 + [3.0] * 31},
            {"name": "old", "task": "circles", "kind": "rnn", "updates": 41.0}]
    (line,) = frontier.by_frame(rows)
    assert line == "| a | PC-ODE | 5.00 | 1.00e+00 | 2.00e+00 | 3.00e+00 | 3.00e+00 | 3.00e+00 | - |"
    billiards = {**rows[0], "task": "billiards2d", "mse_first_calm": 0.5, "step_size_late": 0.661}
    assert frontier.by_frame([billiards])[0].endswith("| 3.00e+00 | 0.66 | 5.00e-01 | - |")  # scored before the split
