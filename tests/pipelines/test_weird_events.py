"""Weird input through the whole shipped conf.d never escapes: every line a source decodes
comes out as an event or lands in the dead letter with the pipeline, the step and a reason,
and nothing raises. Inputs are generated (hypothesis) around what the pipelines match on, so
the steps behind the matches see malformed versions of what they expect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.daemon import REPO

from collector.config import load_config
from collector.offline import OfflineRun, split_dead_letters
from core.events import DATASET

CONF = REPO / "conf.d"

# Keys and values the JSON pipelines route on, so generated objects reach their steps.
ROUTING_KEYS = ["eventVersion", "eventSource", "eventName", "eventTime", "userIdentity",
                "Event", "System", "EventData", "winlog", "winlog.event_id", "EventID", "Channel",
                "EventTime", "protoPayload", "logName", "category", "Category", "properties",
                "actor", "published", "eventType", "operationName", "resourceId", "time", "ts",
                "timestamp", "@timestamp", "message", "vigil.tenant", "requestParameters"]
ROUTING_VALUES = ["SignInLogs", "Administrative", "projects/p/logs/cloudaudit.googleapis.com",
                  "2024-05-14T09:12:00Z", "not a time", "", "0", 4624, -1, 1e308, True, None]

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                        st.sampled_from(ROUTING_VALUES))
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(ROUTING_KEYS), st.text(max_size=12)), inner,
                        max_size=5)),
    max_leaves=20)
json_object = st.dictionaries(st.one_of(st.sampled_from(ROUTING_KEYS), st.text(max_size=12)),
                              json_value, max_size=8)

# Syslog lines: headers the text pipelines route on, followed by generated bodies built from
# the fragments those pipelines' patterns expect.
HEADERS = ["<38>Dec 10 06:55:46 LabSZ sshd[24200]: ", "<85>Feb 23 00:08:48 h sudo: ",
           "<86>Jan 24 04:37:40 h su[1]: ", "<86>Feb 22 11:47:05 h useradd[2]: ",
           "<30>Jan 23 16:30:47 h systemd-logind[3]: ", "<190>May 14 09:12:00 w nginx: ",
           "<134>May 14 09:12:00 w apache2: ", "<131>May 14 09:12:00 w httpd[9]: ",
           "<166>May  5 17:51:17 fw: %ASA-6-302013: ", "<189>", "<14>Nov 30 16:09:08 PA-220 ",
           "<14>Dec 13 17:45:02 h nxWinEvt: ", "", "[Sun Dec 04 04:47:44 2005] "]
FRAGMENTS = ["date=2024-05-14 ", "time=09:12:00 ", 'devid="FG1" ', "eventtime=1587230269 ",
             "srcip=1.2.3.4 ", "proto=6 ", 'action="deny" ', "1,2024/04/09 16:57:36,0,TRAFFIC,",
             "1,2024/04/09 16:57:36,0,THREAT,", ",", '"', "pam_unix(sshd:auth): ",
             "PAM 5 more authentication failures; ", "Failed password for ", "invalid user ",
             "root ", "from ", "203.0.113.66 ", "port ", "99999999999999999999 ", "ssh2",
             " : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=", "[preauth]", "Built inbound TCP ",
             "connection 1 for a:1.2.3.4/5 (1.2.3.4/5) to b:5.6.7.8/9 (5.6.7.8/9)", "[error] ",
             '- - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 ', '{"EventTime":', "%ASA-",
             "\\", "\x00", "\u00e9", " "]
syslog_line = st.builds(lambda head, parts, tail: head + "".join(parts) + tail,
                        st.sampled_from(HEADERS), st.lists(st.sampled_from(FRAGMENTS), max_size=12),
                        st.text(max_size=40))
# FortiGate bodies: `date=` first and a `devid=` somewhere, then anything.
FORTIGATE_HEAD = '<189>date=2024-05-14 devid="FG" '
fortigate_line = st.builds(lambda parts, tail: FORTIGATE_HEAD + "".join(parts) + tail,
                           st.lists(st.sampled_from(FRAGMENTS), max_size=12), st.text(max_size=40))


@pytest.fixture(scope="module")
def offline() -> Iterator[OfflineRun]:
    run = OfflineRun(load_config(CONF), CONF, clock=lambda: datetime(2024, 6, 1, tzinfo=UTC))
    yield run
    run.close()


def check_accounted_for(run: OfflineRun, source: str, lines: list[bytes]) -> None:
    events, dead = split_dead_letters(run.process_lines(source, lines))
    # Every line is one event or one dead letter: nothing lost, nothing doubled (the shipped
    # pipelines drop nothing).
    assert len(events) + len(dead) == len(lines)
    for record in dead:
        assert record["pipeline"] in run.config.pipelines
        assert record["step"] and record["error"]
        assert isinstance(record["event"], dict)
    for event in events:
        assert event.get(DATASET)
        assert isinstance(event.get("@timestamp"), datetime)


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.lists(json_object, min_size=1, max_size=5))
def test_random_json_objects_never_escape(offline: OfflineRun, objects: list[dict[str, Any]]
                                          ) -> None:
    lines = [orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS) for obj in objects]
    check_accounted_for(offline, "tcp_json", lines)


@SETTINGS
@given(json_object)
def test_random_json_over_http_never_escapes(offline: OfflineRun, obj: dict[str, Any]) -> None:
    check_accounted_for(offline, "http", [orjson.dumps(obj)])


@SETTINGS
@given(st.lists(st.one_of(syslog_line, fortigate_line), min_size=1, max_size=5))
def test_random_syslog_lines_never_escape(offline: OfflineRun, lines: list[str]) -> None:
    encoded = [line.replace("\n", " ").encode("utf-8", "surrogatepass") for line in lines]
    check_accounted_for(offline, "syslog_tcp", [line for line in encoded if line.strip()] or
                        [b"x"])


def test_a_step_failure_is_a_dead_letter_with_its_reason(offline: OfflineRun) -> None:
    """A record the Windows pipeline takes but cannot read: dead letter, nothing else."""
    events, dead = split_dead_letters(offline.process_lines(
        "tcp_json", [b'{"EventID": "x", "Channel": "Security", "EventTime": []}',
                     b'{"Event": {"System": "not an object"}}']))
    assert len(events) == 1 and events[0][DATASET] == "windows.event"   # EventID kept as is
    assert [(d["pipeline"], d["step"]) for d in dead] == [("windows_event", "0-windows_event")]
    assert dead[0]["error"].startswith("not a Windows event record")
