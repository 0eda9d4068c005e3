"""The syslog parser: RFC 5424 and RFC 3164 with the variants devices send, regressions for bugs
found by the property tests, and hypothesis properties over both paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import MESSAGE, PARSE_ERROR, TIMESTAMP
from parsers.syslog import parse_syslog

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


def parse(line: str | bytes, received_at: datetime = NOW, tz=UTC) -> dict:
    return parse_syslog(line, received_at=received_at, tz=tz)


# -- RFC 5424 --------------------------------------------------------------------------------

def test_rfc5424_example_with_structured_data_and_bom() -> None:
    event = parse('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
                  '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
                  '[examplePriority@32473 class="high"] \ufeffAn application event log entry')
    assert event == {
        "log.syslog.priority": 165, "log.syslog.facility.code": 20,
        "log.syslog.severity.code": 5, "log.syslog.version": 1,
        TIMESTAMP: datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
        "host.hostname": "mymachine.example.com", "log.syslog.appname": "evntslog",
        "log.syslog.msgid": "ID47",
        "log.syslog.structured_data.exampleSDID@32473.iut": "3",
        "log.syslog.structured_data.exampleSDID@32473.eventSource": "Application",
        "log.syslog.structured_data.exampleSDID@32473.eventID": "1011",
        "log.syslog.structured_data.examplePriority@32473.class": "high",
        MESSAGE: "An application event log entry",
    }


def test_rfc5424_nilvalues_numeric_offset_and_microseconds() -> None:
    event = parse("<34>1 2003-08-24T05:14:15.000003-07:00 - - - - - no header values")
    assert event[TIMESTAMP] == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert event[MESSAGE] == "no header values"
    for key in ("host.hostname", "log.syslog.appname", "process.pid", "log.syslog.msgid"):
        assert key not in event
    assert parse("<34>1 - host app 42 - -")[TIMESTAMP] == NOW  # NILVALUE time: received time
    assert parse("<34>1 - host app 42 - -")["process.pid"] == 42


def test_rfc5424_escapes_in_structured_data() -> None:
    event = parse(r'<13>1 2024-01-01T00:00:00Z h a - - [x@1 q="a \"b\" \] c\\"] m')
    assert event['log.syslog.structured_data.x@1.q'] == r'a "b" ] c\ '.rstrip()
    assert event[MESSAGE] == "m"


def test_rfc5424_with_malformed_structured_data_keeps_priority_and_says_why() -> None:
    """Regression: the header's PRI fields were cleared when the SD did not parse."""
    event = parse("<13>1 2024-01-01T00:00:00Z h a p m [bad msg")
    assert event["log.syslog.severity.code"] == 5
    assert event[MESSAGE] == "1 2024-01-01T00:00:00Z h a p m [bad msg"
    assert event[PARSE_ERROR] == "malformed RFC 5424 structured data"


def test_procid_with_unicode_digits_is_kept_not_fatal() -> None:
    """Regression: "²".isdigit() is True but int("²") raises."""
    event = parse("<13>1 2024-01-01T00:00:00Z h a ² - - msg")
    assert event["log.syslog.procid"] == "²"
    assert "process.pid" not in event


def test_timestamps_outside_the_utc_range_do_not_raise() -> None:
    """Regression: year 1 east of UTC (or 9999 west of it) overflowed in astimezone."""
    event = parse("<13>1 0001-01-01T00:00:00+05:00 h a - - - msg")
    assert event[TIMESTAMP] == NOW and "log.syslog.severity.code" in event
    event = parse("<13>Jan  1 00:00:00 0001 h a: x", tz=timezone(timedelta(hours=5)))
    assert event[TIMESTAMP] == NOW and event[MESSAGE] == "Jan  1 00:00:00 0001 h a: x"


def test_pri_with_non_ascii_digits_is_not_a_pri() -> None:
    event = parse("<١٣>Jan  1 00:00:00 h a: x")
    assert event[PARSE_ERROR] == "no syslog PRI or timestamp"


# -- RFC 3164 --------------------------------------------------------------------------------

def test_rfc3164_with_host_tag_and_pid() -> None:
    event = parse("<38>May 14 09:29:58 web01 sshd[4242]: Accepted publickey for alice")
    assert event[TIMESTAMP] == datetime(2024, 5, 14, 9, 29, 58, tzinfo=UTC)
    assert event["host.hostname"] == "web01"
    assert event["log.syslog.appname"] == "sshd"
    assert event["process.pid"] == 4242
    assert event[MESSAGE] == "Accepted publickey for alice"


def test_rfc3164_december_message_received_in_january_is_last_year() -> None:
    new_year = datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC)
    event = parse("<13>Dec 31 23:59:59 h app: late", received_at=new_year)
    assert event[TIMESTAMP] == datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    # and a sender whose clock runs a little ahead across new year lands in the new year
    event = parse("<13>Jan  1 00:00:05 h app: early", received_at=datetime(2024, 12, 31, 23, 59,
                                                                             50, tzinfo=UTC))
    assert event[TIMESTAMP] == datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)


