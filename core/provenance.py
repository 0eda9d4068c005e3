"""Provenance: the keys the daemon owns on every event, and the checks that keep them its own.

`vigil.tenant`, `vigil.source`, `vigil.dataset`, `vigil.received_at` and `vigil.offset` come from
the source's stamping, the journal partition and the pipeline's config, never from what a sender
wrote: a step configured to write one is refused at validation (`written_field_issues`), a value
a step derives from input is dropped and the stamp kept (`Stamps`), and every path component a
sink builds from a tenant, dataset, date or hour is checked once more (`path_component`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from core.config import DATASET_RE, TENANT_ID_RE
from core.errors import VigilError
from core.events import (
    DATASET,
    OFFSET,
    QUARANTINE,
    RECEIVED_AT,
    SOURCE,
    TENANT,
    Event,
)

# The keys no sender, step, enricher or rule may create or change.
PROVENANCE: tuple[str, ...] = (TENANT, SOURCE, DATASET, RECEIVED_AT, OFFSET)
_PROVENANCE_SET = frozenset(PROVENANCE)
# A sender's top-level object that flattening (`nest`, `json`) would turn into `vigil.*` keys;
# sources keep it, like a sender's flat `vigil.*` keys, under `payload.`.
SENDER_NAMESPACE = "vigil"
MOVED_PREFIX = "payload."


class UnsafePathComponent(VigilError):
    """A tenant, dataset, date or hour that may not become a directory name; nothing is
    written with it."""


def is_provenance(name: str) -> bool:
    """Whether `name` is a key only the daemon writes."""
    return name in _PROVENANCE_SET


def reaches_provenance(prefix: str) -> bool:
    """Whether a key starting with `prefix` can be a provenance key."""
    return bool(prefix) and any(key.startswith(prefix) for key in PROVENANCE)


# What a step is configured to write: (key path in the step's config, field name, whether the
# name is a prefix standing for every key that starts with it).
WrittenName = tuple[tuple[Any, ...], str, bool]


def written_field_issues(names: Iterable[WrittenName]) -> list[tuple[tuple[Any, ...], str]]:
    """Config issues for what a step would write: a provenance key, or a prefix under which
    input could write one, is refused at its key path."""
    issues = []
    for loc, name, is_prefix in names:
        if is_provenance(name):
            issues.append((loc, f"{name!r} is provenance that only the daemon sets "
                                f"({', '.join(PROVENANCE)}); write another field"))
        elif is_prefix and reaches_provenance(name):
            issues.append((loc, f"keys under {name!r} could be provenance that only the daemon "
                                f"sets ({', '.join(PROVENANCE)}); use another prefix"))
    return issues


def under(target: str | None, prefix: str = "") -> str:
    """The prefix of keys a step writes under `target.` (plus a key prefix)."""
    return f"{target}.{prefix}" if target else prefix


def disown_sender_provenance(event: Event) -> int:
    """Before a source stamps an event: provenance keys it already holds (which only the input
    can have put there) are dropped, and a top-level `vigil` object is kept as `payload.vigil`
    (as JSON sources keep a sender's `vigil.*` keys); returns how many were found."""
    found = 0
    for key in (TENANT, SOURCE, RECEIVED_AT, OFFSET):
        if key in event:
            del event[key]
            found += 1
    if SENDER_NAMESPACE in event:
        event[MOVED_PREFIX + SENDER_NAMESPACE] = event.pop(SENDER_NAMESPACE)
        found += 1
    return found


class Stamps:
    """An event's provenance as it entered a pipeline; `restore` puts back whatever a step
    changed, added or removed, and says how many keys it had to put back. Cheap: the runner
    calls it after every step that names keys from the input, and once at the end."""

    __slots__ = ("tenant", "source", "dataset", "received_at", "offset")

    def __init__(self, event: Event) -> None:
        get = event.get
        self.tenant = get(TENANT)
        self.source = get(SOURCE)
        self.dataset = get(DATASET)
        self.received_at = get(RECEIVED_AT)
        self.offset = get(OFFSET)

    def restore(self, event: Event) -> int:
        """Re-stamp `event`; the number of provenance keys that differed."""
        get = event.get
        if (get(TENANT) is self.tenant and get(SOURCE) is self.source
                and get(DATASET) is self.dataset and get(RECEIVED_AT) is self.received_at
                and get(OFFSET) is self.offset):
            return 0  # the common case: nothing touched them
        changed = 0
        for key, value in ((TENANT, self.tenant), (SOURCE, self.source),
                           (DATASET, self.dataset), (RECEIVED_AT, self.received_at),
                           (OFFSET, self.offset)):
            current = get(key)
            if current is value or (type(current) is type(value) and current == value):
                continue
            changed += 1
            if value is None:
                del event[key]
            else:
                event[key] = value
        return changed


_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HOUR_RE = re.compile(r"\d{2}")


def is_partition_tenant(value: object) -> bool:
    """A journal partition name: a declared tenant's slug or the quarantine."""
    return isinstance(value, str) and (value == QUARANTINE or TENANT_ID_RE.fullmatch(value)
                                       is not None)


_COMPONENTS = {
    "tenant": is_partition_tenant,
    "dataset": lambda v: isinstance(v, str) and DATASET_RE.fullmatch(v) is not None,
    "date": lambda v: isinstance(v, str) and _DATE_RE.fullmatch(v) is not None,
    "hour": lambda v: isinstance(v, str) and _HOUR_RE.fullmatch(v) is not None,
}


def path_component(kind: str, value: object) -> str:
    """`value` when it may be the `kind` (tenant, dataset, date, hour) part of a sink's path;
    raises UnsafePathComponent otherwise (a bug upstream: tenants come from the journal
    partition, datasets from the configuration)."""
    if not _COMPONENTS[kind](value):
        raise UnsafePathComponent(f"refusing to build a path from {kind} {str(value)[:120]!r}: "
                                  f"not a valid {kind}")
    assert isinstance(value, str)
    return value
