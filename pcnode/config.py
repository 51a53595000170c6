"""Settings read back from JSON: one loader for every config dataclass.

Configs are typed dataclasses (`ModelConfig`, `TrainConfig` with its `SkipRule`,
`SeriesSpec`, ...), saved as JSON next to every run. `load_config` turns such JSON
back into the dataclass: unknown keys are refused, nested configs are built, and the
result is validated, so a hand-edited config fails with one clear line.
"""
from __future__ import annotations

import dataclasses
import typing

from .errors import ConfigError


def check_fields(cls: type, d: dict, what: str) -> None:
    """Refuse keys of `d` that are not fields of the dataclass `cls`."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {what} settings {sorted(unknown)}; known: {sorted(names)}")


def load_config(cls: type, d: dict, what: str):
    """The dataclass `cls` from its JSON form `d`, validated when `cls` has `validate()`.

    `what` names the settings in messages ("model", "training", ...).
    """
    if not isinstance(d, dict):
        raise ConfigError(f"the {what} settings must be a mapping, got {type(d).__name__}")
    check_fields(cls, d, what)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in d.items():
        kind = hints.get(name)
        if dataclasses.is_dataclass(kind):
            value = load_config(kind, value, f"{what} '{name}'")
        values[name] = value
    try:
        config = cls(**values)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"bad {what} settings ({e})") from None
    return config.validate() if hasattr(config, "validate") else config
