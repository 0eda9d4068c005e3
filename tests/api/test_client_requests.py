"""/api/v1 as the console's contract: escalation to the client with a question that a client
user answers once (audited, notified to the SOC), the queue's SLA-state, tactic and
awaiting-client filters, its SLA-deadline order and per-state counts, and 404s for alerts
outside the caller's tenants audited under the platform."""

from __future__ import annotations

from api.harness import Api

from soc.alerts.model import PLATFORM, Actor
from soc.notify.config import EmailNotifierConfig
from soc.notify.router import NotificationRouter

EVERYONE = Actor("test", None)


async def _ask(api: Api, alert_id: str, who: str = "ana") -> int:
    status, body = await api.call("POST", f"/alerts/{alert_id}/escalate", who, json={
        "level": "L2", "reason": "needs the client",
        "client_request": {"kind": "validation", "question": "Was this login yours?"}})
    assert status == 200, body
    status, alert = await api.call("GET", f"/alerts/{alert_id}", who)
    assert status == 200
    [asked] = alert["client_requests"]
    assert (asked["kind"], asked["question"], asked["asked_by"], asked["answer"]) == \
        ("validation", "Was this login yours?", who, None)
    return int(asked["id"])


async def test_the_client_answers_once_and_the_soc_is_told(api: Api) -> None:
    alert_id = api.alerts["acme"][0]
    request_id = await _ask(api, alert_id)
    path = f"/alerts/{alert_id}/client-requests/{request_id}/answer"
    status, counts = await api.call("GET", "/alerts/counts?tenant=acme", "ana")
    assert status == 200 and counts["awaiting_client"] == 1
    status, waiting = await api.call("GET", "/alerts?awaiting_client=true", "ana")
    assert [a["id"] for a in waiting["items"]] == [alert_id]
    # A read-only client user may answer (the managed-SOC client); the analyst may not.
    assert (await api.call("POST", path, "ana", json={"answer": "x"}))[0] == 403
    status, body = await api.call("POST", path, "viewer", json={"answer": "Yes, it was me."})
    assert status == 200, body
    [answered] = body["alert"]["client_requests"]
    assert (answered["answer"], answered["answered_by"]) == ("Yes, it was me.", "viewer")
    assert (await api.call("POST", path, "viewer", json={"answer": "no"}))[0] == 409
    assert (await api.call("POST", f"/alerts/{alert_id}/client-requests/999/answer",
                           "viewer", json={"answer": "no"}))[0] == 404
    assert (await api.call("POST", f"/alerts/{alert_id}/client-requests/x/answer",
                           "viewer", json={"answer": "no"}))[0] == 404
    status, trail = await api.call("GET", f"/alerts/{alert_id}/audit", "ana")
    assert [(r["action"], r["actor"]) for r in trail["items"]][-2:] == [
        ("escalate", "ana"), ("client_answer", "viewer")]
    # The SOC hears of it (the harness's mail notifier names no SOC recipients: one that does).
    mail = EmailNotifierConfig(type="email", host="127.0.0.1", port=9,
                               sender="vigil@provider.example",
                               soc_recipients=["soc@provider.example"])
    router = NotificationRouter(api.alerting.tenants, {"mail": mail}, "https://vigil.example")
    extra = {"by": "viewer", "request_id": request_id, "answer": "Yes, it was me.",
             "client_request": {"kind": "validation", "question": "Was this login yours?"}}
    [out] = router.plan("client_answer", api.alerting.store.get(alert_id, EVERYONE), extra)
    assert out.payload["to"] == ["soc@provider.example"]
    assert "Client answered (validation): Rule ssh_brute_force" in out.payload["subject"]
    assert "Yes, it was me." in out.payload["text"]
    assert (await api.call("GET", "/alerts/counts?tenant=acme", "ana"))[1][
        "awaiting_client"] == 0


async def test_another_tenants_client_cannot_answer(api: Api) -> None:
    alert_id = api.alerts["acme"][1]
    request_id = await _ask(api, alert_id)
    bravo = api.alerts["bravo"][0]
    status, _ = await api.call("POST", f"/alerts/{bravo}/client-requests/{request_id}/answer",
                               "viewer", json={"answer": "x"})
    assert status == 404  # the question exists, but not on that alert
    records, _ = api.alerting.store.audit(EVERYONE, tenant=PLATFORM)
    denied = [r for r in records if r["action"] == "alert_not_found"]
    assert [(r["actor"], r["after"]["alert_id"]) for r in denied] == [("viewer", bravo)]


async def test_a_bad_question_kind_is_refused(api: Api) -> None:
    status, body = await api.call("POST", f"/alerts/{api.alerts['acme'][0]}/escalate", "ana",
                                  json={"level": "L2", "reason": "r", "client_request": {
                                      "kind": "gossip", "question": "?"}})
    assert status == 400


async def test_queue_filters_order_and_counts(api: Api) -> None:
    # acme: critical ack 15 min, high ack 60 min; the harness's alerts were made at its clock.
    status, page = await api.call("GET", "/alerts?tenant=acme&order=sla", "ana")
    assert status == 200
    dues = [a["sla"]["ack_due"] for a in page["items"]]
    assert dues == sorted(dues) and page["items"][0]["severity"] == "critical"
    status, soon = await api.call("GET", "/alerts?tenant=acme&sla_state=due_soon", "ana")
    assert status == 200 and {a["severity"] for a in soon["items"]} == {"critical", "high"}
    api.clock.advance(minutes=20)  # past the critical alert's 15 min
    status, late = await api.call("GET", "/alerts?tenant=acme&sla_state=breached", "ana")
    assert [a["severity"] for a in late["items"]] == ["critical"]
    counts = (await api.call("GET", "/alerts/counts?tenant=acme", "ana"))[1]
    assert (counts["new"], counts["breached"]) == (3, 1)
    assert (await api.call("GET", "/alerts?tactic=credential-access&tenant=acme",
                           "ana"))[1]["total"] == 3
    assert (await api.call("GET", "/alerts?tactic=impact&tenant=acme", "ana"))[1]["total"] == 0
    # Counts never cross tenants: a tenant outside the scope is a 404, no tenant is the scope.
    assert (await api.call("GET", "/alerts/counts?tenant=bravo", "ana"))[0] == 404
    mine = (await api.call("GET", "/alerts/counts", "ana"))[1]
    assert sum(mine[s] for s in ("new", "acknowledged", "escalated", "resolved")) == 3


async def test_a_404_for_another_tenants_alert_is_audited(api: Api) -> None:
    theirs = api.alerts["bravo"][0]
    assert (await api.call("GET", f"/alerts/{theirs}", "ana"))[0] == 404
    assert (await api.call("POST", f"/alerts/{theirs}/acknowledge", "ana"))[0] == 404
    records, _ = api.alerting.store.audit(EVERYONE, tenant=PLATFORM)
    denied = [(r["actor"], r["after"]["alert_id"], r["after"]["method"]) for r in records
              if r["action"] == "alert_not_found"]
    assert denied == [("ana", theirs, "GET"), ("ana", theirs, "POST")]
    # The audit row is the platform's: the client cannot read it back.
    status, page = await api.call("GET", "/audit?limit=1000", "ana")
    assert all(r["action"] != "alert_not_found" for r in page["items"])