def test_the_same_bsd_timestamp_is_read_against_each_receive_time_and_zone() -> None:
    """The conversion is cached; the cache must not leak one receive time's year (or one
    source's zone) into another's."""
    line = "<13>Mar  1 12:00:00 h app: x"
    for year in (2023, 2024, 2025):
        event = parse(line, received_at=datetime(year, 3, 2, tzinfo=UTC))
        assert event[TIMESTAMP] == datetime(year, 3, 1, 12, tzinfo=UTC)
    assert parse(line, received_at=datetime(2024, 3, 2, tzinfo=UTC),
                 tz=ZoneInfo("Asia/Tokyo"))[TIMESTAMP] == datetime(2024, 3, 1, 3, tzinfo=UTC)


def test_rfc3164_timezone_per_source() -> None:
    event = parse("<13>May 14 11:29:58 h app: x", tz=ZoneInfo("Europe/Berlin"))
    assert event[TIMESTAMP] == datetime(2024, 5, 14, 9, 29, 58, tzinfo=UTC)


def test_cisco_sequence_number_and_mnemonic() -> None:
    event = parse("<189>4711: router1: *May 14 09:00:00.123: %LINK-3-UPDOWN: Interface "
                  "GigabitEthernet0/1, changed state to down")
    assert event["event.sequence"] == 4711
    assert event["host.hostname"] == "router1"
    assert event["log.syslog.msgid"] == "LINK-3-UPDOWN"
    assert event["log.syslog.appname"] == "LINK"
    assert event[TIMESTAMP] == datetime(2024, 5, 14, 9, 0, 0, 123000, tzinfo=UTC)
    assert event[MESSAGE] == "Interface GigabitEthernet0/1, changed state to down"


def test_message_without_hostname() -> None:
    event = parse("<13>May 14 09:00:00 sshd[7]: no host here")
    assert "host.hostname" not in event
    assert event["log.syslog.appname"] == "sshd" and event[MESSAGE] == "no host here"


def test_fortigate_body_right_after_pri() -> None:
    body = 'date=2024-05-14 time=09:00:00 devname="FG100" type="traffic" action="deny"'
    event = parse(f"<189>{body}")
    assert event[MESSAGE] == body and event[TIMESTAMP] == NOW
    assert event["log.syslog.severity.code"] == 5 and PARSE_ERROR not in event


def test_palo_alto_csv_body_after_short_header() -> None:
    event = parse("<14>May 14 09:00:00 PA-VM 1,2024/05/14 09:00:00,0123,TRAFFIC,end,2049")
    assert event["host.hostname"] == "PA-VM"
    assert event[MESSAGE] == "1,2024/05/14 09:00:00,0123,TRAFFIC,end,2049"
    # Without a host name the CSV body follows the timestamp (elastic/integrations panw
    # test logs): its first cell is not a host.
    event = parse("Nov 30 16:09:08 1,2021/03/24 11:30:00,013101001305,GLOBALPROTECT,0,2305")
    assert "host.hostname" not in event
    assert event[MESSAGE] == "1,2021/03/24 11:30:00,013101001305,GLOBALPROTECT,0,2305"


def test_loghub_prefix_before_the_bsd_header() -> None:
    """loghub's supercomputer logs (Thunderbird, Liberty, Spirit) put `label epoch date node`
    before the header: the header is parsed after it, its year taken from the prefix's date."""
    # loghub Thunderbird_2k.log, first line (github.com/logpai/loghub, Thunderbird/).
    event = parse("- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 "
                  "crond(pam_unix)[2915]: session closed for user root")
    assert PARSE_ERROR not in event
    assert event[TIMESTAMP] == datetime(2005, 11, 9, 12, 1, 1, tzinfo=UTC)
    assert event["host.hostname"] == "dn228"
    assert event["log.syslog.appname"] == "crond(pam_unix)" and event["process.pid"] == 2915
    assert event[MESSAGE] == "session closed for user root"
    event = parse("- 1131566503 2005.11.09 aadmin1 Nov 9 12:01:43 src@aadmin1 dhcpd: DHCPACK on "
                  "10.100.4.251 to 00:11:43:e3:ba:c3 via eth1")
    assert event["host.hostname"] == "aadmin1" and event["log.syslog.appname"] == "dhcpd"
    # A prefix-like start without a header after it stays unparsed.
    assert PARSE_ERROR in parse("- 1131566461 2005.11.09 dn228 nothing syslog here")


def test_not_syslog_is_kept_whole_and_marked() -> None:
    event = parse(b"GET / HTTP/1.1 \xff\xfe")
    assert event[MESSAGE] == "GET / HTTP/1.1 \ufffd\ufffd"
    assert event[PARSE_ERROR] == "no syslog PRI or timestamp" and event[TIMESTAMP] == NOW
    assert parse("<999>x")[PARSE_ERROR] == "PRI 999 out of range 0-191"


