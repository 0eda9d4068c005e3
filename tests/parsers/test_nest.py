"""The nest step: a JSON record's keys under a vendor prefix, flattened; one field's object
nested; renames and capitalisation; nulls dropped; bad input is a step failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.step import StepContext, StepFailure
from parsers.nest import NestConfig, NestStep


def nest(**config: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    step = NestStep(NestConfig.model_validate({"type": "nest", **config}), StepContext(None))  # type: ignore[arg-type]
    return step.apply


def test_whole_record_under_a_prefix() -> None:
    event = {"@timestamp": "t", "message": "m", "vigil.tenant": "demo", "eventName": "X",
             "userIdentity": {"type": "IAMUser", "sessionContext": {"attributes": {"a": "1"}}},
             "resources": [{"arn": "a"}], "requestParameters": None}
    out = nest(target="aws.cloudtrail")(event)
    assert out == {"@timestamp": "t", "message": "m", "vigil.tenant": "demo",
                   "aws.cloudtrail.eventName": "X",
                   "aws.cloudtrail.userIdentity.type": "IAMUser",
                   "aws.cloudtrail.userIdentity.sessionContext.attributes.a": "1",
                   "aws.cloudtrail.resources": [{"arn": "a"}]}


def test_flatten_in_place_without_target() -> None:
    out = nest()({"svc": {"name": "b", "ver": 3}, "level": "warn", "empty": {}})
    assert out == {"svc.name": "b", "svc.ver": 3, "level": "warn"}


def test_one_field_with_rename_and_capitalize() -> None:
    event = {"properties": {"userPrincipalName": "a@b", "location": {"city": "X"},
                            "status": {"errorCode": 0}}, "category": "SignInLogs"}
    out = nest(field="properties", target="az", capitalize=True,
               rename={"location": "LocationDetails"})(event)
    assert out == {"category": "SignInLogs", "az.UserPrincipalName": "a@b",
                   "az.LocationDetails.city": "X", "az.Status.errorCode": 0}


def test_field_may_hold_json_text_and_keep_json_keeps_the_whole_value() -> None:
    out = nest(field="payload", target="p", keep_json=["req"])(
        {"payload": '{"req": {"a": [1, 2]}, "b": true}'})
    assert out == {"p.req": '{"a":[1,2]}', "p.req.a": [1, 2], "p.b": True}


def test_overwrite_false_keeps_what_is_there_and_prefixes_can_be_excluded() -> None:
    event = {"gcp.audit.methodName": "m", "x.keep": 1, "severity": "NOTICE", "methodName": "no"}
    out = nest(target="gcp.audit", exclude_prefixes=["x."], overwrite=False)(event)
    assert out == {"gcp.audit.methodName": "m", "x.keep": 1, "gcp.audit.severity": "NOTICE"}


@pytest.mark.parametrize(("value", "reason"), [
    (None, "field 'p' is missing"),
    ("{broken", "p is not JSON"),
    ("[1, 2]", "p holds list, not an object"),
    (7, "p holds int, not an object"),
])
def test_bad_field_values_fail_the_step(value: Any, reason: str) -> None:
    event = {} if value is None else {"p": value}
    with pytest.raises(StepFailure, match=reason):
        nest(field="p")(event)


def test_missing_field_passes_when_told() -> None:
    assert nest(field="p", ignore_missing=True)({"a": 1}) == {"a": 1}
