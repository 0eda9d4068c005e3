"""Vigil's daemon: CLI, configuration, runtime, processes, sources, queue and control plane."""

from core import __version__

__all__ = ["__version__"]
