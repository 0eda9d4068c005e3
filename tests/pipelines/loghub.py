"""Expected values of loghub's structured CSVs: each line's EventTemplate turned into a regex
whose `<*>` groups give the values, and which group is which field, per template."""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# OpenSSH_2k templates (OpenSSH_2k.log_templates.csv): the `<*>` index (or a literal the
# template itself holds) of each value the pipeline must extract. `rhost` is an address or a
# host name: it is compared with source.ip when it is an address, with source.domain if not.
OPENSSH_FIELDS: dict[str, dict[str, int | str]] = {
    "E1": {"user": 0, "ip": 1, "port": 2},
    "E2": {"ip": 0},
    "E3": {"ip": 0},
    "E4": {"user": "admin"},
    "E5": {"user": "root"},
    "E6": {"ip": 0},
    "E7": {"ip": 0},
    "E8": {"user": 0, "ip": 1, "port": 2},
    "E9": {"user": 0, "ip": 1, "port": 2},
    "E10": {"user": 0, "ip": 1, "port": 2},
    "E11": {},
    "E12": {"user": 0},
    "E13": {"user": 0, "ip": 1},
    "E14": {"count": 0, "ip": 1, "port": 2, "user": "root"},
    "E15": {"count": 0, "rhost": 3},
    "E16": {"count": 0, "rhost": 3},
    "E17": {"count": 0, "rhost": 3, "user": "root"},
    "E18": {"count": 0},      # "ignoring max retries; 6 > 3": 6 attempts
    "E19": {"rhost": 2},
    "E20": {"rhost": 2, "user": 3},
    "E21": {},
    "E22": {"user": 0},
    "E23": {"user": 0},
    "E24": {"ip": 0},
    "E25": {"ip": 0},
    "E26": {"ip": 0},
    "E27": {"ip": 1, "host": 0},
}


@dataclass
class StructuredLine:
    line_id: int
    event_id: str
    content: str
    values: list[str]
    row: dict[str, str]


def template_regex(template: str) -> re.Pattern[str]:
    """The template as a regex: each `<*>` a lazy group, the rest literal."""
    return re.compile("(.*?)".join(re.escape(part) for part in template.split("<*>")) + r"\s*")


def structured_lines(path: Path) -> Iterator[StructuredLine]:
    """Each CSV row with the values its template's `<*>` stand for (trailing blanks cut: a
    value followed by two spaces, `rhost=X  user=root`, ends before them; a leading one is the
    value's own: `Invalid user  0101` names the user ` 0101`)."""
    compiled: dict[str, re.Pattern[str]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            template = row["EventTemplate"]
            pattern = compiled.get(template)
            if pattern is None:
                pattern = compiled[template] = template_regex(template)
            match = pattern.fullmatch(row["Content"])
            if match is None:
                raise ValueError(f"line {row['LineId']}: template {template!r} does not match "
                                 f"{row['Content']!r}")
            yield StructuredLine(int(row["LineId"]), row["EventId"], row["Content"],
                                 [value.rstrip() for value in match.groups()], row)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def openssh_expectations(line: StructuredLine) -> dict[str, Any]:
    """field -> expected value for one OpenSSH line (only what its template carries)."""
    spec = OPENSSH_FIELDS[line.event_id]
    expected: dict[str, Any] = {}

    def value(key: str) -> str:
        where = spec[key]
        return where if isinstance(where, str) else line.values[where]

    if "user" in spec:
        expected["user.name"] = value("user")
    if "ip" in spec:
        expected["source.ip"] = value("ip")
    if "port" in spec:
        # E14's template ends `port <*>]` where the line ends `port 42393 ssh2]`: the port is
        # the value's first word.
        expected["source.port"] = int(value("port").split()[0])
    if "count" in spec:
        expected["event.count"] = int(value("count"))
    if "host" in spec:
        expected["source.domain"] = value("host")
    if "rhost" in spec:
        rhost = value("rhost")
        expected["source.ip" if is_ip(rhost) else "source.domain"] = rhost
    return expected
