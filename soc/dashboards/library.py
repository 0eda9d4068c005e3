"""The dashboards a daemon offers: the shipped library (`dashboards/library/*.yaml`, each a
`dashboards:` section like conf.d's) and the conf.d `dashboards:` section, which may add its
own or replace a library dashboard of the same id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.config.loader import VigilConfig, _ErrorSink, validate_entry
from collector.config.yaml_positions import load_positioned
from core.config import COMPONENT_ID_RE, ValidationContext
from core.errors import ConfigErrors
from dashboards import LIBRARY
from soc.dashboards.model import DashboardConfig

SECTION = "dashboards"


@dataclass(frozen=True)
class Dashboard:
    id: str
    config: DashboardConfig
    origin: str  # "library" or "conf.d"


def load_library(directory: Path = LIBRARY) -> dict[str, DashboardConfig]:
    """Every dashboard of the library files; raises ConfigErrors (file:line:col) for bad ones."""
    sink = _ErrorSink()
    found: dict[str, DashboardConfig] = {}
    context = ValidationContext(directory)
    for path in sorted(directory.glob("*.yaml")):
        doc = load_positioned(str(path), path.read_text(encoding="utf-8"))
        section = doc.data.get(SECTION) if isinstance(doc.data, dict) else None
        if not isinstance(section, dict):
            sink.add(f"a library file holds one `{SECTION}:` mapping", doc, ())
            continue
        for entry_id, raw in section.items():
            prefix = (SECTION, entry_id)
            if not COMPONENT_ID_RE.fullmatch(str(entry_id)) or entry_id in found:
                sink.add(f"dashboard id {entry_id!r} is invalid or declared twice", doc, prefix,
                         prefer_key=True)
                continue
            validated = validate_entry(DashboardConfig, raw, sink, doc, prefix, context)
            if isinstance(validated, DashboardConfig):
                found[str(entry_id)] = validated
    if sink.errors:
        raise ConfigErrors(sink.errors)
    return found


_library_cache: dict[Path, dict[str, DashboardConfig]] = {}


def library(directory: Path = LIBRARY) -> dict[str, DashboardConfig]:
    """The library, loaded once per process."""
    if directory not in _library_cache:
        _library_cache[directory] = load_library(directory)
    return _library_cache[directory]


def all_dashboards(config: VigilConfig | None) -> dict[str, Dashboard]:
    """The library's dashboards, then conf.d's (same id: conf.d's wins)."""
    out = {k: Dashboard(k, v, "library") for k, v in library().items()}
    if config is not None:
        for entry_id, entry in config.section(SECTION).items():
            out[entry_id] = Dashboard(entry_id, entry, "conf.d")
    return dict(sorted(out.items()))
