"""What every source is given and must provide.

A source turns bytes from the outside into events and hands them to `SourceContext.emit`, which
drops provenance the input carried, decides the tenant, appends to the queue with the provenance
the events share (tenant, source, receive time, dataset: stored once per journal record, put
into every event when read) and counts, once per batch.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from collector.logs import RateLimitedLog
from collector.queue import EventQueue
from collector.routing import QUARANTINE, TenantRouter
from collector.sources.shares import SourceShares
from core.config import SourceConfig
from core.errors import VigilError
from core.events import (
    DATASET,
    OFFSET,
    PARSE_ERROR,
    RECEIVED_AT,
    RESERVED_DATASETS,
    SOURCE,
    SOURCE_FAILURE,
    TENANT,
    Event,
)
from core.nesting import is_too_deep
from core.provenance import SENDER_NAMESPACE, disown_sender_provenance
from core.telemetry import ComponentTelemetry

log = logging.getLogger(__name__)
_DIGITS = re.compile(r"\d+")


def split_peer(peer: str | None) -> str:
    """The sender's host without its (ephemeral) port: `203.0.113.9:51234` -> `203.0.113.9`,
    `[2001:db8::1]:514` -> `2001:db8::1`."""
    if not peer:
        return "-"
    if peer.startswith("["):
        return peer[1:].partition("]")[0]
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else peer

# Events a source may hold while the queue refuses appends; a stream source pauses long before.
MAX_HELD_EVENTS = 100_000
# `over_bound`'s reason when a source holds its fair share of a tenant's bound: prefix + tenant.
SHARE_REASON = "share:"


class QueueUnavailable(VigilError):
    """The queue cannot take events now (journal failing, queue closing): the sender should
    retry later (HTTP 503)."""


class SourceContext:
    """The runtime services a source uses; built by the daemon for each source."""

    def __init__(self, source_id: str, config: SourceConfig, queue: EventQueue,
                 telemetry: ComponentTelemetry, router: TenantRouter,
                 clock: Callable[[], datetime], data_dir: Path | None = None,
                 conf_dir: Path | None = None) -> None:
        self.source_id = source_id
        self.config = config
        self.queue = queue
        self.telemetry = telemetry
        self.router = router
        self.clock = clock
        self.data_dir = data_dir  # where a source keeps state (e.g. a generated TLS pair)
        self.conf_dir = conf_dir  # relative paths in the configuration are relative to it
        # Events already read that the queue refused (journal failing: disk full, I/O error),
        # per tenant in arrival order with the provenance they share; appended again before
        # anything newer.
        self.held: list[tuple[str, list[Event], Event]] = []
        self.held_events = 0
        # Fair shares of each tenant's bound among sources (the daemon's, with the journal).
        self.shares: SourceShares | None = None
        self.notes = RateLimitedLog(log)  # one line per (peer, cause) a minute, not per event

    def emit(self, events: list[Event], peer: str | None = None,
             tenant: str | None = None, *, hold: bool = True, shed: bool = False
             ) -> dict[str, int]:
        """Route, stamp and enqueue events that arrived together from one peer; returns the
        last queue offset appended per tenant partition. `tenant` (an HTTP token's) decides
        for every event when it is a declared tenant; otherwise the source's routing does.

        When the queue refuses an append (the journal is failing), the events are held and
        appended again, in order, before anything newer (`retry_held`, also from the tick);
        the failing journal reports over its bound, so stream sources pause meanwhile. With
        `hold=False` (sources that acknowledge their peer) the error is raised instead. With
        `shed=True` (sources that cannot push back, UDP) the events of a tenant over its own
        bound are discarded and counted instead of queued."""
        if not events:
            return {}
        if self.held and not self.retry_held() and not hold:
            raise QueueUnavailable("events are held until the journal accepts appends again")
        by_tenant: dict[str, list[Event]] = {}
        source_id, dataset, route = self.source_id, self.config.dataset, self.router.route
        fixed = self.router.tenant_for(tenant) if tenant is not None else None
        now = self.clock()
        forged = 0
        own_dataset: set[str] = set()  # tenants with an event whose source fixed its dataset
        for event in events:
            if (TENANT in event or SOURCE in event or RECEIVED_AT in event or OFFSET in event
                    or SENDER_NAMESPACE in event):
                forged += disown_sender_provenance(event)
            owner = fixed or route(event, peer)
            # A source may fix the dataset per event (HTTP `?dataset=`), never into one the
            # daemon writes itself.
            if DATASET in event:
                own_dataset.add(owner)
                if event[DATASET] in RESERVED_DATASETS:
                    event[DATASET] = dataset
            bucket = by_tenant.get(owner)
            if bucket is None:
                by_tenant[owner] = [event]
            else:
                bucket.append(event)
        if forged:
            self.telemetry.error("provenance", "receive", forged)
        offsets = {}
        for owner, bucket in by_tenant.items():
            # Provenance every event of the append shares: stamped over anything the input
            # said, stored once per journal record (the reader puts it into each event).
            shared: Event = {TENANT: owner, SOURCE: source_id, RECEIVED_AT: now}
            if owner in own_dataset:
                for event in bucket:
                    event.setdefault(DATASET, dataset)
            else:
                shared[DATASET] = dataset
            self.telemetry.received(len(bucket), owner)
            if owner == QUARANTINE:
                self.telemetry.quarantined(len(bucket))
            if shed and self.queue.over_bound(owner):
                self.telemetry.discarded("tenant_over_bound", len(bucket))
                continue
            if self.held:  # keep arrival order behind what is already held
                self._hold(owner, bucket, shared)
                continue
            try:
                offsets[owner] = self.queue.append(owner, bucket, shared)
                if self.shares is not None:
                    self.shares.appended(source_id, owner, offsets[owner], len(bucket))
            except VigilError as exc:
                if not hold:
                    raise QueueUnavailable(str(exc)) from exc
                log.warning("queue refused events; holding them and pausing",
                            extra={"source": self.source_id, "error": str(exc)})
                self._hold(owner, bucket, shared)
        return offsets

    def over_bound(self, tenants: Iterable[str] = ()) -> str | None:
        """Why events for `tenants` should wait: "" when the whole queue is over its bound, a
        tenant's id when that tenant is over its own, `SHARE_REASON` + the tenant's id when
        this source holds its fair share of that tenant's bound, None when nothing is."""
        queue, shares, source_id = self.queue, self.shares, self.source_id
        if queue.over_bound():
            return ""
        for tenant in tenants:
            if shares is not None:
                shares.wants(source_id, tenant)
            if queue.over_bound(tenant):
                return tenant
            if shares is not None and shares.over_share(source_id, tenant):
                return SHARE_REASON + tenant
        return None

    def held_back(self, reason: str) -> bool:
        """Whether the bound `over_bound` named still holds this source back."""
        if reason.startswith(SHARE_REASON):
            tenant = reason[len(SHARE_REASON):]
            return self.queue.over_bound(tenant) or (
                self.shares is not None and self.shares.over_share(self.source_id, tenant))
        return self.queue.over_bound(reason or None)

    def when_capacity(self, callback: Callable[[], None], reason: str) -> None:
        """Call `callback` once the bound `over_bound` named has room again."""
        if reason.startswith(SHARE_REASON) and self.shares is not None:
            tenant = reason[len(SHARE_REASON):]
            self.queue.add_capacity_listener(callback, tenant,
                                             until=self.shares.has_room(self.source_id, tenant))
        else:
            self.queue.add_capacity_listener(callback, reason or None)

    def _hold(self, tenant: str, events: list[Event], shared: Event) -> None:
        room = MAX_HELD_EVENTS - self.held_events
        if room < len(events):
            # Only a source that cannot pause (UDP) gets here: the excess is counted, not kept.
            self.telemetry.discarded("queue_unavailable", len(events) - max(room, 0))
            events = events[:max(room, 0)]
        if events:
            self.held.append((tenant, events, shared))
            self.held_events += len(events)

    def retry_held(self) -> bool:
        """Append held events again, oldest first; True when none are left."""
        while self.held:
            tenant, events, shared = self.held[0]
            try:
                self.queue.append(tenant, events, shared)
            except VigilError:
                return False
            self.held.pop(0)
            self.held_events -= len(events)
            log.info("held events appended", extra={"source": self.source_id,
                                                    "events": len(events)})
        return True

    async def deliver_failure(self, reason: str, record: dict[str, Any],
                              peer: str | None = None, tenant: str | None = None) -> None:
        """Input that could not become events (an unreadable object, a bad archive): journal it
        with the reason, so it reaches the tenant's dead-letter area like a failed step would,
        and only then let the source acknowledge its peer. `record` says where it came from."""
        self.telemetry.error("source_failure", "receive")
        await self.deliver([{**record, SOURCE_FAILURE: reason}], peer, tenant)

    async def deliver(self, events: list[Event], peer: str | None = None,
                      tenant: str | None = None) -> None:
        """`emit`, then wait until the events are durable in the queue: the point after which
        a source may acknowledge them to its peer (HTTP 2xx, SQS delete, Pub/Sub ack)."""
        for partition, offset in self.emit(events, peer, tenant, hold=False).items():
            await self.queue.wait_durable(partition, offset)

    def count_parse_errors(self, events: list[Event], peer: str | None = None) -> None:
        """Count the events a source kept whole because it could not parse them, and log one
        rate-limited line per sender and cause (never the content)."""
        failed = [event for event in events if PARSE_ERROR in event]
        if failed:
            self.telemetry.error("parse", "receive", len(failed))
            host = split_peer(peer)
            for reason in {str(event[PARSE_ERROR]) for event in failed}:
                cause = _DIGITS.sub("N", reason)[:80]
                self.notes.log(logging.WARNING, f"{host}|{cause}",
                               "input kept unparsed, marked vigil.parse_error",
                               source=self.source_id, peer=host, reason=cause,
                               events=len(failed))
            too_deep = sum(1 for event in failed if is_too_deep(event))
            if too_deep:
                self.telemetry.error("too_deep", "receive", too_deep)


class Source(ABC):
    """A component that receives or pulls events."""

    config_model: ClassVar[type[SourceConfig]]
    kind: ClassVar[str] = "source"

    def __init__(self, context: SourceContext) -> None:
        self.context = context
        self.config: Any = context.config

    @abstractmethod
    async def start(self) -> None:
        """Bind listeners / start pulling; return once ready to receive."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop accepting; hand everything already read to the queue; close."""

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        """Events from lines as if each had arrived on this source on its own (`vigil process`,
        `vigil test`); sources that do not receive lines say so."""
        raise NotImplementedError(f"a {self.config.type} source does not take lines")

    def health(self) -> dict[str, Any]:
        """Detail for /readyz."""
        return {}

    def running(self) -> bool:
        """False once the source stopped receiving (for /readyz). A source serving through a
        `TcpListener` (its `listener`) runs while that listener accepts; others once started."""
        if not hasattr(self, "listener"):
            return True
        listener = self.listener
        return listener is not None and bool(listener.serving())

    def can_take_over(self, previous: Source) -> bool:
        """Whether a reload may hand `previous` (the running instance of this source id) over
        to this one with `prepare_take_over` / `take_over` instead of stop and start."""
        return False

    async def prepare_take_over(self, previous: Source) -> None:
        """Bind what this instance needs beyond what `previous` holds; raise if it cannot."""
        raise NotImplementedError

    def abort_take_over(self) -> None:
        """Undo `prepare_take_over` (another part of the reload failed)."""
        raise NotImplementedError

    def take_over(self, previous: Source) -> None:
        """Adopt `previous`'s sockets and connections; `previous` is not stopped after."""
        raise NotImplementedError

    def maintain(self) -> None:  # noqa: B027 - optional hook, most sources need none
        """Housekeeping from the daemon's tick (cheap: e.g. one `stat` per watched file)."""
