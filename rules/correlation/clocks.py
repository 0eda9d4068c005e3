"""Event time per sender: which device's clock an event's `@timestamp` comes from, how far that
clock may move a tenant's correlation state, and which senders' clocks are off.

- A sender is the first of `SENDER_FIELDS` an event carries (host, observer, peer address, the
  Vigil source id); each (tenant, sender) keeps its own watermark, so an event is late only
  against its own device's earlier events, never because another device runs ahead.
- An event stamped more than `max_skew` after its receive time (`vigil.received_at`) is judged
  against the receive clock: its time is clamped to when it was received and its sender flagged.
- The tenant's mark (which closes and prunes windows) is the second-highest sender watermark
  (the only one when there is one), so no single sender moves it.
- A sender is also flagged when, with three or more senders, its latest event is more than
  `max_skew` ahead of the senders' median offset from the receive clock and its own offset is
  not within `max_skew` (a replay of old logs: the receive clock says nothing, the peers do).
- Senders per tenant are bounded (least recently seen evicted first).
"""

from __future__ import annotations

import statistics
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SENDER_FIELDS = ("host.hostname", "host.name", "observer.hostname", "observer.name",
                 "log.source.address", "vigil.source")
RECEIVED_FIELD = "vigil.received_at"
RECEIVE_CLOCK = "receive time"
PEERS = "other senders"
MIN_PEERS = 3  # senders needed before a majority can say one clock is off


@dataclass
class SenderClock:
    watermark: float = float("-inf")
    offset: float | None = None  # latest event time minus its receive time (seconds)


@dataclass(frozen=True)
class SkewedSender:
    """A sender whose clock is ahead: by how many seconds, judged against what."""

    tenant: str
    sender: str
    seconds: float
    basis: str  # RECEIVE_CLOCK or PEERS


@dataclass
class SenderClocks:
    """The event-time state of one tenant's senders."""

    max_senders: int = 10_000
    senders: OrderedDict[str, SenderClock] = field(default_factory=OrderedDict)
    top: list[tuple[float, str]] = field(default_factory=list)  # two highest watermarks
    evicted: int = 0

    def sender_of(self, event: dict[str, Any]) -> str:
        for name in SENDER_FIELDS:
            value = event.get(name)
            if value is not None and value != "":
                return str(value)
        return ""

    def admit(self, event: dict[str, Any], ts: float, max_skew: float, lateness: float
              ) -> tuple[float, bool, bool]:
        """Judge one event's time: (time to use, clamped, late)."""
        name = self.sender_of(event)
        clock = self.senders.get(name)
        if clock is None:
            if len(self.senders) >= self.max_senders:
                self.senders.popitem(last=False)
                self.evicted += 1
            clock = self.senders[name] = SenderClock()
        else:
            self.senders.move_to_end(name)
        received = _received(event.get(RECEIVED_FIELD))
        clamped = False
        if received is not None:
            clock.offset = ts - received
            if clock.offset > max_skew:
                ts, clamped = received, True
        if ts < clock.watermark - lateness:
            return ts, clamped, True
        if ts > clock.watermark:
            clock.watermark = ts
            self._raise(name, ts)
        return ts, clamped, False

    def _raise(self, name: str, watermark: float) -> None:
        top = [item for item in self.top if item[1] != name]
        top.append((watermark, name))
        top.sort(reverse=True)
        self.top = top[:2]

    def mark(self) -> float:
        """The tenant's event-time mark: the second-highest sender watermark."""
        if not self.top:
            return float("-inf")
        return self.top[-1][0]

    def skewed(self, tenant: str, max_skew: float) -> list[SkewedSender]:
        """Senders whose latest event says their clock runs more than `max_skew` ahead."""
        offsets = [c.offset for c in self.senders.values() if c.offset is not None]
        median = statistics.median(offsets) if len(offsets) >= MIN_PEERS else None
        out = []
        for name, clock in self.senders.items():
            if clock.offset is None:
                continue
            if clock.offset > max_skew:
                out.append(SkewedSender(tenant, name, round(clock.offset, 3), RECEIVE_CLOCK))
            elif (median is not None and clock.offset - median > max_skew
                  and abs(clock.offset) > max_skew):
                out.append(SkewedSender(tenant, name, round(clock.offset - median, 3), PEERS))
        return sorted(out, key=lambda s: (-s.seconds, s.sender))

    def dump(self) -> dict[str, list[float | None]]:
        return {name: [c.watermark if c.watermark != float("-inf") else None, c.offset]
                for name, c in self.senders.items()}

    def load(self, saved: dict[str, list[float | None]]) -> None:
        for name, (watermark, offset) in saved.items():
            clock = self.senders.setdefault(name, SenderClock())
            if watermark is not None and watermark > clock.watermark:
                clock.watermark = float(watermark)
                self._raise(name, clock.watermark)
            if offset is not None:
                clock.offset = float(offset)
        while len(self.senders) > self.max_senders:
            self.senders.popitem(last=False)


def _received(value: Any) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str):
        try:
            return _received(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None

