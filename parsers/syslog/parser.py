"""Parse one syslog message into a flat ECS-style event.

RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`) and RFC 3164
(`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`) with the variants devices really send: no hostname,
no PRI (files and relays), ISO timestamps in a BSD header, Cisco sequence numbers and
`%FAC-SEV-MNEMONIC` tags, and vendor bodies straight after the PRI (FortiGate key=value).
A message whose header cannot be parsed is kept whole in `message` and marked with the reason;
bytes that are not UTF-8 are replaced, never fatal, and kept in `event.original_base64`.

Hand-written rather than a library: the PyPI syslog parsers cover one RFC each and none handles
the vendor variants or infers the RFC 3164 year against the receive time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from core.events import MESSAGE, ORIGINAL_BASE64, PARSE_ERROR, TIMESTAMP, decode_text

_PRI = re.compile(r"<(\d{1,3})>", re.ASCII)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
# Mmm dd hh:mm:ss[.fff] [yyyy]  (day may be space-padded; some devices append the year); public
# with `bsd_timestamp`, which the `timestamp` step reuses.
BSD_TIMESTAMP = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})"
                     r"(?:\.(\d{1,6}))?(?: (\d{4}))?(?=[ :]|$)", re.ASCII)
_ISO_TS = re.compile(
    r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?(?=[ :]|$)",
    re.ASCII)
_TAG = re.compile(r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{1,32})\])?:(?: |$)")
_CISCO_SEQ = re.compile(r"(\d{1,10}): (?:\*|\.)?", re.ASCII)
_CISCO_MNEMONIC = re.compile(r"%([A-Z][A-Z0-9_]*-\d-[A-Z0-9_]+): ?", re.ASCII)
_SD_PARAM = re.compile(r'\s*([^\s=\]"]{1,32})="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\([\\"\]])')
_NIL = "-"
_FUTURE_TOLERANCE = timedelta(days=2)
_BOM = "\ufeff"
_PRI_KEYS = ("log.syslog.priority", "log.syslog.facility.code", "log.syslog.severity.code")
_NOT_5424 = "not an RFC 5424 header"
_BAD_SD = "malformed RFC 5424 structured data"


def parse_syslog(line: bytes | str, *, received_at: datetime, tz: tzinfo = UTC) -> dict[str, Any]:
    """One message -> event. `received_at` (aware) fills a missing timestamp and anchors the
    RFC 3164 year; `tz` is the zone of timestamps that carry none."""
    original = None
    if isinstance(line, bytes | bytearray):
        text, original = decode_text(line)
    else:
        text = line
    if text.startswith(_BOM):
        text = text[1:]
    event: dict[str, Any] = {} if original is None else {ORIGINAL_BASE64: original}
    rest = text
    failure: str | None = None
    pri = _PRI.match(text)
    if pri is not None and int(pri.group(1)) <= 191:
        value = int(pri.group(1))
        event["log.syslog.priority"] = value
        event["log.syslog.facility.code"] = value >> 3
        event["log.syslog.severity.code"] = value & 7
        rest = text[pri.end():]
        if rest.startswith("1 "):
            failure = _rfc5424(rest[2:], event, received_at)
            if failure is None:
                return event
            # not really 5424 ("1 " can begin a BSD body); fall through with only the PRI kept
            for key in [k for k in event if k not in _PRI_KEYS]:
                del event[key]
    elif pri is not None:
        return _unparsed(text, received_at, f"PRI {pri.group(1)} out of range 0-191")
    if _rfc3164(rest, event, received_at, tz, has_pri=pri is not None):
        return event
    if pri is not None:
        # PRI followed directly by a body (FortiGate, some appliances): valid enough to keep.
        event[TIMESTAMP] = received_at
        event[MESSAGE] = rest.lstrip(_BOM)
        if failure == _BAD_SD:
            event[PARSE_ERROR] = failure
        return event
    if pri is None:
        prefixed = _after_loghub_prefix(text, tz)
        if prefixed is not None:
            return prefixed
    return _unparsed(text, received_at, "no syslog PRI or timestamp")


# loghub's supercomputer logs (Thunderbird, Liberty, Spirit) write `label epoch yyyy.mm.dd node`
# before a BSD header whose host is `node/node`, `src@node` or `local@node`.
_LOGHUB_PREFIX = re.compile(r"\S+ (\d{9,10}) (\d{4})\.(\d\d)\.(\d\d) (\S+) (?=[A-Z][a-z]{2} )",
                            re.ASCII)


def _after_loghub_prefix(text: str, tz: tzinfo) -> dict[str, Any] | None:
    """The event of the header after a loghub prefix (the node is the host, the prefix's date
    anchors the year), or None when the text has no such prefix and header."""
    prefix = _LOGHUB_PREFIX.match(text)
    if prefix is None:
        return None
    year, month, day = (int(prefix.group(i)) for i in (2, 3, 4))
    try:
        anchor = datetime(year, month, day, tzinfo=UTC) + timedelta(days=1)
    except ValueError:
        return None
    event: dict[str, Any] = {}
    if not _rfc3164(text[prefix.end():], event, anchor, tz, has_pri=False):
        return None
    event["host.hostname"] = prefix.group(5)
    return event


def _unparsed(text: str, received_at: datetime, reason: str) -> dict[str, Any]:
    return {TIMESTAMP: received_at, MESSAGE: text, PARSE_ERROR: reason}


def _rfc5424(rest: str, event: dict[str, Any], received_at: datetime) -> str | None:
    """Fill `event` from an RFC 5424 header; None on success, else why it is not one."""
    parts = rest.split(" ", 5)
    if len(parts) < 5:
        return _NOT_5424
    ts, host, app, procid, msgid = parts[:5]
    tail = parts[5] if len(parts) == 6 else ""
    timestamp: datetime | None
    if ts == _NIL:
        timestamp = received_at
    else:
        iso = _ISO_TS.fullmatch(ts)
        if iso is None:
            return _NOT_5424
        timestamp = _iso(iso, UTC)
        if timestamp is None:
            return _NOT_5424
    event["log.syslog.version"] = 1
    event[TIMESTAMP] = timestamp
    if host != _NIL:
        event["host.hostname"] = host
    if app != _NIL:
        event["log.syslog.appname"] = app
    if procid != _NIL:
        _set_pid(event, procid)
    if msgid != _NIL:
        event["log.syslog.msgid"] = msgid
    message = _structured_data(tail, event)
    if message is None:
        return _BAD_SD
    if message.startswith(_BOM):
        message = message[1:]
    event[MESSAGE] = message
    return None


def _structured_data(tail: str, event: dict[str, Any]) -> str | None:
    """Parse SD-ELEMENTs into `log.syslog.structured_data.<id>.<param>`; return the MSG."""
    if tail == _NIL or tail.startswith(_NIL + " "):
        return tail[2:]
    pos = 0
    n = len(tail)
    while pos < n and tail[pos] == "[":
        end_id = pos + 1
        while end_id < n and tail[end_id] not in " ]":
            end_id += 1
        sd_id = tail[pos + 1:end_id]
        if not sd_id or end_id >= n:
            return None
        pos = end_id
        while True:
            param = _SD_PARAM.match(tail, pos)
            if param is None:
                break
            key = f"log.syslog.structured_data.{sd_id}.{param.group(1)}"
            value = _SD_UNESCAPE.sub(r"\1", param.group(2))
            previous = event.get(key)
            event[key] = value if previous is None else f"{previous},{value}"
            pos = param.end()
        if pos >= n or tail[pos] != "]":
            return None
        pos += 1
    if pos == 0:
        return None
    return tail[pos + 1:] if tail[pos:pos + 1] == " " else tail[pos:]


def _rfc3164(rest: str, event: dict[str, Any], received_at: datetime, tz: tzinfo,
             *, has_pri: bool) -> bool:
    body = rest
    seq = _CISCO_SEQ.match(body)
    if seq is not None:
        event["event.sequence"] = int(seq.group(1))
        body = body[seq.end():]
        # Cisco: "<189>123: host: *Mar  1 ..." or "<189>123: *Mar  1 ..."
        host_first = re.match(r"([A-Za-z0-9][\w.\-]{0,254}): (?:\*|\.)?", body)
        if host_first is not None and BSD_TIMESTAMP.match(body, host_first.end()):
            event["host.hostname"] = host_first.group(1)
            body = body[host_first.end():]
    timestamp: datetime | None
    bsd = BSD_TIMESTAMP.match(body)
    if bsd is not None:
        timestamp = bsd_timestamp(bsd, received_at, tz)
    else:
        iso = _ISO_TS.match(body)
        timestamp = _iso(iso, tz) if iso is not None else None
        bsd = iso
    if bsd is None or timestamp is None:
        event.pop("event.sequence", None)
        event.pop("host.hostname", None)
        return False
    event[TIMESTAMP] = timestamp
    body = body[bsd.end():]
    if body.startswith(":"):  # Cisco puts a colon after the timestamp
        body = body[1:]
    body = body.lstrip(" ")
    mnemonic = _CISCO_MNEMONIC.match(body)
    if mnemonic is None:
        tag = _TAG.match(body)
        if tag is None and "host.hostname" not in event:
            host, _, after = body.partition(" ")
            if host and _looks_like_host(host):
                event["host.hostname"] = host
                body = after
                mnemonic = _CISCO_MNEMONIC.match(body)
                tag = _TAG.match(body) if mnemonic is None else None
        if tag is not None:
            event["log.syslog.appname"] = tag.group(1)
            if tag.group(2):
                _set_pid(event, tag.group(2))
            body = body[tag.end():]
    if mnemonic is not None:
        event["log.syslog.msgid"] = mnemonic.group(1)
        event.setdefault("log.syslog.appname", mnemonic.group(1).split("-", 1)[0])
        body = body[mnemonic.end():]
    event[MESSAGE] = body
    return True


def _looks_like_host(token: str) -> bool:
    # No host name holds `,` (a PAN-OS CSV body right after the timestamp) or `=` (a
    # key=value body).
    return len(token) <= 255 and not token.endswith(":") and "=" not in token \
        and "[" not in token and "," not in token


def _set_pid(event: dict[str, Any], procid: str) -> None:
    # isdigit() alone accepts "²", which int() rejects.
    if procid.isascii() and procid.isdigit():
        event["process.pid"] = int(procid)
    else:
        event["log.syslog.procid"] = procid


# Messages read together share their receive time and mostly their second: remember the last
# few conversions (the key holds everything the result depends on, so a hit is exact).
_BSD_CACHE: dict[tuple[str, tzinfo, datetime], datetime | None] = {}
_BSD_CACHE_SIZE = 4096


def bsd_timestamp(match: re.Match[str], received_at: datetime, tz: tzinfo) -> datetime | None:
    """The time a `BSD_TIMESTAMP` match names in `tz`, a missing year inferred from
    `received_at`; None when it is no date. The `timestamp` step's `rfc3164` uses it too."""
    key = (match.group(0), tz, received_at)
    try:
        return _BSD_CACHE[key]
    except KeyError:
        pass
    if len(_BSD_CACHE) >= _BSD_CACHE_SIZE:
        _BSD_CACHE.clear()
    value = _BSD_CACHE[key] = _bsd_uncached(match, received_at, tz)
    return value


