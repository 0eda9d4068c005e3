"""The `leef` step: IBM QRadar's Log Event Extended Format, 1.0 and 2.0.

`LEEF:1.0|Vendor|Product|Version|EventID|key=value<TAB>key=value`; 2.0 adds a delimiter field
after the event id (`^`, or hex as `0x5E` / `x5E`; empty or absent means tab). Some devices
separate 1.0 attributes with spaces instead of tabs: when a tab-delimited event holds no tab,
values run to the next ` key=` as in CEF.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from core.step import StepFailure
from parsers.cef import (
    HEADER_FIELD,
    Decoded,
    FormatConfig,
    FormatStep,
    as_text,
    mapping_table,
    split_extension,
    to_int,
    to_ip,
    to_severity,
    to_transport,
    unescape_header,
)

_LEEF_HEADER = re.compile(r"LEEF: ?" + r"\|".join([HEADER_FIELD] * 5) + r"(?:\||$)", re.DOTALL)
_DELIMITER = re.compile(r"(?:0?[xX]([0-9A-Fa-f]{2,4})|([^|=]?))\|")


# LEEF's predefined attributes (IBM "LEEF event components") -> ECS. `devTime` stays under
# `leef.` for a `timestamp` step with the format its `devTimeFormat` names.
LEEF_ECS_FIELDS = mapping_table([
    (("src",), "source.ip", to_ip),
    (("dst",), "destination.ip", to_ip),
    (("srcPort",), "source.port", to_int),
    (("dstPort",), "destination.port", to_int),
    (("srcPostNAT",), "source.nat.ip", to_ip),
    (("dstPostNAT",), "destination.nat.ip", to_ip),
    (("srcPostNATPort",), "source.nat.port", to_int),
    (("dstPostNATPort",), "destination.nat.port", to_int),
    (("srcMAC",), "source.mac", as_text),
    (("dstMAC",), "destination.mac", as_text),
    (("srcBytes",), "source.bytes", to_int),
    (("dstBytes",), "destination.bytes", to_int),
    (("srcPackets",), "source.packets", to_int),
    (("dstPackets",), "destination.packets", to_int),
    (("totalPackets",), "network.packets", to_int),
    (("usrName",), "user.name", as_text),
    (("proto",), "network.transport", to_transport),
    (("sev",), "event.severity", to_severity),
    (("url",), "url.original", as_text),
    (("identHostName",), "host.hostname", as_text),
])


class LeefConfig(FormatConfig):
    """Decode IBM LEEF 1.0 and 2.0. Header fields go to `leef.version`, `leef.vendor`,
    `leef.product`, `leef.product_version`, `leef.event_id` (and with `ecs`, to
    `observer.vendor`, `observer.product`, `observer.version`, `event.code`)."""

    type: Literal["leef"] = "leef"
    target: str = Field("leef", description="prefix of the header fields and of attributes "
                                            "without an ECS mapping")


class LeefStep(FormatStep):
    """`type: leef`."""

    config_model = LeefConfig
    marker = "LEEF:"

    def __init__(self, config: LeefConfig, context: Any) -> None:
        super().__init__(config, context, f"{config.target}.", LEEF_ECS_FIELDS)

    def decode(self, text: str, start: int) -> Decoded:
        header = _LEEF_HEADER.match(text, start)
        if header is None:
            raise StepFailure("malformed LEEF header: expected 5 fields separated by `|` after "
                              "`LEEF:`")
        version, vendor, product, product_version, event_id = (
            unescape_header(header.group(i)) for i in range(1, 6))
        rest = header.end()
        delimiter = "\t"
        if version.startswith("2"):
            found = _DELIMITER.match(text, rest)
            if found is not None:
                rest = found.end()
                if found.group(1):
                    delimiter = chr(int(found.group(1), 16))
                elif found.group(2):
                    delimiter = found.group(2)
        fields = [("version", version), ("vendor", vendor), ("product", product),
                  ("product_version", product_version), ("event_id", event_id)]
        ecs = {"observer.vendor": vendor, "observer.product": product,
               "observer.version": product_version, "event.code": event_id}
        return fields, ecs, _pairs(text[rest:], delimiter)


def _pairs(attributes: str, delimiter: str) -> list[tuple[str, str]]:
    if delimiter == "\t" and "\t" not in attributes:
        return split_extension(attributes, "LEEF attributes")
    pairs = []
    for item in attributes.split(delimiter):
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and key:
            pairs.append((key, value))
    return pairs
