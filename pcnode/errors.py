"""Exceptions the library raises on bad input.

Every message says what was wrong and what to do about it. The command line turns
any `PCNodeError` into one line on stderr and exit code 2.
"""


class PCNodeError(Exception):
    """Base class of every error pcnode raises on purpose."""


class ConfigError(PCNodeError, ValueError):
    """A setting is out of range or unknown (task, model, learning rate, horizon...)."""


class DataError(PCNodeError, ValueError):
    """Input data has the wrong shape, dtype or values (NaN, too short, ...)."""


class CheckpointError(PCNodeError):
    """A run folder or checkpoint is missing, corrupt, unsafe or does not match."""

