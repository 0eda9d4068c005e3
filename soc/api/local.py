"""The local administrator: the control application also listens on a Unix socket,
`<data_dir>/run/control.sock`, in a directory only the daemon's user can enter (0700), and a
request arriving there is the host's administrator (a platform admin over every tenant)
without a login. That is how `vigil alerts ...` works on the collector host itself, like
`syslog-ng-ctl` or `docker`: whoever can reach the socket already owns the daemon's files.

The kernel names the caller (SO_PEERCRED): only root and the daemon's own user are accepted,
whatever the socket's permissions became, and every action is audited as `local:<user>`.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from pathlib import Path

from aiohttp import web

from soc.auth.model import Principal

SOCKET_DIR = "run"
SOCKET_NAME = "control.sock"
LOCAL_ROLE = "platform_admin"


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_DIR / SOCKET_NAME


def prepare_socket_dir(data_dir: Path) -> Path:
    """The socket's directory, 0700 (a stale socket from a killed daemon is removed)."""
    path = socket_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.is_socket():
        path.unlink()
    return path


def peer_uid(request: web.Request) -> int | None:
    """The connecting process's uid when the request came over a Unix socket, else None."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def local_principal(uid: int | None, daemon_uid: int | None = None) -> Principal | None:
    """The principal of a Unix-socket caller: root or the daemon's user; anyone else None."""
    if uid is None:
        return None
    daemon_uid = os.geteuid() if daemon_uid is None else daemon_uid
    if uid not in (0, daemon_uid):
        return None
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Principal(login=f"local:{name}", role=LOCAL_ROLE, tenants=None, token_kind="local",
                     expires_at="")
