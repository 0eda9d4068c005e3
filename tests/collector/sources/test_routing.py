"""Tenant routing: fixed, by sender CIDR, by a parsed field, by HTTP token; quarantine for what
no route claims; and `vigil validate` naming bad routes at file:line:col."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.config import load_config
from collector.queue import MemoryQueue
from collector.routing import QUARANTINE, Route, TenantRouter
from collector.sources.base import SourceContext
from core.errors import ConfigErrors
from core.telemetry import Telemetry

TENANTS = {"demo", "acme", "globex"}


def router(*routes: Route, fixed: str | None = None) -> TenantRouter:
    return TenantRouter(fixed, TENANTS, routes)


def test_fixed_tenant_for_every_event() -> None:
    assert router(fixed="demo").route({}, "203.0.113.9") == "demo"
    assert router(fixed="nobody").route({}, None) == QUARANTINE  # undeclared: never guessed


def test_cidr_routes_first_match_wins_and_unknown_senders_are_quarantined() -> None:
    r = router(Route.build("acme", ["10.20.0.0/16", "192.0.2.7"]),
               Route.build("globex", ["10.0.0.0/8", "2001:db8::/32"]))
    assert r.route({}, "10.20.3.4") == "acme"
    assert r.route({}, "10.99.0.1") == "globex"
    assert r.route({}, "192.0.2.7") == "acme"
    assert r.route({}, "::ffff:10.20.0.1") == "acme"  # IPv4-mapped from a dual-stack socket
    assert r.route({}, "2001:db8::1") == "globex"
    assert r.route({}, "198.51.100.1") == QUARANTINE
    assert r.route({}, None) == QUARANTINE
    assert r.route({}, "not-an-ip") == QUARANTINE


def test_field_routes_use_globs_case_insensitively_and_combine_with_cidrs() -> None:
    r = router(Route.build("acme", field="host.hostname", patterns=["*.acme.example", "fw-?"]),
               Route.build("globex", ["10.0.0.0/8"], field="host.hostname", patterns=["gx-*"]))
    assert r.route({"host.hostname": "Web1.ACME.example"}, None) == "acme"
    assert r.route({"host.hostname": "fw-1"}, "1.1.1.1") == "acme"
    assert r.route({"host.hostname": "fw-12"}, "1.1.1.1") == QUARANTINE
    assert r.route({"host.hostname": "gx-db"}, "10.1.1.1") == "globex"
    assert r.route({"host.hostname": "gx-db"}, "11.1.1.1") == QUARANTINE  # both must hold
    assert r.route({"host": {"hostname": "a.acme.example"}}, None) == "acme"  # nested JSON
    assert r.route({}, "10.1.1.1") == QUARANTINE


def test_emit_stamps_one_tenant_per_event_and_counts_quarantine() -> None:
    telemetry = Telemetry()
    queue = MemoryQueue(1000)
    config = load_config_text("""
    tenants: {acme: {name: A}, demo: {name: D}}
    sources:
      s:
        type: syslog_udp
        address: 127.0.0.1:0
        routes: [{tenant: acme, source_cidrs: [10.0.0.0/8]}]
    """)
    source_config = config.sources["s"]
    context = SourceContext("s", source_config, queue,
                            telemetry.component("s", "source", "syslog_udp"),
                            TenantRouter.from_config(source_config, set(config.tenants)),
                            lambda: datetime(2024, 1, 1, tzinfo=UTC))
    offsets = context.emit([{"message": "a"}, {"message": "b", "vigil.tenant": "demo"}],
                           "10.1.2.3")
    assert offsets == {"acme": 1}
    context.emit([{"message": "c"}], "192.0.2.1")
    context.emit([{"message": "d"}], "192.0.2.1", tenant="demo")  # an HTTP token's tenant
    assert queue._queued["acme"][1]["vigil.tenant"] == "acme"  # a sender cannot pick its tenant
    assert [e["message"] for e in queue._queued[QUARANTINE]] == ["c"]
    assert [e["message"] for e in queue._queued["demo"]] == ["d"]
    assert telemetry.sample("vigil_component_quarantined_events_total", component_id="s",
                            component_kind="source", component_type="syslog_udp") == 1


def load_config_text(text: str, tmp: Path | None = None) -> object:
    import tempfile

    directory = Path(tmp or tempfile.mkdtemp())
    (directory / "10-test.yaml").write_text(textwrap.dedent(text).lstrip())
    return load_config(directory)


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_config_text(text, tmp_path)
    return [str(e).replace(str(tmp_path) + "/", "") for e in info.value.errors]


def test_validate_names_bad_routes_with_positions(tmp_path: Path) -> None:
    assert errors_of(tmp_path, """
    tenants:
      demo: {name: Demo}
      acme: {name: ACME}
    sources:
      shared:
        type: syslog_udp
        address: 127.0.0.1:5514
        routes:
          - tenant: acme
            source_cidrs: [10.20.0.0/16, 10.1.2.3/8, 300.1.1.1/24]
          - tenant: demo
            field: host.hostname
          - tenant: demo
      both:
        type: syslog_tcp
        address: 127.0.0.1:5515
        tenant: demo
        routes: [{tenant: acme, source_cidrs: [10.0.0.0/8]}]
    """) == [
        "10-test.yaml:10:38: sources.shared.routes[0].source_cidrs[1]: '10.1.2.3/8' has host "
        "bits set (did you mean '10.0.0.0/8'?)",
        "10-test.yaml:10:50: sources.shared.routes[0].source_cidrs[2]: '300.1.1.1/24' is not "
        "an IP network (e.g. 10.0.0.0/8, 2001:db8::/32 or a single address)",
        "10-test.yaml:11:9: sources.shared.routes[1]: `field` and `patterns` go together",
        "10-test.yaml:13:9: sources.shared.routes[2]: a route needs `source_cidrs`, or `field` "
        "with `patterns`",
        "10-test.yaml:18:13: sources.both.routes: give either `tenant` (one tenant for every "
        "event) or `routes`, not both",
    ]


def test_validate_names_unknown_tenants_in_routes_and_tokens(tmp_path: Path) -> None:
    assert errors_of(tmp_path, """
    tenants:
      acme: {name: ACME}
    sources:
      shared:
        type: syslog_udp
        address: 127.0.0.1:5514
        routes:
          - tenant: acme
            source_cidrs: [10.20.0.0/16]
          - tenant: acmee
            source_cidrs: [192.0.2.0/24]
      http:
        type: http
        address: 127.0.0.1:8088
        tokens:
          b:
            tenant: acne
            sha256: 7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c
    """) == [
        "10-test.yaml:10:17: sources.shared.routes[1].tenant: unknown tenant 'acmee' "
        "(did you mean 'acme'?)",
        "10-test.yaml:17:17: sources.http.tokens.b.tenant: unknown tenant 'acne' "
        "(did you mean 'acme'?)",
    ]


def test_validate_names_bad_http_tokens(tmp_path: Path) -> None:
    assert errors_of(tmp_path, """
    tenants:
      demo: {name: Demo}
    sources:
      http:
        type: http
        address: 127.0.0.1:8088
        tokens:
          a: {tenant: demo, sha256: nothex}
          c: {tenant: demo}
    """) == [
        "10-test.yaml:8:33: sources.http.tokens.a.sha256: expected the 64 hex digits of "
        "sha256(token), e.g. from `printf %s \"$TOKEN\" | sha256sum`",
        "10-test.yaml:9:10: sources.http.tokens.c: give exactly one of `sha256` and "
        "`token_file`",
    ]


def test_validate_names_bad_tls(tmp_path: Path) -> None:
    assert errors_of(tmp_path, """
    tenants: {demo: {name: Demo}}
    sources:
      tls:
        type: syslog_tcp
        address: 127.0.0.1:6514
        tenant: demo
        tls: {cert_file: a.crt, client_auth: required}
    """) == ["10-test.yaml:7:10: sources.tls.tls: give `cert_file` and `key_file` (or "
             "`self_signed: true` for a trial)"]


def test_validate_checks_tls_and_token_files(tmp_path: Path) -> None:
    from collector.sources.tls import self_signed_pair

    cert, _ = self_signed_pair(tmp_path / "a", "a")
    _, other_key = self_signed_pair(tmp_path / "b", "b")
    (tmp_path / "junk.pem").write_text("not a certificate")
    conf = tmp_path / "conf.d"
    conf.mkdir()
    assert errors_of(conf, f"""
    tenants: {{demo: {{name: Demo}}}}
    sources:
      missing:
        type: syslog_tcp
        address: 127.0.0.1:6514
        tenant: demo
        tls: {{cert_file: tls/absent.crt, key_file: {other_key}}}
      mismatched:
        type: syslog_tcp
        address: 127.0.0.1:6515
        tenant: demo
        tls:
          cert_file: {cert}
          key_file: {other_key}
          ca_file: {tmp_path}/junk.pem
          client_auth: optional
      http:
        type: http
        address: 127.0.0.1:8088
        tokens:
          a: {{tenant: demo, token_file: tokens/a.token}}
    """) == [
        "10-test.yaml:7:22: sources.missing.tls.cert_file: no such file: tls/absent.crt",
        "10-test.yaml:13:18: sources.mismatched.tls.cert_file: cannot load the certificate "
        "with key_file: KEY_VALUES_MISMATCH",
        "10-test.yaml:15:16: sources.mismatched.tls.ca_file: cannot load the CA bundle: "
        "NO_CERTIFICATE_OR_CRL_FOUND",
        "10-test.yaml:21:37: sources.http.tokens.a.token_file: cannot read token file "
        "tokens/a.token: No such file or directory",
    ]
