"""Hostile JSON through every ingest path of one running daemon (issue 13: trust boundaries).

Hypothesis generates JSON a sender controls: nesting far past any limit, mixed types, keys
starting with `vigil` (flat and as a nested `vigil` object), tenant-looking values (lists, path
traversals, another tenant's id), huge strings, unicode and invalid UTF-8. Each event goes, for
tenant `demo` or `acme`, over HTTP `/v1/logs`, Splunk HEC, raw TCP JSON or syslog TCP with a
JSON body, through the shipped pipelines. Afterwards: the daemon never exited, every event the
sources took in is in its own tenant's lake or dead letter, no row sits under another tenant's
partition, and no file exists outside the data directory.
"""

from __future__ import annotations

import itertools
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from support.daemon import VigilProcess, wait_for
from support.tenants import (
    DEEP_APP,
    TENANTS,
    files_outside,
    post,
    send_lines,
    syslog_line,
    two_tenant_conf,
)

PATHS = ("logs", "hec", "tcp_json", "syslog")

TENANT_VALUES = st.one_of(
    st.sampled_from(["acme", "demo", "x/../../../../PWNED", "../acme", "x/../../alerts/tenant=acme",
                     "_quarantine", "tenant=acme", "a\x00b", "", ".", "..", "\ud800", "ACME"]),
    st.lists(st.sampled_from(["a", "acme", "demo"]), max_size=2),
    st.integers(), st.none(), st.booleans(),
    st.dictionaries(st.sampled_from(["tenant", "id"]), st.sampled_from(["acme", "demo"]),
                    max_size=2),
)
VIGIL_KEYS = st.sampled_from([
    "vigil", "vigil.tenant", "vigil.source", "vigil.dataset", "vigil.received_at",
    "vigil.offset", "vigil.pipeline", "vigil.parse_error", "vigil.source_failure",
    "vigil.truncated", "vigilant", "vigil.", "@timestamp", "message", "tenant", "user.name",
    "source.ip", "event.action", "payload.vigil.tenant"])
KEYS = st.one_of(VIGIL_KEYS, st.text(max_size=12)).filter(lambda k: k != "probe")
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), TENANT_VALUES,
    st.sampled_from(["2026-01-01T00:00:00Z", "1715678400.5", "not a time", "9" * 30]))
VALUES = st.recursive(
    SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                        st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=25)
VIGIL_OBJECT = st.one_of(
    st.fixed_dictionaries({}, optional={"tenant": TENANT_VALUES, "source": VALUES,
                                        "dataset": VALUES, "received_at": VALUES,
                                        "offset": VALUES}),
    VALUES)


@dataclass
class Payload:
    """One hostile JSON object, rendered as text around a probe that names its sender."""

    fields: dict[str, Any]
    vigil: Any
    depth: int
    huge: int
    ascii_only: bool

    def render(self, probe: str) -> bytes:
        parts = [f'"probe":"{probe}"']
        if self.vigil is not None:
            parts.append('"vigil":' + json.dumps(self.vigil, ensure_ascii=self.ascii_only))
        inner = json.dumps(self.fields, ensure_ascii=self.ascii_only)[1:-1]
        if inner:
            parts.append(inner)
        if self.depth:
            parts.append('"deep":' + '{"vigil":{"tenant":' * self.depth + '"acme"'
                         + "}}" * self.depth)
        if self.huge:
            parts.append('"huge":"' + "\u00e9A" * (self.huge // 2) + '"')
        return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")


PAYLOADS = st.builds(
    Payload, fields=st.dictionaries(KEYS, VALUES, max_size=6),
    vigil=st.one_of(st.none(), VIGIL_OBJECT),
    depth=st.one_of(st.just(0), st.just(0), st.integers(1, 40), st.integers(200, 1500)),
    huge=st.one_of(st.just(0), st.just(0), st.integers(1000, 50_000)),
    ascii_only=st.booleans())
SENDS = st.lists(st.tuples(st.sampled_from(TENANTS), st.sampled_from(PATHS), PAYLOADS,
                           st.booleans()), min_size=1, max_size=5)


def reported(tenant: str, path: str, vigil: Any, fields: dict[str, Any] | None = None,
             depth: int = 0, keep_body: bool = False) -> tuple[str, str, Payload, bool]:
    return (tenant, path, Payload(fields or {"msg": "x"}, vigil, depth, 0, True), keep_body)


# The attacks of issue 13 (break 1 and 2), always tried before the generated ones.
REPORTED = [
    [reported("demo", path, {"tenant": "acme"}) for path in PATHS],
    [reported("demo", path, {"tenant": "x/../../../../PWNED"}) for path in PATHS],
    [reported("acme", "tcp_json", {"tenant": "x/../../alerts/tenant=demo"},
              {"rule": {"name": "FORGED"}})],
    [reported("demo", path, {"tenant": ["a"]}) for path in PATHS],
    [reported("acme", "logs", None, depth=150), reported("acme", "syslog", None, depth=150,
                                                         keep_body=True)],
]


@dataclass
class Sender:
    """Sends payloads and keeps count of what the daemon answered."""

    daemon: VigilProcess
    probes: itertools.count = field(default_factory=itertools.count)
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TENANTS, 0))
    statuses: dict[int, int] = field(default_factory=dict)

    def send(self, tenant: str, path: str, payload: Payload, keep_body: bool) -> None:
        body = payload.render(f"PROBE-{tenant}-{next(self.probes):06d}")
        if path in ("logs", "hec"):
            status = self._post(tenant, path, body)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            # Never a 500: nesting past the bound is refused at the edge (400).
            assert status in {200, 400, 413}, f"{path} answered {status}"
            self.sent[tenant] += status == 200
        elif path == "tcp_json":
            send_lines(self.daemon, f"tcp_json_{tenant}", [body])
            self.sent[tenant] += 1
        else:
            send_lines(self.daemon, f"syslog_{tenant}",
                       [syslog_line(DEEP_APP if keep_body else "app", body)])
            self.sent[tenant] += 1
        assert self.daemon.proc is not None and self.daemon.proc.poll() is None, \
            "the daemon exited:\n" + self.daemon.log()

    def _post(self, tenant: str, path: str, body: bytes) -> int:
        target, scheme = ("/v1/logs", "Bearer") if path == "logs" else \
            ("/services/collector/event", "Splunk")
        if path == "hec":
            body = b'{"event":' + body + b"}"
        # 503 is backpressure: retry, as a sender would.
        return int(wait_for(lambda: (s := post(self.daemon, target, body, tenant, scheme)) != 503
                            and s, timeout=30, interval=0.1, message="not 503"))


