"""The ECS vocabulary steps: decision (allowed/denied), split_user and split_url."""

from __future__ import annotations

from functools import partial

import pytest
from support.steps import build_step

from parsers.ecs import split_user, url_parts

decision = partial(build_step, "decision")
split_user_step = partial(build_step, "split_user")
split_url = partial(build_step, "split_url")


@pytest.mark.parametrize(("action", "expected"), [
    ("deny", "denied"), ("DROP", "denied"), ("reset-both", "denied"), ("block-url", "denied"),
    ("accept", "allowed"), ("Permit", "allowed"), ("passthrough", "allowed")])
def test_decision_follows_ecs_for_the_shared_vocabulary(action: str, expected: str) -> None:
    event = decision().apply({"event.action": action})
    # ECS: a firewall that blocked as configured: type [connection, denied], outcome success.
    assert event == {"event.action": action, "event.type": ["connection", expected],
                     "event.outcome": "success"}


def test_decision_keeps_types_already_there_and_adds_vendor_words() -> None:
    step = decision(field="squid.status", denied=["TCP_DENIED"], types=["access"])
    event = step.apply({"squid.status": "tcp_denied", "event.type": ["info"]})
    assert event["event.type"] == ["info", "access", "denied"]
    again = step.apply(event)  # idempotent: one decision, one copy of each type
    assert again["event.type"] == ["info", "access", "denied"]


def test_decision_leaves_an_unknown_action_alone() -> None:
    event = {"event.action": "close", "event.outcome": "unknown"}
    assert decision().apply(dict(event)) == event
    assert decision().apply({}) == {}


@pytest.mark.parametrize(("value", "parts"), [
    ("alice@contoso.com", ("alice", "contoso.com", True)),
    ("first.last@sub.example.org", ("first.last", "sub.example.org", True)),
    ("CONTOSO\\alice", ("alice", "CONTOSO", False)),
    ("alice", None), ("alice@localhost", None), ("@contoso.com", None), ("CONTOSO\\", None),
    ("a\\b\\c", None), ("John Smith", None)])
def test_split_user_forms(value: str, parts: tuple[str, str, bool] | None) -> None:
    assert split_user(value) == parts


def test_split_user_keeps_the_upn_in_user_email() -> None:
    event = split_user_step().apply({"user.name": "alice@contoso.com"})
    assert event == {"user.name": "alice", "user.domain": "contoso.com",
                     "user.email": "alice@contoso.com"}


def test_split_user_down_level_form_and_values_already_there() -> None:
    step = split_user_step(field="winlog.user", down_level_to="user.id")
    event = step.apply({"winlog.user": "CONTOSO\\alice", "user.domain": "contoso.local"})
    assert event == {"winlog.user": "CONTOSO\\alice", "user.name": "alice",
                     "user.domain": "contoso.local", "user.id": "CONTOSO\\alice"}
    plain = {"user.name": "root"}
    assert split_user_step().apply(dict(plain)) == plain


@pytest.mark.parametrize(("value", "parts"), [
    ("https://example.com:8443/a/b?c=1#top",
     {"scheme": "https", "domain": "example.com", "port": 8443, "path": "/a/b", "query": "c=1",
      "fragment": "top"}),
    ("/api/v1/authn?", {"path": "/api/v1/authn"}),
    ("/api/v1/users?limit=2", {"path": "/api/v1/users", "query": "limit=2"}),
    ("www.example.com:443", {"domain": "www.example.com", "port": 443}),
    ("http://[2001:db8::1]/x", {"scheme": "http", "domain": "2001:db8::1", "path": "/x"}),
    ("http://example.com:99999/", {})])
def test_url_parts(value: str, parts: dict) -> None:
    assert url_parts(value) == ({"original": value, **parts} if parts else {})


def test_split_url_writes_under_its_target() -> None:
    event = split_url(field="u", target="url").apply({"u": "http://a.example/p?q"})
    assert event == {"u": "http://a.example/p?q", "url.original": "http://a.example/p?q",
                     "url.scheme": "http", "url.domain": "a.example", "url.path": "/p",
                     "url.query": "q"}
