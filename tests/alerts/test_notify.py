"""Notifications through real servers: mail to aiosmtpd over STARTTLS with AUTH, signed
webhooks to a local aiohttp receiver with retries, backoff and the dead letter; tier routing.
Backoff waits go through an injected sleep that records them instead of sleeping."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from alerts.kit import (
    TENANTS_YAML,
    UNUSED_MAIL_YAML,
    Clock,
    body_text,
    email_notifier_yaml,
    load,
    make_alert,
    smtp_server,
    webhook_receiver,
)

from core.telemetry import Telemetry
from soc.alerts.model import Actor
from soc.alerts.service import Alerting
from soc.notify.dispatcher import backoff_delays
from soc.notify.webhook import SIGNATURE_HEADER, verify

SECRET = "hook-secret-5f1e"
ANALYST = Actor("ana", frozenset({"acme", "bravo"}))


class RecordedSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _alerting(tmp_path: Path, *texts: str, sleep: RecordedSleep | None = None) -> Alerting:
    config = load(tmp_path / "conf.d", TENANTS_YAML, *texts)
    return Alerting(config, tmp_path / "data", tmp_path / "conf.d", Telemetry(), clock=Clock(),
                    sleep=sleep or RecordedSleep())


def _deliver(alerting: Alerting) -> None:
    async def run() -> None:
        while await alerting.dispatcher.pump():
            await alerting.dispatcher.drain(20)
    asyncio.run(run())


def _hook(name: str, url: str, audience: str, retries: int = 3) -> str:
    return f"""
    notifiers:
      {name}:
        type: webhook
        url: {url}
        secret: {SECRET}
        audience: {audience}
        retries: {retries}
        backoff: 2s
    """


def test_tier_routing(tmp_path: Path) -> None:
    alerting = _alerting(tmp_path, UNUSED_MAIL_YAML.replace(
        "sender: vigil@provider.example",
        "sender: vigil@provider.example\n    soc_recipients: [soc@provider.example]"))
    router = alerting.router
    acme = make_alert("acme", severity="high")
    bravo = make_alert("bravo", severity="high")
    alerting.store.upsert([acme], "acme")
    alerting.store.upsert([bravo], "bravo")
    acme_out = alerting.store.get(acme["alert.id"], ANALYST)
    bravo_out = alerting.store.get(bravo["alert.id"], ANALYST)
    # managed_soc: the SOC gets new detections; the client does not.
    assert router.route("new_alert", acme_out, {}).emails == ["soc@provider.example"]
    # siem_only: the client's own team gets them.
    assert router.route("new_alert", bravo_out, {}).emails == ["team@bravo.example"]
    # managed_soc: an escalation asking the client goes to the client, with its contacts.
    ask = {"level": "L2", "reason": "r",
           "client_request": {"kind": "decision", "question": "Isolate host web-1?"}}
    route = router.route("escalation", acme_out, ask)
    assert (route.audience, route.emails) == ("client", ["ciso@acme.example",
                                                         "secops@acme.example"])
    # ... an internal escalation (L1 -> L2) stays with the SOC.
    assert router.route("escalation", acme_out, {"level": "L2"}).audience == "soc"
    assert router.route("sla_breach", acme_out, {"kind": "ack"}).audience == "soc"
    assert router.route("sla_breach", bravo_out, {"kind": "ack"}).audience == "client"
    subject, text, html = router.plan("escalation", acme_out, ask)[0].payload["subject"], \
        router.plan("escalation", acme_out, ask)[0].payload["text"], \
        router.plan("escalation", acme_out, ask)[0].payload["html"]
    assert subject == ("[Vigil] [HIGH] Decision requested: Rule ssh_brute_force (ACME Corp)")
    assert "Isolate host web-1?" in text and "Isolate host web-1?" in html


def test_mail_reaches_smtp_over_starttls_with_auth(tmp_path: Path) -> None:
    with smtp_server(tmp_path / "tls") as smtp:
        alerting = _alerting(tmp_path, email_notifier_yaml(smtp))
        alerting.store.upsert([make_alert("bravo", severity="high")], "bravo")
        _deliver(alerting)
        message = smtp.wait(1)[0]
        assert smtp.logins == ["vigil"]
        assert smtp.envelopes == [("vigil@provider.example", ["team@bravo.example"])]
        assert message["Subject"] == "[Vigil] [HIGH] New high alert: Rule ssh_brute_force " \
            "(Bravo Ltd)"
        assert "Resolve by" in body_text(message)
        html = message.get_body(preferencelist=("html",))
        assert html is not None and "<table>" in html.get_content()
        assert alerting.telemetry.sample("vigil_notify_messages_total", channel="mail",
                                         channel_type="email", result="sent") == 1
        rows = alerting.store.notifications("bravo")
        assert [(r["event"], r["state"], r["attempts"]) for r in rows] == \
            [("new_alert", "sent", 1)]


def test_webhook_retries_after_two_500s_and_the_signature_verifies(tmp_path: Path) -> None:
    sleep = RecordedSleep()
    with webhook_receiver([500, 500]) as receiver:
        alerting = _alerting(tmp_path, UNUSED_MAIL_YAML, _hook("soc_hook", receiver.url, "soc"),
                             sleep=sleep)
        alerting.store.upsert([make_alert("acme")], "acme")
        _deliver(alerting)
        assert len(receiver.requests) == 3  # two failures, then the third try gets through
        assert sleep.waits == [2.0, 4.0]  # exponential backoff
        headers, body = receiver.requests[-1]
        assert verify(SECRET, body, headers[SIGNATURE_HEADER])
        assert not verify("wrong-secret", body, headers[SIGNATURE_HEADER])
        assert headers[SIGNATURE_HEADER].startswith("sha256=")
        payload = orjson.loads(body)
        assert (payload["event"], payload["tenant"], payload["audience"]) == \
            ("new_alert", "acme", "soc")
        t = alerting.telemetry
        labels = {"channel": "soc_hook", "channel_type": "webhook"}
        assert t.sample("vigil_notify_messages_total", **labels, result="retried") == 2
        assert t.sample("vigil_notify_messages_total", **labels, result="sent") == 1
        assert alerting.store.notifications()[0]["attempts"] == 3


def test_webhook_dead_letter_after_the_last_retry(tmp_path: Path) -> None:
    sleep = RecordedSleep()
    with webhook_receiver([503] * 10) as receiver:
        alerting = _alerting(tmp_path, UNUSED_MAIL_YAML,
                             _hook("soc_hook", receiver.url, "soc", retries=2), sleep=sleep)
        alert = make_alert("acme")
        alerting.store.upsert([alert], "acme")
        _deliver(alerting)
        assert len(receiver.requests) == 3 and sleep.waits == [2.0, 4.0]
        files = list((tmp_path / "data" / "notify-dlq").glob("tenant=acme/*.jsonl"))
        assert len(files) == 1
        record = orjson.loads(files[0].read_bytes().splitlines()[0])
        assert (record["channel"], record["attempts"], record["alert_id"]) == \
            ("soc_hook", 3, alert["alert.id"])
        assert "HTTP 503" in record["error"]
        assert SECRET not in files[0].read_text()
        assert alerting.telemetry.sample("vigil_notify_messages_total", channel="soc_hook",
                                         channel_type="webhook", result="dead_lettered") == 1
        assert alerting.store.notifications()[0]["state"] == "dead"


def test_a_client_error_is_not_retried(tmp_path: Path) -> None:
    sleep = RecordedSleep()
    with webhook_receiver([400]) as receiver:
        alerting = _alerting(tmp_path, UNUSED_MAIL_YAML, _hook("soc_hook", receiver.url, "soc"),
                             sleep=sleep)
        alerting.store.upsert([make_alert("acme")], "acme")
        _deliver(alerting)
        assert len(receiver.requests) == 1 and sleep.waits == []
        assert alerting.store.notifications()[0]["state"] == "dead"


def test_client_webhook_gets_escalation_with_the_question(tmp_path: Path) -> None:
    with webhook_receiver() as receiver:
        text = TENANTS_YAML.replace("        high: [secops@acme.example]\n",
                                    "        high: [secops@acme.example]\n"
                                    "      webhooks: [acme_ticketing]\n")
        config = load(tmp_path / "conf.d", text, UNUSED_MAIL_YAML,
                      _hook("acme_ticketing", receiver.url, "client"))
        alerting = Alerting(config, tmp_path / "data", tmp_path / "conf.d", Telemetry(),
                            clock=Clock(), sleep=RecordedSleep())
        alert = make_alert("acme")
        alerting.store.upsert([alert], "acme")
        _deliver(alerting)
        assert receiver.requests == []  # managed_soc: the client hears nothing of detections
        alerting.store.escalate(alert["alert.id"], ANALYST, "L2", "needs the owner",
                                {"kind": "validation", "question": "Was this you, Ann?"})
        _deliver(alerting)
        body = orjson.loads(receiver.requests[0][1])
        assert body["event"] == "escalation" and body["audience"] == "client"
        assert body["escalation"]["client_request"]["question"] == "Was this you, Ann?"


def test_backoff_is_capped() -> None:
    assert backoff_delays(5, 2.0, 10.0) == [2.0, 4.0, 8.0, 10.0, 10.0]