def _bsd_uncached(match: re.Match[str], received_at: datetime, tz: tzinfo) -> datetime | None:
    month = _MONTHS.get(match.group(1))
    if month is None:
        return None
    day, hour, minute, second = (int(match.group(i)) for i in range(2, 6))
    micro = int(match.group(6).ljust(6, "0")) if match.group(6) else 0
    if match.group(7):
        years = [int(match.group(7))]
    else:
        # RFC 3164 carries no year: take the latest year that does not put the message more
        # than a little into the future of when it was received (clock skew), so a December
        # message read on 1 January lands in the old year and a January one read on
        # 31 December in the new.
        local_year = received_at.astimezone(tz).year
        years = [local_year + 1, local_year, local_year - 1]
    best: datetime | None = None
    horizon = received_at + _FUTURE_TOLERANCE
    for year in years:
        try:
            candidate = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        except ValueError:  # 29 February in a non-leap year, day 31 in a short month
            continue
        if candidate <= horizon or len(years) == 1:
            best = candidate
            break
    # None when only the future fits (29 February read in a year before a leap year).
    return _to_utc(best) if best is not None else None


def _iso(match: re.Match[str], tz: tzinfo) -> datetime | None:
    base, fraction, offset = match.group(1), match.group(2), match.group(3)
    text = base.replace(" ", "T")
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if offset:
        if offset == "Z":
            value = value.replace(tzinfo=UTC)
        else:
            sign = 1 if offset[0] == "+" else -1
            digits = offset[1:].replace(":", "")
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            if delta > timedelta(hours=18):
                return None
            value = value.replace(tzinfo=_fixed(sign * delta))
    else:
        value = value.replace(tzinfo=tz)
    return _to_utc(value)


def _to_utc(value: datetime) -> datetime | None:
    """None for a local time that has no UTC equivalent (year 1 east of UTC, 9999 west)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


_ZONES: dict[timedelta, tzinfo] = {}


def _fixed(delta: timedelta) -> tzinfo:
    from datetime import timezone

    zone = _ZONES.get(delta)
    if zone is None:
        zone = _ZONES[delta] = timezone(delta)
    return zone