# -- properties --------------------------------------------------------------------------------

received_times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                              timezones=st.just(UTC))
zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
                         ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")])
syslogish = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.builds(lambda pri, rest: f"<{pri}>{rest}", st.integers(0, 999), st.text(max_size=200)),
    st.builds(lambda pri, rest: f"<{pri}>1 {rest}", st.integers(0, 191), st.text(max_size=200)),
    st.from_regex(r"<\d{1,3}>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d) "
                  r"\S{1,5} \S{1,5} \S{1,5} \S{1,5} (-|\[.{0,30}\])( .{0,30})?", fullmatch=True),
    st.from_regex(r"(<\d{1,3}>)?(\d{1,4}: )?(\S{1,8}: )?[*.]?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
                  r"(\.\d{1,6})?( \d{4})?:? .{0,60}", fullmatch=True),
)


@settings(max_examples=1500, deadline=None)
@given(line=syslogish, received_at=received_times, tz=zones)
def test_any_input_becomes_one_event_and_the_message_is_a_suffix(line, received_at, tz) -> None:
    """No input raises; every input gives an event with an aware timestamp; the message is the
    tail of the input (headers are parsed off the front, nothing else is removed), and an input
    that could not be parsed is kept whole."""
    event = parse_syslog(line, received_at=received_at, tz=tz)
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.removeprefix("\ufeff")
    assert isinstance(event[TIMESTAMP], datetime) and event[TIMESTAMP].utcoffset() == timedelta(0)
    assert isinstance(event[MESSAGE], str)
    assert text.endswith(event[MESSAGE])
    if PARSE_ERROR in event and "log.syslog.priority" not in event:
        assert event[MESSAGE] == text


token = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
sd_name = st.text(st.characters(min_codepoint=33, max_codepoint=126,
                                exclude_characters='= ]"'), min_size=1, max_size=12)
sd_value = st.text(max_size=20)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@settings(max_examples=800, deadline=None)
@given(pri=st.integers(0, 191), when=st.datetimes(min_value=datetime(1980, 1, 1),
                                                  max_value=datetime(2100, 1, 1),
                                                  timezones=st.just(UTC)),
       host=token, app=token, procid=token, msgid=token.filter(lambda t: not t.startswith("[")),
       sd=st.dictionaries(sd_name, st.dictionaries(sd_name, sd_value, min_size=1, max_size=3),
                          max_size=3),
       message=st.text(max_size=80).filter(lambda m: not m.startswith("\ufeff")))
def test_rfc5424_fields_round_trip(pri, when, host, app, procid, msgid, sd, message) -> None:
    values = [v if v != "-" else "x" for v in (host, app, procid, msgid)]
    host, app, procid, msgid = values
    elements = "".join(f"[{sid} " + " ".join(f'{k}="{_escape(v)}"' for k, v in params.items())
                       + "]" for sid, params in sd.items()) or "-"
    line = (f"<{pri}>1 {when.isoformat().replace('+00:00', 'Z')} {host} {app} {procid} {msgid} "
            f"{elements} {message}")
    event = parse(line)
    assert PARSE_ERROR not in event, line
    assert event["log.syslog.priority"] == pri and event[TIMESTAMP] == when
    assert event["host.hostname"] == host and event["log.syslog.appname"] == app
    assert event["log.syslog.msgid"] == msgid
    assert event.get("process.pid", event.get("log.syslog.procid")) in (procid, int(procid)
                                                                        if procid.isascii()
                                                                        and procid.isdigit()
                                                                        else procid)
    for sid, params in sd.items():
        for name, value in params.items():
            assert event[f"log.syslog.structured_data.{sid}.{name}"] == value
    assert event[MESSAGE] == message


@settings(max_examples=800, deadline=None)
@given(pri=st.integers(0, 191), received_at=received_times,
       age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=300)),
       host=st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
       tag=st.from_regex(r"[a-z][a-z0-9_/.-]{0,15}", fullmatch=True),
       pid=st.none() | st.integers(0, 99999), message=st.text(max_size=80))
def test_rfc3164_fields_round_trip(pri, received_at, age, host, tag, pid, message) -> None:
    """The year is inferred: any message up to 300 days old gets its own year back."""
    when = (received_at - age).replace(microsecond=0)
    stamp = when.strftime("%b ") + f"{when.day:>2}" + when.strftime(" %H:%M:%S")
    pid_part = f"[{pid}]" if pid is not None else ""
    event = parse(f"<{pri}>{stamp} {host} {tag}{pid_part}: {message}", received_at=received_at)
    assert PARSE_ERROR not in event
    assert event[TIMESTAMP] == when
    assert event["host.hostname"] == host and event["log.syslog.appname"] == tag
    assert event.get("process.pid") == pid
    assert event[MESSAGE] == message
