"""Vigil's kernel: events and batches, errors, config base models and field types, the
Step/Sink contracts and the component registry, telemetry, durable files, address parsing and
reloaded files. It imports nothing else of the project (see `[tool.importlinter]`)."""

__version__ = "0.1.0"
