"""`vigil alerts` keeps a terminal login's session (0600, until it expires) so each command does
not need a TOTP login; an unsafe, expired or revoked cache is never used, and `alerts logout`
revokes it on the server."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.harness import Api

from collector.commands.alerts import _cache_token, session_cache


async def _vigil(tmp_path: Path, api: Api, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_TOKEN", "VIGIL_API")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "collector.cli", "alerts", *args, "--api", api.base,
        "-c", str(tmp_path / "conf.d"), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_kept_session_is_used_until_unsafe_expired_or_logged_out(
        api: Api, tmp_path: Path) -> None:
    os.environ["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    try:
        token = await api.login("ana")
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        _cache_token(api.base, token, later)
        path = session_cache(api.base)
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        code, out, err = await _vigil(tmp_path, api, "list")
        assert code == 0, err
        assert "alert(s)" in out and token not in out + err

        path.chmod(0o644)  # someone else could have written it: ignored
        code, _, err = await _vigil(tmp_path, api, "list")
        assert code == 77 and "set VIGIL_TOKEN" in err

        _cache_token(api.base, token, (datetime.now(UTC) - timedelta(minutes=1)).isoformat())
        code, _, err = await _vigil(tmp_path, api, "list")
        assert code == 77 and not path.exists()  # expired: forgotten

        _cache_token(api.base, token, later)
        code, out, err = await _vigil(tmp_path, api, "logout")
        assert code == 0 and out.strip() == "logged out", err
        assert not path.exists()
        status, _ = await api.call("GET", "/alerts", token=token)
        assert status == 401  # revoked on the server, not only forgotten here

        _cache_token(api.base, token, later)  # a revoked token left behind
        code, _, err = await _vigil(tmp_path, api, "list")
        assert code == 77 and not path.exists()
    finally:
        del os.environ["XDG_CACHE_HOME"]


async def test_alerts_show_by_prefix_shows_what_triage_starts_from(api: Api,
                                                                    tmp_path: Path) -> None:
    os.environ["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    try:
        _cache_token(api.base, await api.login("ana"),
                     (datetime.now(UTC) + timedelta(hours=1)).isoformat())
        alert_id = api.alerts["acme"][0]
        code, out, err = await _vigil(tmp_path, api, "show", alert_id[:8])
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].startswith(f"{alert_id}  CRITICAL  new  Rule ssh_brute_force")
        assert "  group       n=0" in lines
        assert "  ATT&CK      credential-access; T1110" in lines
        assert any(line.startswith("    Failed password #") for line in lines)
        assert f"  console     {api.base}/alerts/{alert_id}" in lines
        code, out, err = await _vigil(tmp_path, api, "list")
        assert code == 0 and f"{alert_id}  acme" in out and "[n=0]" in out
    finally:
        del os.environ["XDG_CACHE_HOME"]
