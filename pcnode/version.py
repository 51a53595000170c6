"""The package version, which every run folder records."""

__version__ = "0.2.0"