def stored_rows(data: Path) -> dict[str, list[tuple[Path, str]]]:
    """Per tenant directory name: (file, row text) for every lake row (the alerts dataset is
    detection's output, not what was sent) and every dead-letter record."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for path in sorted((data / "lake").glob("**/*.parquet")):
        relative = path.relative_to(data / "lake")
        if relative.parts[0] == "alerts":
            continue
        tenant = relative.parts[1].removeprefix("tenant=")
        con = duckdb.connect()
        quoted = str(path).replace("'", "''")
        cursor = con.execute(f"SELECT * FROM read_parquet('{quoted}')")
        columns = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            record = dict(zip(columns, row, strict=True))
            found.setdefault(tenant, []).append((path, repr(record)))
            assert record.get("vigil.tenant", tenant) == tenant, (path, record["vigil.tenant"])
        con.close()
    for path in sorted((data / "dlq").glob("**/*.jsonl")):
        tenant = path.relative_to(data / "dlq").parts[0].removeprefix("tenant=")
        for line in path.read_bytes().splitlines():
            if line.strip():
                found.setdefault(tenant, []).append((path, line.decode("utf-8", "replace")))
    return found


def received(daemon: VigilProcess, tenant: str) -> int:
    return int(daemon.metric("vigil_component_received_events_total", component_kind="source",
                             tenant=tenant))


def reported_examples(test: Any) -> Any:
    for sends in reversed(REPORTED):
        test = example(sends)(test)
    return test


def run_hostile_stream(tmp_path: Path, max_examples: int) -> None:
    # Nested a few levels down, so a path that climbs out of the data dir still lands where
    # the walk below looks.
    base = tmp_path / "a" / "b" / "c" / "d"
    conf = two_tenant_conf(base / "conf.d")
    data = base / "data"
    daemon = VigilProcess(conf, data).start()
    sender = Sender(daemon)
    try:
        # No shrinking: each example costs real sends to one long-lived daemon.
        @settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate])
        @given(SENDS)
        @reported_examples
        def stream(sends: list[tuple[str, str, Payload, bool]]) -> None:
            for tenant, path, payload, keep_body in sends:
                sender.send(tenant, path, payload, keep_body)

        stream()
        expected = {t: received(daemon, t) for t in TENANTS}
        for tenant in TENANTS:  # every event a source counted as received was journaled
            assert expected[tenant] >= sender.sent[tenant], (tenant, expected, sender.sent)

        def stored() -> dict[str, int]:
            return {t: len(rows) for t, rows in stored_rows(data).items()}

        dropped = daemon.metric("vigil_pipeline_step_events_total", result="dropped")
        wait_for(lambda: all(stored().get(t, 0) + dropped >= expected[t] for t in TENANTS),
                 timeout=60, interval=0.5, message=f"every event stored ({expected})")
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
        rows = stored_rows(data)
        assert set(rows) <= set(TENANTS), f"partitions of unknown tenants: {set(rows)}"
        for tenant in TENANTS:
            count = len(rows.get(tenant, []))
            assert expected[tenant] - dropped <= count <= expected[tenant], (tenant, count)
            other = next(t for t in TENANTS if t != tenant)
            for path, text in rows.get(tenant, []):
                assert f"PROBE-{other}-" not in text, f"{other}'s event under {path}"
        assert files_outside(tmp_path, data, conf) == []
        assert not list(tmp_path.parent.glob("PWNED*"))
        assert daemon.stop() == 0
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.signal(signal.SIGKILL)
        daemon.kill()


def test_hostile_json_on_every_ingest_path(tmp_path: Path) -> None:
    run_hostile_stream(tmp_path, max_examples=30)


@pytest.mark.slow
def test_hostile_json_on_every_ingest_path_at_length(tmp_path: Path) -> None:
    run_hostile_stream(tmp_path, max_examples=400)


def test_payload_rendering_is_valid_json_with_the_probe_first() -> None:
    payload = Payload({"a": [1, {"vigil.tenant": "acme"}]}, {"tenant": ["a"]}, 3, 10, True)
    doc = orjson.loads(payload.render("PROBE-demo-000001"))
    assert list(doc)[:2] == ["probe", "vigil"] and doc["vigil"] == {"tenant": ["a"]}
    assert doc["deep"]["vigil"]["tenant"]["vigil"]["tenant"]["vigil"]["tenant"] == "acme"
