"""Sigma correlation rules evaluated over a stream, with per-tenant windows on event time.

Semantics:
- Event time is the event's `@timestamp` (aware datetime or ISO text; the injected clock when it
  is missing). Event-time state is kept per (tenant, sender) (`clocks.py`): an event older than
  its own sender's watermark minus `lateness` (default 60 s) is too late: it is dropped from
  correlation and counted in `stats["late_dropped"]`; a late event within the tolerance is
  inserted in time order. An event stamped more than `max_skew` (default 5 min) after its
  receive time takes its receive time (`stats["clock_clamped"]`) and its sender is reported by
  `skewed_senders`. The tenant's mark, which closes windows, is the second-highest sender
  watermark, so one device whose clock runs ahead never makes the others' events late.
- On every base-rule match the window `[t - timespan, t]` of that (tenant, rule, group key) is
  evaluated (for a late event also the window ending at the latest event within `timespan`
  after it); `gt`/`gte`/`eq`/`neq` conditions fire as soon as they hold, and the key's window
  is then cleared, so the next alert needs a fresh set of events. `lt`/`lte` conditions ("fewer
  than N") are evaluated when a key's window closes (the watermark has passed its last event by
  `timespan + lateness`), from `observe` or `flush`.
- `temporal` fires when every referenced rule (or the extended boolean condition) is present in
  one window; `temporal_ordered` when the rules occur in the listed order within the timespan.
- State is bounded: per (tenant, correlation) at most `max_keys` group keys (least recently
  updated evicted first, counted in `stats["evicted_keys"]`), per key at most `max_events`
  entries (oldest dropped, `stats["truncated_events"]`), and keys whose window closed are expired
  (`stats["expired_keys"]`). `save`/`restore` write and read the state as JSON.
- An event that stands for several (syslogd's `message repeated N times: [ ... ]`, PAM's
  `N more authentication failures`: `event.count` N) weighs N in an `event_count`; other
  measures count it once.
"""

from __future__ import annotations

import bisect
import logging
import math
import statistics
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationType,
    SigmaRuleReference,
)

from core.durable import write_atomic
from rules.correlation.clocks import SenderClocks, SkewedSender
from rules.correlation.rule import CorrelationRule
from rules.correlation.values import (
    Clock,
    as_number,
    epoch_seconds,
    first_value,
    plain,
    utc_now,
    weight_of,
)
from rules.match import EventRef, Match

if TYPE_CHECKING:
    from rules.loader import CompiledRule

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_REFS = 50  # event references carried by one correlation match
SWEEP_EVERY = 1024  # observations per tenant between expiry sweeps

_OPS: dict[SigmaCorrelationConditionOperator, Callable[[float, float], bool]] = {
    SigmaCorrelationConditionOperator.LT: lambda a, b: a < b,
    SigmaCorrelationConditionOperator.LTE: lambda a, b: a <= b,
    SigmaCorrelationConditionOperator.GT: lambda a, b: a > b,
    SigmaCorrelationConditionOperator.GTE: lambda a, b: a >= b,
    SigmaCorrelationConditionOperator.EQ: lambda a, b: a == b,
    SigmaCorrelationConditionOperator.NEQ: lambda a, b: a != b,
}
_AT_CLOSE = {SigmaCorrelationConditionOperator.LT, SigmaCorrelationConditionOperator.LTE}


@dataclass
class Entry:
    ts: float  # epoch seconds
    rule: str  # base rule id
    value: Any
    ref: EventRef
    weight: int = 1  # occurrences this event stands for (event.count)


@dataclass
class Bucket:
    entries: list[Entry] = field(default_factory=list)
    dataset: str | None = None
    keys: list[float] = field(default_factory=list)  # entry timestamps, for bisect
    # Every entry weighs one (no folded `event.count` line seen): an event_count is then the
    # width of the window's index range, without a pass over its entries per event.
    unit: bool = True
    # Entries per base rule id: an ordered temporal correlation cannot match while one of its
    # rules is absent from the whole bucket, so it is not measured (a pass over the window).
    rules: Counter[str] = field(default_factory=Counter)


