"""Conditions: every test form, combinations, and the validation of malformed ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.conditions import Condition, compile_condition, compile_filter


def holds(spec: dict, event: dict) -> bool:
    """The predicate's answer, checked against the batch filter's on a batch around it."""
    condition = Condition.model_validate(spec)
    answer = compile_condition(condition)(event)
    batch = [{}, event, {"other": 1}, event]
    expected = [i for i, e in enumerate(batch) if compile_condition(condition)(e)]
    assert compile_filter(condition)(batch, [0, 1, 2, 3]) == expected
    assert (1 in expected) is answer
    return answer


EVENT = {"log.syslog.appname": "sshd", "source.ip": "10.1.2.3", "source.port": 22,
         "message": "Failed password for root", "user.name": "Root"}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"field": "log.syslog.appname", "equals": "sshd"}, True),
    ({"field": "log.syslog.appname", "equals": "SSHD"}, False),
    ({"field": "log.syslog.appname", "equals": "SSHD", "ignore_case": True}, True),
    ({"field": "source.port", "equals": 22}, True),
    ({"field": "source.port", "equals": "22"}, True),
    ({"field": "source.port", "in": [22, 2222]}, True),
    ({"field": "log.syslog.appname", "in": ["sudo", "cron"]}, False),
    ({"field": "user.name", "exists": True}, True),
    ({"field": "user.email", "exists": True}, False),
    ({"field": "user.email", "exists": False}, True),
    ({"field": "message", "regex": r"^Failed \w+"}, True),
    ({"field": "message", "regex": r"^failed", "ignore_case": True}, True),
    ({"field": "source.ip", "cidr": ["10.0.0.0/8"]}, True),
    ({"field": "source.ip", "cidr": ["192.168.0.0/16", "2001:db8::/32"]}, False),
    ({"field": "message", "cidr": ["10.0.0.0/8"]}, False),
    ({"field": "message", "startswith": "Failed"}, True),
    ({"field": "message", "endswith": "ROOT", "ignore_case": True}, True),
    ({"field": "message", "contains": "password"}, True),
    ({"field": "absent", "contains": "x"}, False),
    ({"all": [{"field": "source.port", "equals": 22},
              {"not": {"field": "user.name", "equals": "admin"}}]}, True),
    ({"any": [{"field": "source.port", "equals": 23}, {"field": "message", "contains": "x"}]},
     False),
])
def test_condition_forms(spec: dict, expected: bool) -> None:
    assert holds(spec, EVENT) is expected


@pytest.mark.parametrize(("spec", "message"), [
    ({"field": "a", "equals": 1, "in": [1]}, "a field test needs exactly one of"),
    ({"field": "a"}, "a field test needs exactly one of"),
    ({"equals": 1}, "a condition needs `field`"),
    ({"all": [], "field": "a", "exists": True}, "either one of all/any/not"),
    ({"field": "a", "regex": "("}, "invalid regex"),
    ({"field": "a", "cidr": ["10.0.0.0/33"]}, "invalid network '10.0.0.0/33'"),
    ({"field": "a", "equal": 1}, "Extra inputs are not permitted"),
])
def test_malformed_conditions_are_rejected(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        Condition.model_validate(spec)
