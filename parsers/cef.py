"""The `cef` step: ArcSight Common Event Format, `CEF:Version|Device Vendor|Device Product|
Device Version|Signature ID|Name|Severity|Extension`, per the CEF specification (rev. 25).

Header fields escape `|` and `\\` with a backslash; extension values escape `=` and `\\` and may
hold `\\n`/`\\r`; an extension value may contain spaces, so a value ends only where the next
`key=` starts. With `ecs: true` the standard keys go to their ECS names (`src` -> `source.ip`);
everything else stays under `cef.`. The shared pieces serve the `leef` step too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import Field

from core.addresses import parse_address
from core.events import Event
from core.step import Step, StepConfig, StepFailure
from parsers.grok.step import text_of

Convert = Callable[[str], Any]

# An extension key with the blanks before it (or the start): keys never hold a backslash, so
# `a\=b` inside a value never starts one. Splitting on it yields [before, key, value, ...]. A
# match starts only where a run of blanks starts, else a long run would be rescanned from each
# of its characters (quadratic).
EXTENSION_KEY = re.compile(r"(?:^|(?<!\s)\s+)([\w.\[\]-]+)=")
HEADER_FIELD = r"([^|\\]*(?:\\.[^|\\]*)*)"  # unrolled: no per-character alternation
_CEF_HEADER = re.compile(r"CEF: ?" + r"\|".join([HEADER_FIELD] * 7) + r"(?:\||$)", re.DOTALL)
_HEADER_ESCAPE = re.compile(r"\\([\\|])")
_VALUE_ESCAPE = re.compile(r"\\([\\=|nr])")
_VALUE_ESCAPES = {"\\": "\\", "=": "=", "|": "|", "n": "\n", "r": "\r"}

_LABEL_NAME = re.compile(r"[^a-z0-9]+")
_TRANSPORTS = {"1": "icmp", "6": "tcp", "17": "udp", "47": "gre", "50": "esp", "51": "ah",
               "58": "ipv6-icmp", "132": "sctp"}
# CEF 0 allows names for severity; the spec gives them as ranges of the 0-10 scale.
_SEVERITY_NAMES = {"low": 3, "medium": 6, "high": 8, "very-high": 10}


def to_ip(value: str) -> str | None:
    """The address in its canonical text, by the rule the enrichers use (so geoip and
    threat_intel read it the same way); None when it is not one."""
    address = parse_address(value)
    return str(address) if address is not None else None


def to_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def to_transport(value: str) -> str | None:
    """IANA protocol numbers to names (6 -> tcp); names lower-cased."""
    value = value.strip()
    return _TRANSPORTS.get(value) or (value.lower() if value and not value.isdigit() else None)


def to_severity(value: str) -> int | None:
    number = to_int(value)
    return number if number is not None else _SEVERITY_NAMES.get(value.strip().lower())


def to_direction(value: str) -> str | None:
    return {"0": "inbound", "1": "outbound"}.get(value.strip())


def _lower(value: str) -> str:
    return value.lower()


def as_text(value: str) -> str:
    return value


# Extension key -> (ECS field, converter). Short names as devices send them, plus the full
# dictionary names some devices use instead. Times (rt, start, end) stay under `cef.` for a
# `timestamp` step, since their format varies by device.
_CEF_ECS_PAIRS: list[tuple[tuple[str, ...], str, Convert]] = [
    (("src", "sourceAddress"), "source.ip", to_ip),
    (("dst", "destinationAddress"), "destination.ip", to_ip),
    (("spt", "sourcePort"), "source.port", to_int),
    (("dpt", "destinationPort"), "destination.port", to_int),
    (("shost", "sourceHostName"), "source.domain", as_text),
    (("dhost", "destinationHostName"), "destination.domain", as_text),
    (("smac", "sourceMacAddress"), "source.mac", as_text),
    (("dmac", "destinationMacAddress"), "destination.mac", as_text),
    (("suser", "sourceUserName"), "source.user.name", as_text),
    (("duser", "destinationUserName"), "destination.user.name", as_text),
    (("suid", "sourceUserId"), "source.user.id", as_text),
    (("duid", "destinationUserId"), "destination.user.id", as_text),
    (("sourceTranslatedAddress",), "source.nat.ip", to_ip),
    (("destinationTranslatedAddress",), "destination.nat.ip", to_ip),
    (("sourceTranslatedPort",), "source.nat.port", to_int),
    (("destinationTranslatedPort",), "destination.nat.port", to_int),
    (("in", "bytesIn"), "source.bytes", to_int),
    (("out", "bytesOut"), "destination.bytes", to_int),
    (("act", "deviceAction"), "event.action", as_text),
    (("outcome", "eventOutcome"), "event.outcome", _lower),
    (("reason",), "event.reason", as_text),
    (("externalId",), "event.id", as_text),
    (("dtz", "deviceTimeZone"), "event.timezone", as_text),
    (("proto", "transportProtocol"), "network.transport", to_transport),
    (("app", "applicationProtocol"), "network.protocol", _lower),
    (("deviceDirection",), "network.direction", to_direction),
    (("request", "requestUrl"), "url.original", as_text),
    (("requestMethod",), "http.request.method", as_text),
    (("requestClientApplication",), "user_agent.original", as_text),
    (("requestContext",), "http.request.referrer", as_text),
    (("dvc", "deviceAddress"), "observer.ip", to_ip),
    (("dvchost", "deviceHostName"), "observer.hostname", as_text),
    (("dvcmac", "deviceMacAddress"), "observer.mac", as_text),
    (("dproc", "destinationProcessName"), "process.name", as_text),
    (("dpid", "destinationProcessId"), "process.pid", to_int),
    (("fname", "fileName"), "file.name", as_text),
    (("filePath",), "file.path", as_text),
    (("fsize", "fileSize"), "file.size", to_int),
    (("fileHash",), "file.hash.original", as_text),
]


def mapping_table(pairs: Iterable[tuple[tuple[str, ...], str, Convert]]
                  ) -> dict[str, tuple[str, Convert]]:
    return {key: (target, convert) for keys, target, convert in pairs for key in keys}


CEF_ECS_FIELDS = mapping_table(_CEF_ECS_PAIRS)


def unescape_header(value: str) -> str:
    return _HEADER_ESCAPE.sub(r"\1", value) if "\\" in value else value


def unescape_value(value: str) -> str:
    """CEF extension escapes: `\\=`, `\\\\`, `\\|`, `\\n`, `\\r`; any other backslash is kept
    (devices write Windows paths unescaped)."""
    if "\\" not in value:
        return value
    return _VALUE_ESCAPE.sub(lambda m: _VALUE_ESCAPES[m.group(1)], value)


def split_extension(text: str, what: str) -> list[tuple[str, str]]:
    """`key=value` pairs whose values may hold spaces: a value runs to the next ` key=`."""
    parts = EXTENSION_KEY.split(text)
    if len(parts) == 1:
        if text.strip():
            raise StepFailure(f"{what} holds no key=value pair")
        return []
    if parts[0].strip():
        raise StepFailure(f"{what} has text before its first key: {parts[0].strip()[:40]!r}")
    parts[-1] = parts[-1].rstrip()
    return list(zip(parts[1::2], parts[2::2], strict=True))


class FormatConfig(StepConfig):
    """Keys shared by the CEF and LEEF steps."""

    field: str = Field("message", description="field holding the event")
    ecs: bool = Field(True, description="standard keys go to their ECS fields (`src` -> "
                                        "`source.ip`, `dpt` -> `destination.port` as int); "
                                        "false: every key stays under the prefix")
    search: bool = Field(True, description="the header may follow other text (a syslog header "
                                           "nobody took off); false: the field starts with it")
    keep_empty_values: bool = Field(False, description="keep keys with an empty value")


Decoded = tuple[list[tuple[str, str]], dict[str, Any], list[tuple[str, str]]]


class FormatStep(Step):
    """Finds the header, decodes it, and writes header fields under the prefix (and their ECS
    names with `ecs`) and pairs: mapped keys to ECS when the value converts, others prefixed."""

    marker: str
    names_from_input = True

    def __init__(self, config: FormatConfig, context: Any, prefix: str,
                 mapping: dict[str, tuple[str, Convert]]) -> None:
        super().__init__(config, context)
        self.field = config.field
        self.prefix = prefix
        self.ecs = config.ecs
        self.mapping = mapping if config.ecs else {}
        self.keep_empty = config.keep_empty_values
        self.search = config.search

    def decode(self, text: str, start: int) -> Decoded:
        """(header fields, their ECS fields, extension pairs) of the event at `start`."""
        raise NotImplementedError

    def apply(self, event: Event) -> Event:
        text = text_of(event, self.field)
        marker = self.marker
        start = text.find(marker) if self.search else (0 if text.startswith(marker) else -1)
        if start < 0:
            raise StepFailure(f"no {marker[:-1]} header ({marker!r} not found)")
        header, ecs_header, pairs = self.decode(text, start)
        prefix = self.prefix
        for name, value in header:
            event[prefix + name] = value
        if self.ecs:
            event.update(ecs_header)
        mapping, keep_empty = self.mapping, self.keep_empty
        for key, value in pairs:
            if not value and not keep_empty:
                continue
            mapped = mapping.get(key)
            if mapped is not None:
                converted = mapped[1](value)
                if converted is not None:
                    event[mapped[0]] = converted
                    continue
            event[prefix + key] = value
        return event


class CefConfig(FormatConfig):
    """Decode ArcSight CEF. Header fields go to `cef.version`, `cef.device.vendor`,
    `cef.device.product`, `cef.device.version`, `cef.device.event_class_id`, `cef.name`,
    `cef.severity` (and with `ecs`, to `observer.vendor`, `observer.product`,
    `observer.version`, `event.code`, `event.severity`)."""

    type: Literal["cef"] = "cef"
    target: str = Field("cef", description="prefix of the header fields and of extension keys "
                                           "without an ECS mapping")
    labels: bool = Field(True, description="custom fields also under their labels: "
                         "`cs2=0x00 ACK cs2Label=TCP Flags` adds `cef.label.tcp_flags`; the "
                         "keys and labels stay as sent")


class CefStep(FormatStep):
    """`type: cef`."""

    config_model = CefConfig
    marker = "CEF:"

    def __init__(self, config: CefConfig, context: Any) -> None:
        super().__init__(config, context, f"{config.target}.", CEF_ECS_FIELDS)
        self.labels = config.labels

    def decode(self, text: str, start: int) -> Decoded:
        header = _CEF_HEADER.match(text, start)
        if header is None:
            raise StepFailure("malformed CEF header: expected 7 fields separated by `|` after "
                              "`CEF:`")
        version, vendor, product, device_version, signature, name, severity = (
            unescape_header(header.group(i)) for i in range(1, 8))
        fields = [("version", version), ("device.vendor", vendor), ("device.product", product),
                  ("device.version", device_version), ("device.event_class_id", signature),
                  ("name", name), ("severity", severity)]
        ecs: dict[str, Any] = {"observer.vendor": vendor, "observer.product": product,
                               "observer.version": device_version, "event.code": signature}
        level = to_severity(severity)
        if level is not None:
            ecs["event.severity"] = level
        pairs = [(key, unescape_value(value) if "\\" in value else value) for key, value in
                 split_extension(text[header.end():], "CEF extension")]
        if self.labels:
            pairs += labelled(pairs)
        return fields, ecs, pairs


def labelled(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Custom fields (cs1..cs6, cn1..cn3, cfp1..cfp4, flexString1, deviceCustomDate1, ...)
    under their labels: `label.<label as a lower-case name>` -> the field's value."""
    labels = [(key[:-5], value) for key, value in pairs if key.endswith("Label") and value]
    if not labels:
        return []
    values = dict(pairs)
    found = []
    for base, label in labels:
        if base in values:
            name = _LABEL_NAME.sub("_", label.strip().lower()).strip("_")
            if name:
                found.append((f"label.{name}", values[base]))
    return found
