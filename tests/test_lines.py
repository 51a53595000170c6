"""End to end on Lines: a PC-ODE learns to cross a straight line in one or two jumps."""
import torch

from pcnode import ModelConfig, TrainConfig, build_model, evaluate, fit, rollout
from pcnode.data import split, task_data

torch.set_num_threads(1)


def lines():
    return split(task_data("lines", 1000, seed=0)["x"])


def test_pcode_learns_to_jump_over_lines_in_at_most_two_updates():
    train, test = lines()
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="pcode", state_dim=2))
    fit(model, train, TrainConfig(steps=250, eval_every=250))
    metrics = evaluate(model, test)
    ro = rollout(model, test[:, :4], horizon=20)
    assert ro.updates.max().item() <= 2
    assert metrics["mean_dt"] >= 8
    assert metrics["mse"] < 1e-3


def test_rnn_needs_one_update_per_frame_on_lines():
    train, test = lines()
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="rnn", state_dim=2))
    fit(model, train, TrainConfig(steps=20, eval_every=20))
    assert rollout(model, test[:, :4], horizon=20).updates.tolist() == [17] * len(test)
