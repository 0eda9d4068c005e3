"""The package layers hold (`[tool.importlinter]` in pyproject.toml): `lint-imports` passes on
the project, and fails on a copy of it with an import that goes up a layer."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "parsers", "enrichers", "rules", "sinks", "dashboards", "soc", "collector")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("importlinter") is None,
                                reason="import-linter is not installed (the `dev` extra)")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` of this environment, run in `cwd` with the project's contracts."""
    command = Path(sys.executable).with_name("lint-imports")
    if not command.exists():
        pytest.skip(f"import-linter is installed but {command} is not")
    return subprocess.run([str(command), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_the_project_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def copy_packages(target: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def test_an_import_up_from_the_kernel_breaks_the_contract(tmp_path: Path) -> None:
    copy_packages(tmp_path)
    events = tmp_path / "core" / "events.py"
    events.write_text(events.read_text() + "\nfrom collector.routing import TenantRouter\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "core.events -> collector.routing" in result.stdout


def test_a_plugin_importing_a_sibling_breaks_the_contract(tmp_path: Path) -> None:
    copy_packages(tmp_path)
    cef = tmp_path / "parsers" / "cef.py"
    cef.write_text(cef.read_text() + "\nfrom enrichers.geoip import GeoipStep\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "parsers.cef -> enrichers.geoip" in result.stdout
