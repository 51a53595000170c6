"""Exceptions the library raises on bad input.

Every message says what was wrong and what to do about it. The command line turns
any `PCNodeError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PCNodeError(Exception):
    """Base class of every error pcnode raises on purpose."""


class ConfigError(PCNodeError, ValueError):
    """A setting is out of range or unknown (task, model, learning rate, horizon...)."""


class DataError(PCNodeError, ValueError):
    """Input data has the wrong shape, dtype or values (NaN, too short, ...)."""


class CheckpointError(PCNodeError):
    """A run folder or checkpoint is missing, corrupt, unsafe or does not match."""


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """ "; did you mean 'X'?" for the option closest to a misspelt `word`, or "" when none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
