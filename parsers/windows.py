"""Windows event log records (EVTX rendered as JSON) flattened into Vigil's `windows.event` shape.

Field names follow Winlogbeat: `winlog.channel`, `winlog.event_id` (int),
`winlog.event_data.<Name>`, `winlog.user_data.<Name>` (the single wrapper element under UserData
dropped), `@timestamp`. A data name with spaces (Defender's `Threat Name`, `Process Name`,
`Source Name`) is also written without them (`ThreatName`), the names Sigma's rules use.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from core.config import ConfigIssue, ValidationContext
from core.events import Event
from core.step import Step, StepConfig, StepFailure
from parsers.json import flatten_object
from parsers.nest import object_field
from parsers.timestamp import zone

ATTRIBUTES = "#attributes"
TEXT = "#text"


def is_windows_event(doc: Any) -> bool:
    """True when `doc` is an EVTX-as-JSON record (`Event.System` plus event or user data)."""
    if not isinstance(doc, dict):
        return False
    event = doc.get("Event")
    return isinstance(event, dict) and isinstance(event.get("System"), dict)


def flatten_windows_event(doc: dict[str, Any]) -> dict[str, Any]:
    """Flatten one `{"Event": {"System": ..., "EventData"|"UserData": ...}}` document."""
    event = doc.get("Event", doc)
    system = event.get("System") or {}
    out: dict[str, Any] = {}

    event_id = _text(system.get("EventID"))
    if event_id is not None:
        out["winlog.event_id"] = _as_int(event_id)
    provider = _attributes(system.get("Provider"))
    if provider.get("Name") is not None:
        out["winlog.provider_name"] = provider["Name"]
    if provider.get("Guid") is not None:
        out["winlog.provider_guid"] = provider["Guid"]
    for source, target in _SYSTEM_SCALARS:
        value = _text(system.get(source))
        if value is not None:
            out[target] = value
    if "winlog.computer_name" in out:
        out["host.hostname"] = out["winlog.computer_name"]
    if "winlog.record_id" in out:
        out["winlog.record_id"] = _as_int(out["winlog.record_id"])
    execution = _attributes(system.get("Execution"))
    if execution.get("ProcessID") is not None:
        out["winlog.process.pid"] = _as_int(execution["ProcessID"])
    if execution.get("ThreadID") is not None:
        out["winlog.process.thread.id"] = _as_int(execution["ThreadID"])
    security = _attributes(system.get("Security"))
    if security.get("UserID") is not None:
        out["winlog.user.identifier"] = security["UserID"]
    created = _attributes(system.get("TimeCreated")).get("SystemTime")
    if isinstance(created, str):
        timestamp = parse_system_time(created)
        if timestamp is not None:
            out["@timestamp"] = timestamp

    event_data = event.get("EventData")
    if isinstance(event_data, dict):
        _flatten_data(event_data, "winlog.event_data", out)
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        # Winlogbeat drops the one wrapper element (e.g. LogFileCleared) and keeps its children.
        for name, wrapper in user_data.items():
            if name == ATTRIBUTES:
                continue
            if isinstance(wrapper, dict):
                _flatten_data(wrapper, "winlog.user_data", out)
            elif wrapper is not None:
                out[f"winlog.user_data.{name}"] = wrapper
    return add_spaceless_names(out)


def parse_system_time(value: str) -> datetime | None:
    """Parse `2026-04-17T05:24:53.092051Z` (up to 7 fraction digits) into an aware UTC datetime."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iter_json_documents(text: str | bytes) -> Iterator[Any]:
    """Yield every JSON value of a text holding one value, JSON lines, or concatenated objects."""
    import json

    data = text.decode("utf-8") if isinstance(text, bytes) else text
    decoder = json.JSONDecoder()
    position, end = 0, len(data)
    while True:
        while position < end and data[position].isspace():
            position += 1
        if position >= end:
            return
        # orjson is faster but cannot report where a value ends inside concatenated text.
        value, position = decoder.raw_decode(data, position)
        yield value


_SYSTEM_SCALARS = (
    ("Channel", "winlog.channel"),
    ("Computer", "winlog.computer_name"),
    ("EventRecordID", "winlog.record_id"),
    ("Version", "winlog.version"),
    ("Level", "winlog.level"),
    ("Task", "winlog.task"),
    ("Opcode", "winlog.opcode"),
    ("Keywords", "winlog.keywords"),
)


DATA_PREFIXES = ("winlog.event_data.", "winlog.user_data.")


def add_spaceless_names(out: dict[str, Any]) -> dict[str, Any]:
    """Also write each event/user data field whose name holds spaces without them (kept as
    sent too; a field already present under the spaceless name wins)."""
    for key in [k for k in out if " " in k and k.startswith(DATA_PREFIXES)]:
        out.setdefault(key.replace(" ", ""), out[key])
    return out


