"""The dashboard library shipped with Vigil: YAML files under `library/`, each a `dashboards:`
section like conf.d's. Data only; `soc/dashboards/` reads, activates and runs them."""

from __future__ import annotations

from pathlib import Path

LIBRARY = Path(__file__).parent / "library"
