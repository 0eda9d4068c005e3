"""Windows event log records (EVTX rendered as JSON) flattened into Vigil's `windows.event` shape.

Field names follow Winlogbeat: `winlog.channel`, `winlog.event_id` (int),
`winlog.event_data.<Name>`, `winlog.user_data.<Name>` (the single wrapper element under UserData
dropped), `@timestamp`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

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
    return out


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
