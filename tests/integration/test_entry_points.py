"""The entry points a fresh clone is driven through: `.ci/run` is valid bash that ends in
`make test`, and the Makefile's `run` and `test` targets resolve (checked with `make -n`, which
prints the recipe without running it). A broken `.ci/run` fails CI in one second with no test
run, so it is checked here rather than discovered there."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from support.daemon import REPO

CI_RUN = REPO / ".ci" / "run"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_ci_entry_point_is_valid_bash_ending_in_make_test() -> None:
    result = subprocess.run(["bash", "-n", str(CI_RUN)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    commands = [line.strip() for line in CI_RUN.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    assert CI_RUN.stat().st_mode & 0o111, ".ci/run must be executable"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["run", "test", "bench", "lint"])
def test_makefile_target_resolves(target: str) -> None:
    result = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert ".venv" in result.stdout