@dataclass
class TenantState:
    watermark: float = float("-inf")  # the tenant's mark (see SenderClocks.mark)
    observed: int = 0
    windows: dict[str, OrderedDict[tuple[Any, ...], Bucket]] = field(default_factory=dict)
    clocks: SenderClocks = field(default_factory=SenderClocks)
    # Per correlation, a bound below every group's latest event time: a sweep whose closing
    # time is not past it has nothing to close and skips the scan of every group. Absent
    # (restored windows): unknown, the next sweep scans and sets it.
    oldest: dict[str, float] = field(default_factory=dict)


class CorrelationEngine:
    """Per-tenant correlation windows fed with base-rule matches."""

    def __init__(self, correlations: list[CorrelationRule], *,
                 lateness: timedelta = timedelta(seconds=60), max_keys: int = 10_000,
                 max_events: int = 10_000, clock: Clock = utc_now,
                 max_skew: timedelta = timedelta(minutes=5), max_senders: int = 10_000) -> None:
        self.correlations = {c.key: c for c in correlations}
        self.lateness = lateness.total_seconds()
        self.max_keys = max_keys
        self.max_events = max_events
        self.max_skew = max_skew.total_seconds()
        self.max_senders = max_senders
        self.clock = clock
        self.tenants: dict[str, TenantState] = {}
        self.stats = {"late_dropped": 0, "evicted_keys": 0, "expired_keys": 0,
                      "truncated_events": 0, "fired": 0, "clock_clamped": 0,
                      "evicted_senders": 0}

    # -- feeding -----------------------------------------------------------------------------

    def observe(self, tenant: str, rule: CompiledRule, dataset: str, event: dict[str, Any],
                ref: EventRef) -> list[Match]:
        """Record one base-rule match; return the correlation matches it completes."""
        state = self._state(tenant)
        evicted = state.clocks.evicted
        ts, clamped, late = state.clocks.admit(
            event, epoch_seconds(event.get("@timestamp"), self.clock), self.max_skew,
            self.lateness)
        self.stats["evicted_senders"] += state.clocks.evicted - evicted
        self.stats["clock_clamped"] += clamped
        if late:
            self.stats["late_dropped"] += 1
            return []
        state.watermark = state.clocks.mark()
        out: list[Match] = []
        for correlation in rule.correlations:
            if correlation.info.tenant not in (None, tenant):
                continue
            out.extend(self._observe_one(state, tenant, correlation, rule, dataset, event, ref, ts))
        state.observed += 1
        if state.observed % SWEEP_EVERY == 0:
            out.extend(self._sweep(state, tenant, state.watermark))
        return out

    def _observe_one(self, state: TenantState, tenant: str, correlation: CorrelationRule,
                     rule: CompiledRule, dataset: str, event: dict[str, Any], ref: EventRef,
                     ts: float) -> list[Match]:
        slot = (rule.position, dataset)
        group = tuple([first_value(event, keys) for keys in correlation.group_keys.get(slot, ())])
        value = None
        if slot in correlation.value_keys:
            value = first_value(event, correlation.value_keys[slot])
            if value is None and correlation.type is not SigmaCorrelationType.EVENT_COUNT:
                return []
        windows = state.windows.get(correlation.key)
        if windows is None:
            windows = state.windows[correlation.key] = OrderedDict()
            state.oldest[correlation.key] = math.inf
        bucket = windows.get(group)
        if bucket is None:
            if len(windows) >= self.max_keys:
                windows.popitem(last=False)
                self.stats["evicted_keys"] += 1
            bucket = windows[group] = Bucket(dataset=dataset)
        else:
            windows.move_to_end(group)
        if bucket.dataset != dataset:
            bucket.dataset = None
        position = bisect.bisect_right(bucket.keys, ts)
        if ref.offset is not None:
            # A journal replay feeds events again: one already in the window must not count
            # twice (same tenant partition, same offset, same base rule; same time by nature).
            for entry in bucket.entries[bisect.bisect_left(bucket.keys, ts):position]:
                if entry.ref.offset == ref.offset and entry.rule == rule.info.id:
                    return []
        weight = weight_of(event)
        bucket.keys.insert(position, ts)
        bucket.entries.insert(position, Entry(ts, rule.info.id, plain(value), ref, weight))
        bucket.rules[rule.info.id] += 1
        if weight != 1:
            bucket.unit = False
        horizon = state.watermark - correlation.timespan - self.lateness
        cut = bisect.bisect_left(bucket.keys, horizon)
        if len(bucket.entries) - cut > self.max_events:
            self.stats["truncated_events"] += len(bucket.entries) - cut - self.max_events
            cut = len(bucket.entries) - self.max_events
        if cut:
            bucket.rules.subtract(e.rule for e in bucket.entries[:cut])
            del bucket.entries[:cut], bucket.keys[:cut]
        if correlation.key in state.oldest:
            latest = bucket.keys[-1] if bucket.keys else -math.inf  # empty: closes at once
            if latest < state.oldest[correlation.key]:
                state.oldest[correlation.key] = latest
        if correlation.op in _AT_CLOSE:
            return []
        # The window ending at this event; for a late event also the one ending at the latest
        # event it can share a window with (events after it, within the timespan).
        ends = [ts]
        later = bisect.bisect_right(bucket.keys, ts + correlation.timespan)
        if later and bucket.keys[later - 1] > ts:
            ends.append(bucket.keys[later - 1])
        if correlation.type is SigmaCorrelationType.TEMPORAL_ORDERED and not all(
                bucket.rules[r.info.id] > 0 for r in correlation.base_rules):
            return []
        counting = bucket.unit and correlation.type is SigmaCorrelationType.EVENT_COUNT
        for end in ends:
            lo = bisect.bisect_left(bucket.keys, end - correlation.timespan)
            hi = bisect.bisect_right(bucket.keys, end)
            measured = hi - lo if counting else self._measure(correlation,
                                                              bucket.entries[lo:hi])
            if measured is not None and _OPS[correlation.op](measured, correlation.threshold):
                del windows[group]
                return [self._match(tenant, correlation, group, bucket.dataset,
                                    bucket.entries[lo:hi], measured)]
        return []

    def _measure(self, correlation: CorrelationRule, window: list[Entry]) -> float | None:
        kind = correlation.type
        if not window:
            return None if kind in (SigmaCorrelationType.TEMPORAL,
                                    SigmaCorrelationType.TEMPORAL_ORDERED) else 0
        if kind is SigmaCorrelationType.EVENT_COUNT:
            return sum(e.weight for e in window)
        if kind is SigmaCorrelationType.VALUE_COUNT:
            return len({e.value for e in window if e.value is not None})
        if kind is SigmaCorrelationType.TEMPORAL:
            present = {e.rule for e in window}
            if correlation.extended is not None:
                return len(present) if _extended(correlation, present) else None
            return len(present)
        if kind is SigmaCorrelationType.TEMPORAL_ORDERED:
            if correlation.extended is not None and not _extended(
                    correlation, {e.rule for e in window}):
                return None
            order = [r.info.id for r in correlation.base_rules]
            return len(order) if _in_order(window, order) else None
        numbers = [n for n in (as_number(e.value) for e in window) if n is not None]
        if not numbers:
            return None
        if kind is SigmaCorrelationType.VALUE_SUM:
            return sum(numbers)
        if kind is SigmaCorrelationType.VALUE_AVG:
            return sum(numbers) / len(numbers)
        if kind is SigmaCorrelationType.VALUE_MEDIAN:
            return float(statistics.median(numbers))
        if kind is SigmaCorrelationType.VALUE_PERCENTILE:
            ordered = sorted(numbers)
            rank = (correlation.percentile or 50) / 100 * (len(ordered) - 1)
            return ordered[round(rank)]
        return None

    def _match(self, tenant: str, correlation: CorrelationRule, group: tuple[Any, ...],
               dataset: str | None, window: list[Entry], measured: float) -> Match:
        self.stats["fired"] += 1
        first = datetime.fromtimestamp(window[0].ts, UTC) if window else None
        last = datetime.fromtimestamp(window[-1].ts, UTC) if window else None
        value: float | int = int(measured) if float(measured).is_integer() else measured
        return Match(rule=correlation.info, tenant=tenant, dataset=dataset,
                     events=[e.ref for e in window[-MAX_REFS:]], first_seen=first,
                     last_seen=last, group_key=dict(zip(correlation.group_names, group,
                                                        strict=True)), value=value)

    # -- time --------------------------------------------------------------------------------

    def flush(self, tenant: str | None = None, now: datetime | None = None) -> list[Match]:
        """Expire closed windows (firing `lt`/`lte` ones); `now` also advances the watermark."""
        out: list[Match] = []
        for name, state in list(self.tenants.items()):
            if tenant is not None and name != tenant:
                continue
            mark = state.watermark
            if now is not None:
                mark = max(mark, now.timestamp() - self.lateness)
            out.extend(self._sweep(state, name, mark))
        return out

    def _sweep(self, state: TenantState, tenant: str, mark: float) -> list[Match]:
        out: list[Match] = []
        for key, windows in state.windows.items():
            correlation = self.correlations.get(key)
            if correlation is None:
                continue
            closed_before = mark - correlation.timespan - self.lateness
            if state.oldest.get(key, -math.inf) >= closed_before:
                continue  # no group's latest event is old enough to close
            closed = [g for g, b in windows.items() if not b.keys or b.keys[-1] < closed_before]
            for group in closed:
                bucket = windows.pop(group)
                self.stats["expired_keys"] += 1
                if correlation.op in _AT_CLOSE and bucket.entries:
                    window = [e for e in bucket.entries
                              if e.ts <= bucket.entries[0].ts + correlation.timespan]
                    measured = self._measure(correlation, window)
                    if measured is not None and _OPS[correlation.op](measured,
                                                                     correlation.threshold):
                        out.append(self._match(tenant, correlation, group, bucket.dataset,
                                               window, measured))
            state.oldest[key] = min((b.keys[-1] for b in windows.values() if b.keys),
                                    default=math.inf)
        return out

    def _state(self, tenant: str) -> TenantState:
        state = self.tenants.get(tenant)
        if state is None:
            state = self.tenants[tenant] = TenantState(
                clocks=SenderClocks(max_senders=self.max_senders))
        return state

    def skewed_senders(self, tenant: str | None = None) -> list[SkewedSender]:
        """Senders (of one tenant or all) whose clock runs more than `max_skew` ahead."""
        return [s for name, state in sorted(self.tenants.items()) if tenant in (None, name)
                for s in state.clocks.skewed(name, self.max_skew)]

    def key_count(self, tenant: str | None = None) -> int:
        """Group keys held (for one tenant or all): the state-size gauge."""
        return sum(len(w) for name, s in self.tenants.items() if tenant in (None, name)
                   for w in s.windows.values())

    def forget(self, tenant: str) -> None:
        """Drop a tenant's windows and clocks (its shard moved to another worker)."""
        self.tenants.pop(tenant, None)

    # -- persistence -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The state (windows per tenant, watermarks, stats) as data orjson serialises: the
        window entries stay `Entry` dataclasses, which orjson writes as objects in C, since
        building a list per event in Python made a save of a busy engine cost hundreds of
        milliseconds on the event loop. `load` takes this back, or its JSON."""
        return {
            "version": STATE_VERSION, "saved_at": self.clock().isoformat(), "stats": self.stats,
            "tenants": {
                name: {
                    "watermark": state.watermark if state.watermark != float("-inf") else None,
                    "senders": state.clocks.dump(),
                    "windows": {
                        key: [[list(group), bucket.dataset, list(bucket.entries)]
                              for group, bucket in windows.items()]
                        for key, windows in state.windows.items()
                    },
                } for name, state in self.tenants.items()
            },
        }

    def load(self, data: dict[str, Any]) -> int:
        """Restore state from `dump`; windows of correlations no longer loaded are dropped.
        Returns the number of group keys restored."""
        if data.get("version") != STATE_VERSION:
            log.warning("correlation state version mismatch, ignored")
            return 0
        restored = 0
        for name, saved in data.get("tenants", {}).items():
            state = self._state(name)
            if saved.get("watermark") is not None:
                state.watermark = max(state.watermark, float(saved["watermark"]))
            if saved.get("senders"):
                state.clocks.load(saved["senders"])
                state.watermark = state.clocks.mark()
            for key, groups in saved.get("windows", {}).items():
                if key not in self.correlations:
                    continue
                windows = state.windows.setdefault(key, OrderedDict())
                for group, dataset, entries in groups:
                    bucket = Bucket(dataset=dataset)
                    for saved_entry in entries:
                        entry = _entry(saved_entry)
                        bucket.entries.append(entry)
                        bucket.keys.append(entry.ts)
                        bucket.unit = bucket.unit and entry.weight == 1
                        bucket.rules[entry.rule] += 1
                    windows[tuple(group)] = bucket
                    restored += 1
        return restored

    def save(self, path: Path) -> None:
        """Write the state atomically (temporary file, fsync, rename)."""
        write_atomic(path, orjson.dumps(self.dump(), default=str))

    def restore(self, path: Path) -> int:
        """Load state saved by `save`; a missing file restores nothing."""
        if not path.exists():
            return 0
        return self.load(orjson.loads(path.read_bytes()))


def _in_order(window: list[Entry], order: list[str]) -> bool:
    """True when the window holds events of `order[0]`, `order[1]`, ... in that time order."""
    step = 0
    for entry in window:
        if entry.rule == order[step]:
            step += 1
            if step == len(order):
                return True
    return False


def _extended(correlation: CorrelationRule, present_ids: set[str]) -> bool:
    present = {correlation.references.get(r.position, r.info.id)
               for r in correlation.base_rules if r.info.id in present_ids}

    def walk(node: Any) -> bool:
        if isinstance(node, SigmaRuleReference):
            return node.reference in present
        if isinstance(node, CorrelationConditionAND):
            return all(walk(a) for a in node.args)
        if isinstance(node, CorrelationConditionOR):
            return any(walk(a) for a in node.args)
        if isinstance(node, CorrelationConditionNOT):
            return not walk(node.args[0])
        return False

    return walk(correlation.extended)


def _entry(saved: Entry | dict[str, Any] | list[Any]) -> Entry:
    """A window entry from `dump`: the object itself, its JSON object, or the list form that
    earlier versions saved (`[ts, rule, value, ref, weight?]`)."""
    if isinstance(saved, Entry):
        return Entry(saved.ts, saved.rule, saved.value, saved.ref, saved.weight)
    if isinstance(saved, dict):
        return Entry(float(saved["ts"]), saved["rule"], saved.get("value"),
                     _ref(saved.get("ref") or {}), int(saved.get("weight", 1)))
    ts, rule_id, value, ref, *weight = saved
    return Entry(float(ts), rule_id, value, _ref(ref), int(weight[0]) if weight else 1)


def _ref(data: dict[str, Any] | EventRef) -> EventRef:
    if isinstance(data, EventRef):
        return data
    ts = data.get("timestamp")
    return EventRef(index=int(data.get("index", -1)), offset=data.get("offset"),
                    timestamp=datetime.fromisoformat(ts) if ts else None,
                    fields=data.get("fields") or {})
