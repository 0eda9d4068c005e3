"""A unique prefix of an alert id (at least 6 characters) stands for the alert in every
/alerts/{id} call, within the caller's tenants only; a shared prefix is refused by name."""

from __future__ import annotations

from alerts.kit import make_alert
from api.harness import Api


async def test_unique_prefixes_within_the_callers_tenants(api: Api) -> None:
    acme_id = api.alerts["acme"][0]
    status, alert = await api.call("GET", f"/alerts/{acme_id[:8]}", "ana")
    assert status == 200 and alert["id"] == acme_id
    status, reply = await api.call("POST", f"/alerts/{acme_id[:8]}/acknowledge", "ana")
    assert status == 200 and reply["alert"]["id"] == acme_id
    status, page = await api.call("GET", f"/alerts/{acme_id[:8]}/audit", "ana")
    assert status == 200 and page["items"]

    bravo_id = api.alerts["bravo"][0]  # exists, but not for ana: the same 404 as none
    status, _ = await api.call("GET", f"/alerts/{bravo_id[:8]}", "ana")
    assert status == 404
    status, _ = await api.call("GET", f"/alerts/{acme_id[:5]}", "ana")  # too short
    assert status == 404
    status, _ = await api.call("GET", "/alerts/%25%25%25%25%25%25", "ana")  # LIKE wildcards
    assert status == 404


async def test_a_shared_prefix_is_refused(api: Api) -> None:
    twins = [make_alert("acme", rule_id=f"twin{n}", alert_id=f"abcdef0{n}-0000-4000-8000-"
                        f"00000000000{n}") for n in (1, 2)]
    api.alerting.store.upsert(twins, "acme")
    status, reply = await api.call("GET", "/alerts/abcdef0", "ana")
    assert status == 409 and "more than one alert id starts with 'abcdef0'" in reply["error"]
    status, alert = await api.call("GET", "/alerts/abcdef02", "ana")
    assert status == 200 and alert["id"].startswith("abcdef02-")
