"""The `api` fixture: a real control listener with /api/v1 on an OS-chosen loopback port (see
api.harness.serve_api)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api.harness import ROOT, USERS, Api, serve_api

__all__ = ["ROOT", "USERS", "api"]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path) as harness:
        yield harness
