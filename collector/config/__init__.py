"""Configuration: YAML with positions, strict models, and the conf.d loader."""

from collector.config.loader import VigilConfig, load_config

__all__ = ["VigilConfig", "load_config"]
