"""Runs written by older versions of pcnode, read as today's: the one place that knows their layouts.

Every config a run folder holds (config.json, and the copy in its checkpoint's metadata)
passes through `upgrade` before anything reads it, so the rest of the package knows one
layout: "model", "train", "segments" and "data".

Version 0.1 kept the segment rule's parts in two places: the bounds on a jump and the
input threshold in the model's settings, and the burn-in and the skip threshold's forms
(`epsilon`, or `relative_epsilon` times the `data_change` the run measured) in a "rule"
inside the training settings, together with the loss weights. Runs from before the
relative threshold existed stored the authors' absolute `epsilon` alone.

Metrics written before their names carried their units (`test_mse`, ...) are read under
today's names (`RENAMED_METRICS`, `checkpoint.read_metrics`).

One other form of older runs lives on in the model itself: auxiliary dims
(`ModelConfig.aux_dims`), state dims that runs from before known inputs existed read
and decoded but never scored (`SequenceModel.scored_dims`, `rollout.hold_aux`).
"""

from __future__ import annotations

import copy

RULE_PARTS_IN_MODEL = ("min_dt", "max_dt", "input_threshold")  # v0.1: segment settings among the model's
TRAIN_PARTS_IN_RULE = ("jump_prob", "zero_span_weight", "dt_weight", "feed_predictions", "field_penalty")
RENAMED_METRICS = {
    "train_mean_dt": "train_mean_dt_frames",
    "test_mse": "test_mse_model_units",
    "test_mean_dt": "test_mean_dt_frames",
    "val_mse": "val_mse_model_units",
}


def upgrade(cfg: dict) -> dict:
    """A run's config in today's layout (a new dict; one already in it is returned as a copy)."""
    cfg = copy.deepcopy(cfg)
    model, train = cfg.get("model"), cfg.get("train")
    if "segments" in cfg or not isinstance(model, dict) or not isinstance(train, dict):
        return cfg
    rule = train.pop("rule", None)
    rule = rule if isinstance(rule, dict) else {}
    segments = {k: model.pop(k) for k in RULE_PARTS_IN_MODEL if k in model}
    segments["n_burn"] = rule.pop("n_burn", 4)
    segments["jumps"] = model.get("kind", "pcode") == "pcode"
    epsilon, relative, change = (
        rule.pop("epsilon", None),
        rule.pop("relative_epsilon", None),
        rule.pop("data_change", None),
    )
    events = rule.pop("event_threshold", None)
    if epsilon is not None:
        segments["threshold"] = epsilon
    elif relative is not None and change is not None:
        segments["threshold"] = relative * change
    if events is not None and change is not None:
        segments["event_threshold"] = events * change
    train.update({k: rule.pop(k) for k in TRAIN_PARTS_IN_RULE if k in rule})
    train.update({"epsilon": epsilon, "relative_epsilon": relative, "events": events})
    if rule:  # a key no version wrote: left where the training settings' check will name it
        train["rule"] = rule
    cfg["segments"] = segments
    return cfg