def _flatten_data(data: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    unnamed = 0
    for name, value in data.items():
        if name == ATTRIBUTES:
            continue
        if name == "Data" and isinstance(value, (list, str)) or name == "Data" and _is_text(value):
            # Unnamed <Data> elements: Winlogbeat numbers them param1, param2, ...
            for item in value if isinstance(value, list) else [value]:
                unnamed += 1
                out[f"{prefix}.param{unnamed}"] = _text(item)
            continue
        if isinstance(value, dict) and not _is_text(value):
            _flatten_data(value, f"{prefix}.{name}", out)
        else:
            out[f"{prefix}.{name}"] = _text(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, dict) and TEXT in value


def _text(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get(TEXT)
    return value


def _attributes(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        attributes = value.get(ATTRIBUTES)
        if isinstance(attributes, dict):
            return attributes
    return {}


def _as_int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


# --- The `windows_event` pipeline step -------------------------------------------------------
#
# Windows events reach Vigil in three JSON shapes: EVTX rendered as JSON (`Event.System` /
# `Event.EventData`, above), Winlogbeat's (`winlog.*` already in Vigil's names, nested) and
# NXLog's im_msvistalog output (one flat object: system keys such as `EventID`, `Channel`,
# `SourceName` next to the event data keys). The step brings all three to one field set.

# NXLog im_msvistalog system keys -> Vigil fields; every other key is event data. NXLog 6
# renamed some (`TaskValue`, `ExecutionProcessID`), both spellings are listed.
NXLOG_SYSTEM_FIELDS: dict[str, str] = {
    "EventID": "winlog.event_id",
    "Channel": "winlog.channel",
    "SourceName": "winlog.provider_name",
    "ProviderGuid": "winlog.provider_guid",
    "Hostname": "winlog.computer_name",
    "RecordNumber": "winlog.record_id",
    "Version": "winlog.version",
    "Keywords": "winlog.keywords",
    "Category": "winlog.task",
    "Task": "winlog.task_value",
    "TaskValue": "winlog.task_value",
    "Opcode": "winlog.opcode",
    "OpcodeValue": "winlog.opcode_value",
    "Level": "winlog.level",
    "SeverityValue": "winlog.severity_value",
    "Severity": "log.level",
    "EventType": "winlog.event_type",
    "ProcessID": "winlog.process.pid",
    "ExecutionProcessID": "winlog.process.pid",
    "ThreadID": "winlog.process.thread.id",
    "ExecutionThreadID": "winlog.process.thread.id",
    "ActivityID": "winlog.activity_id",
    "RelatedActivityID": "winlog.related_activity_id",
    "Domain": "winlog.user.domain",
    "AccountName": "winlog.user.name",
    "UserID": "winlog.user.identifier",
    "AccountType": "winlog.user.type",
    "Message": "message",
    "EventReceivedTime": "nxlog.event_received_time",
    "SourceModuleName": "nxlog.source_module_name",
    "SourceModuleType": "nxlog.source_module_type",
    "ERROR_EVT_UNRESOLVED": "winlog.error_evt_unresolved",
}
NXLOG_TIME = "EventTime"
_INT_FIELDS = ("winlog.event_id", "winlog.record_id", "winlog.process.pid",
               "winlog.process.thread.id")
WINDOWS_FORMATS = ("evtx", "winlogbeat", "nxlog", "xml")
MAX_XML_BYTES = 256 * 1024


def parse_event_xml(text: str) -> dict[str, Any]:
    """An event rendered as XML (`<Event><System>..</System><EventData><Data Name="Image">..`:
    Sysmon for Linux's syslog messages, wevtutil, Windows Event Forwarding) in the EVTX-as-JSON
    shape `flatten_windows_event` reads. ElementTree never fetches external entities, and expat
    refuses entity expansion bombs; longer records than MAX_XML_BYTES are refused."""
    if len(text) > MAX_XML_BYTES:
        raise StepFailure(f"XML event longer than {MAX_XML_BYTES} bytes")
    try:
        root = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError as exc:
        raise StepFailure(f"not an XML event: {exc}") from None
    if _local(root.tag) != "Event":
        raise StepFailure(f"XML root is <{_local(root.tag)}>, not <Event>")
    event: dict[str, Any] = {}
    for section in root:
        name = _local(section.tag)
        if name == "System":
            event["System"] = {_local(c.tag): _xml_value(c) for c in section}
        elif name in ("EventData", "UserData"):
            data: dict[str, Any] = {}
            for child in section:
                key = child.get("Name") or _local(child.tag)
                data[key] = _xml_value(child) if len(child) else (child.text or "")
            event[name] = data
    return {"Event": event}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_value(element: ElementTree.Element) -> Any:
    if len(element):
        return {_local(c.tag): _xml_value(c) for c in element}
    attributes = dict(element.attrib)
    text = element.text
    if attributes and text is not None and text.strip():
        return {ATTRIBUTES: attributes, TEXT: text}
    if attributes:
        return {ATTRIBUTES: attributes}
    return text


def detect_windows_format(doc: dict[str, Any]) -> str | None:
    """Which of the three shapes `doc` is in, or None."""
    if is_windows_event(doc):
        return "evtx"
    if isinstance(doc.get("winlog"), dict) or "winlog.event_id" in doc \
            or "winlog.channel" in doc:
        return "winlogbeat"
    if "EventID" in doc and ("SourceName" in doc or "Channel" in doc):
        return "nxlog"
    return None


def flatten_nxlog_event(doc: dict[str, Any], tz: Any = UTC) -> dict[str, Any]:
    """One NXLog im_msvistalog record in Vigil's `windows.event` field names."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == NXLOG_TIME:
            stamp = _nxlog_time(value, tz)
            if stamp is not None:
                out["@timestamp"] = stamp
            else:
                out["winlog.time_created"] = value
            continue
        target = NXLOG_SYSTEM_FIELDS.get(key)
        if target is None:
            out[f"winlog.event_data.{key}"] = value
        elif target == "log.level" and isinstance(value, str):
            out[target] = value.lower()
        else:
            out[target] = value
    if "winlog.computer_name" in out:
        out["host.hostname"] = out["winlog.computer_name"]
    return add_spaceless_names(out)


def flatten_winlogbeat_event(doc: dict[str, Any]) -> dict[str, Any]:
    """A Winlogbeat document (nested objects) as flat dotted fields."""
    out = flatten_object({k: v for k, v in doc.items() if not k.startswith("vigil.")})
    created = out.get("@timestamp")
    if isinstance(created, str):
        stamp = parse_system_time(created)
        if stamp is not None:
            out["@timestamp"] = stamp
    if "winlog.computer_name" in out:
        out.setdefault("host.hostname", out["winlog.computer_name"])
    return add_spaceless_names(out)


def _nxlog_time(value: Any, tz: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return parse_system_time(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


class WindowsEventConfig(StepConfig):
    """Bring a Windows event in any of the three JSON shapes (EVTX-as-JSON `Event.System`,
    Winlogbeat, NXLog im_msvistalog) to the `windows.event` fields: `winlog.event_id` (int),
    `winlog.channel`, `winlog.provider_name`, `winlog.computer_name` (and `host.hostname`),
    `winlog.record_id`, `winlog.event_data.<Name>`, `winlog.user_data.<Name>`, `@timestamp`."""

    type: Literal["windows_event"] = "windows_event"
    field: str | None = Field(
        None, description="field holding the record as JSON text or an object (e.g. `message` "
        "for JSON sent over syslog); absent: the event's own keys, as a JSON source decoded "
        "them")
    format: Literal["auto", "evtx", "winlogbeat", "nxlog", "xml"] = Field(
        "auto", description="the record's shape; auto: recognised by its keys; xml: `field` "
        "holds the event rendered as XML (Sysmon for Linux over syslog)")
    timezone: str = Field("UTC", description="zone of NXLog `EventTime` values written without "
                                             "an offset (NXLog writes the agent's local time)")

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        try:
            zone(self.timezone)
        except ValueError as exc:
            return [(("timezone",), str(exc))]
        return []


class WindowsEventStep(Step):
    """`type: windows_event`: a record it cannot recognise is a step failure."""

    config_model = WindowsEventConfig
    names_from_input = True

    def __init__(self, config: WindowsEventConfig, context: Any) -> None:
        super().__init__(config, context)
        self.tz = zone(config.timezone)

    def apply(self, event: Event) -> Event:
        name = self.config.field
        if name is None:
            # The record is what the sender wrote: Vigil's keys and the @timestamp the source
            # filled in are not part of it.
            doc: Any = {k: v for k, v in event.items()
                        if not k.startswith("vigil.") and k != "@timestamp"}
        elif self.config.format == "xml":
            text = event.get(name)
            if not isinstance(text, str):
                raise StepFailure(f"field {name!r} is missing or not text")
            doc = parse_event_xml(text)
        else:
            doc = object_field(event, name)
            if doc is None:
                raise StepFailure(f"field {name!r} is missing")
        shape = self.config.format
        if shape == "auto":
            detected = detect_windows_format(doc)
            if detected is None:
                raise StepFailure("not a Windows event record (no Event.System, winlog or "
                                  "EventID/Channel keys)")
            shape = detected
        fields = self._flatten(shape, doc)
        if name is None:
            # The record's keys give way to their flat names (EVTX: only `Event`; the other
            # shapes map every key); Vigil's own keys stay.
            consumed = ["Event"] if shape == "evtx" else \
                [k for k in event if not k.startswith("vigil.") and k != "@timestamp"]
            for key in consumed:
                del event[key]
        else:
            event.pop(name, None)
        event.update(fields)
        for key in _INT_FIELDS:
            value = event.get(key)
            if value is not None and not isinstance(value, int):
                event[key] = _as_int(str(value).strip())
        return event

    def _flatten(self, shape: str, doc: dict[str, Any]) -> dict[str, Any]:
        if shape in ("evtx", "xml"):
            if not is_windows_event(doc):
                raise StepFailure("not an EVTX-as-JSON record (no Event.System object)")
            return flatten_windows_event(doc)
        if shape == "winlogbeat":
            return flatten_winlogbeat_event(doc)
        if "EventID" not in doc:
            raise StepFailure("not an NXLog Windows record (no EventID)")
        return flatten_nxlog_event(doc, self.tz)
