"""Every rule's requirement for a process that runs no detection itself (the main process when
worker processes run it): the configured rules loaded once per configuration, for the
integration map's "what a missing category would switch on"."""

from __future__ import annotations

import threading
from pathlib import Path

from collector.config import VigilConfig
from rules.coverage import correlation_requirements
from rules.loader import RuleRequirement


class RequirementsCache:
    """The requirements of one configuration (a reload's new configuration loads again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: tuple[VigilConfig, list[RuleRequirement]] | None = None

    def get(self, config: VigilConfig, conf_dir: Path, data_dir: Path) -> list[RuleRequirement]:
        """Called off the event loop: a cold load compiles rules (the rule cache makes the
        next one fast)."""
        from collector.detection.stage import load_ruleset

        with self._lock:
            if self._loaded is None or self._loaded[0] is not config:
                ruleset = load_ruleset(config, conf_dir, data_dir)
                singles = ruleset.requirements()
                self._loaded = (config, singles + correlation_requirements(
                    ruleset.correlations, singles))
            return self._loaded[1]
