"""`vigil alerts list|show|ack|escalate|note|resolve`: triage through the daemon's API.

The token comes from `VIGIL_TOKEN`, else from the session a terminal login left (kept 0600
under ~/.cache/vigil until it expires; `vigil alerts logout` forgets it), else from a login
(password and TOTP code prompted on the terminal); the API address from `--api`, `VIGIL_API`,
or the configuration. Tokens are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import http.client
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EX_NOAUTH = 77  # sysexits: permission denied / not logged in


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("alerts", help="triage alerts through the API")
    actions = parser.add_subparsers(dest="alerts_action", metavar="ACTION", required=True)
    api = argparse.ArgumentParser(add_help=False, parents=[common])
    api.add_argument("--api", default=os.environ.get("VIGIL_API"),
                     help="API base URL (default $VIGIL_API, else the control address)")
    api.add_argument("--json", action="store_true", help="print the API's JSON")

    listing = actions.add_parser("list", parents=[api], help="alerts, newest first")
    listing.add_argument("--tenant")
    listing.add_argument("--status", action="append", default=[])
    listing.add_argument("--severity", action="append", default=[])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("-q", "--quiet", action="store_true",
                         help="only the alert ids, one a line (for scripts: "
                              "vigil alerts ack $(vigil alerts list -q --limit 1))")
    listing.set_defaults(func=list_alerts)
    show = actions.add_parser("show", parents=[api], help="one alert with events and notes")
    show.add_argument("alert_id")
    show.set_defaults(func=show_alert)
    ack = actions.add_parser("ack", parents=[api], help="acknowledge")
    ack.add_argument("alert_id")
    ack.set_defaults(func=lambda a: _change(a, "acknowledge", {}))
    escalate = actions.add_parser("escalate", parents=[api], help="escalate to L1/L2/L3")
    escalate.add_argument("alert_id")
    escalate.add_argument("--level", required=True, choices=["L1", "L2", "L3"])
    escalate.add_argument("--reason", required=True)
    escalate.add_argument("--ask", choices=["validation", "action", "decision"],
                          help="ask the client (with --question)")
    escalate.add_argument("--question")
    escalate.set_defaults(func=escalate_alert)
    note = actions.add_parser("note", parents=[api], help="add a note")
    note.add_argument("alert_id")
    note.add_argument("text")
    note.set_defaults(func=lambda a: _change(a, "notes", {"body": a.text}))
    logout = actions.add_parser("logout", parents=[api],
                                help="end the kept terminal session (server and cache)")
    logout.set_defaults(func=logout_session)
    resolve = actions.add_parser("resolve", parents=[api], help="close the alert")
    resolve.add_argument("alert_id")
    resolve.add_argument("--resolution", required=True,
                         choices=["false_positive", "true_positive", "benign", "duplicate"])
    resolve.add_argument("--note")
    resolve.set_defaults(func=lambda a: _change(
        a, "resolve", {"resolution": a.resolution, **({"note": a.note} if a.note else {})}))


class ApiFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


UNIX = "unix:"


def _base(args: argparse.Namespace) -> str | None:
    """The API: --api / $VIGIL_API, else the daemon's local socket when this user can reach it
    (no login needed: soc/api/local.py), else the configuration's public URL."""
    if args.api:
        return str(args.api).rstrip("/")
    from collector.cli import load_or_report
    from soc.api.local import socket_path
    from soc.auth.config import public_url

    config = load_or_report(args)
    if config is None:
        return None
    local = socket_path(config.data_dir(args.data_dir))
    if config.settings.control.local_socket and os.access(local, os.R_OK | os.W_OK):
        return UNIX + str(local)
    return public_url(config)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def _call_unix(base: str, method: str, path: str, data: bytes | None) -> Any:
    connection = _UnixConnection(base.removeprefix(UNIX), timeout=30)
    try:
        connection.request(method, f"/api/v1{path}", body=data,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
    except OSError as exc:
        raise ApiFailure(0, f"cannot reach {base}: {exc.strerror or exc}") from None
    finally:
        connection.close()
    if response.status >= 400:
        try:
            message = json.loads(payload).get("error", response.reason)
        except ValueError:
            message = response.reason
        raise ApiFailure(response.status, str(message))
    return json.loads(payload)


def _call(base: str, method: str, path: str, token: str | None,
          body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    if base.startswith(UNIX):
        return _call_unix(base, method, path, data)
    request = urllib.request.Request(f"{base}/api/v1{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise ApiFailure(exc.code, str(message)) from None
    except urllib.error.URLError as exc:
        raise ApiFailure(0, f"cannot reach {base}: {exc.reason}") from None


def session_cache(base: str) -> Path:
    """Where a terminal login's session token is kept for the next commands: one file per API
    address under $XDG_CACHE_HOME/vigil (~/.cache/vigil), mode 0600 in a 0700 directory."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vigil"
    return root / f"session-{hashlib.sha256(base.encode()).hexdigest()[:16]}.json"


def _cached_token(base: str) -> str | None:
    path = session_cache(base)
    try:
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # not ours alone: never trust (or use) it
        cached = json.loads(path.read_text(encoding="utf-8"))
        expires = datetime.fromisoformat(str(cached["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if expires <= datetime.now(UTC) + timedelta(seconds=30):
        path.unlink(missing_ok=True)
        return None
    return str(cached["token"])


def _cache_token(base: str, token: str, expires_at: Any) -> None:
    path = session_cache(base)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"api": base, "token": token, "expires_at": str(expires_at)}, handle)
        os.replace(path.with_suffix(".tmp"), path)
    except OSError as exc:  # a read-only home: the login still works, once
        print(f"note: the session is not kept ({exc.strerror})", file=sys.stderr)


def forget_session(base: str) -> None:
    session_cache(base).unlink(missing_ok=True)


def _token(base: str) -> str | None:
    token = os.environ.get("VIGIL_TOKEN")
    if token:
        return token
    if base.startswith(UNIX):
        return ""  # the local socket: the kernel says who is calling
    cached = _cached_token(base)
    if cached:
        return cached
    if not sys.stdin.isatty():
        print("set VIGIL_TOKEN (or run on a terminal to log in)", file=sys.stderr)
        return None
    login = input("login: ")
    password = getpass.getpass("password: ")
    code = input("authenticator code: ")
    reply = _call(base, "POST", "/auth/login", None,
                  {"login": login, "password": password, "code": code})
    _cache_token(base, str(reply["token"]), reply.get("expires_at"))
    return str(reply["token"])


def _run(args: argparse.Namespace, method: str, path: str,
         body: dict[str, Any] | None = None) -> tuple[int, Any]:
    base = _base(args)
    if base is None:
        return 78, None
    try:
        token = _token(base)
        if token is None:
            return EX_NOAUTH, None
        return 0, _call(base, method, path, token, body)
    except ApiFailure as exc:
        if exc.status == 401:
            forget_session(base)  # expired or revoked: the next command logs in again
        print(f"error: {exc}", file=sys.stderr)
        return (EX_NOAUTH if exc.status in (401, 403) else 1), None


def _group(alert: dict[str, Any]) -> str:
    """The group key as `field=value` pairs (the attacking address, the user, the host)."""
    raw = alert.get("group_key")
    try:
        key = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return str(raw)
    if isinstance(key, dict):
        return " ".join(f"{k}={v}" for k, v in key.items())
    return "" if key in (None, "") else str(key)


def _summary(alert: dict[str, Any]) -> str:
    group = _group(alert)
    return (f"{alert['id']}  {alert['tenant']:<12} {alert['severity']:<9} "
            f"{alert['status']:<12} {alert['rule']['name']}"
            f"{f' [{group}]' if group else ''}  (x{alert['count']}, ack by "
            f"{alert['sla']['ack_due'][:16]})")


def list_alerts(args: argparse.Namespace) -> int:
    query: list[tuple[str, str]] = [("limit", str(args.limit))]
    if args.tenant:
        query.append(("tenant", args.tenant))
    query += [("status", s) for s in args.status] + [("severity", s) for s in args.severity]
    code, page = _run(args, "GET", "/alerts?" + urllib.parse.urlencode(query))
    if code:
        return code
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    if args.quiet:
        for alert in page["items"]:
            print(alert["id"])
        return 0
    for alert in page["items"]:
        print(_summary(alert))
    print(f"{len(page['items'])} of {page['total']} alert(s)")
    return 0


def show_alert(args: argparse.Namespace) -> int:
    code, alert = _run(args, "GET", f"/alerts/{urllib.parse.quote(args.alert_id, safe='')}")
    if code:
        return code
    if args.json:
        print(json.dumps(alert, indent=2))
        return 0
    rule, threat = alert["rule"], alert.get("threat") or {}
    print(f"{alert['id']}  {alert['severity'].upper()}  {alert['status']}  {rule['name']}")
    print(f"  tenant      {alert['tenant']} ({alert.get('dataset') or '-'})")
    print(f"  group       {_group(alert) or '-'}")
    print(f"  matches     {alert['count']} ({alert.get('suppressed') or 0} folded into this "
          f"alert), first {alert['first_seen'][:19]}, last {alert['last_seen'][:19]}")
    print(f"  ATT&CK      {', '.join(threat.get('tactics') or []) or '-'}; "
          f"{', '.join(threat.get('techniques') or []) or '-'}")
    print(f"  SLA         ack by {alert['sla']['ack_due'][:19]}, resolve by "
          f"{alert['sla']['resolve_due'][:19]}")
    print(f"  triage      assignee {alert['assignee'] or '-'}, escalation "
          f"{alert['escalation']['level'] or '-'}, resolution {alert['resolution'] or '-'}")
    print(f"  rule        {rule['id']}: {rule.get('description') or ''}")
    if rule.get("falsepositives"):
        print(f"  false pos.  {'; '.join(rule['falsepositives'])}")
    if rule.get("runbook"):
        print(f"  runbook     {rule['runbook']}")
    events = alert["events"]
    print(f"  last events ({len(events)} kept):")
    for event in events[-5:]:
        message = event.get("message") if isinstance(event, dict) else event
        print(f"    {str(message)[:160]}")
    for note in alert["notes"]:
        print(f"  note {note['created_at'][:19]} {note['author']}: {note['body']}")
    base = _base(args)
    if base and base.startswith(UNIX):
        from collector.cli import load_or_report
        from soc.auth.config import public_url

        config = load_or_report(args)
        base = public_url(config) if config is not None else None
    if base:
        print(f"  console     {base}/alerts/{alert['id']}")
    return 0


def _change(args: argparse.Namespace, action: str, body: dict[str, Any]) -> int:
    path = f"/alerts/{urllib.parse.quote(args.alert_id, safe='')}/{action}"
    code, reply = _run(args, "POST", path, body)
    if code:
        return code
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        print(f"{reply['action']}: {_summary(reply['alert'])}")
    return 0


def escalate_alert(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"level": args.level, "reason": args.reason}
    if args.ask:
        if not args.question:
            print("--ask needs --question", file=sys.stderr)
            return 2
        body["client_request"] = {"kind": args.ask, "question": args.question}
    return _change(args, "escalate", body)


def logout_session(args: argparse.Namespace) -> int:
    """Revoke the kept session on the server, then forget it here."""
    base = _base(args)
    if base is None:
        return 78
    token = _cached_token(base)
    if token is None:
        print("no kept session", file=sys.stderr)
        return 0
    try:
        _call(base, "POST", "/auth/logout", token, {})
    except ApiFailure as exc:
        if exc.status != 401:
            print(f"error: {exc}", file=sys.stderr)
    forget_session(base)
    print("logged out")
    return 0
