"""Vigil's daemon: CLI, configuration, runtime, sources, queue, control plane and telemetry."""

__version__ = "0.1.0"
