"""The detection stage: after the pipelines, every tenant's events against its active rules.

Per batch: field coverage is counted (activation is recomputed for a tenant when a dataset or a
field appears for the first time), the engine evaluates the tenant's active rules (single-event
and correlation), and matches become alerts (deduplicated by `AlertTracker`) in an `alerts`
batch of the same tenant and offsets, which the alert store and the lake take.

Durability: correlation windows and open alerts are saved to `<data_dir>/state/detection.json`
every `state_interval` (a save the disk refuses is counted and retried a second later, the state
kept in memory); until then the stage holds the offsets of batches that changed that
state as uncommitted, so the worker acknowledges a journal position only once the state that
counted it is saved (batches that matched nothing are not held). A
replay after a crash therefore starts at or before the saved state, and replayed events are
recognised by their offsets (correlation windows, alerts) instead of counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

import rules as rules_package
from collector.config import VigilConfig
from collector.config.models import DetectionConfig
from collector.detection.alerts import AlertTracker
from collector.detection.health import CLOCK_SKEW_RULE, SourceHealth
from collector.poison import PoisonReport, offset_span, poison_record
from collector.routing import QUARANTINE
from core.durable import WriteEpisodes, write_atomic
from core.events import (
    ALERTS,
    DEAD_LETTERS,
    EVENTS,
    OFFSET,
    RECEIVED_AT,
    TIMESTAMP,
    Batch,
    Event,
)
from core.telemetry import Telemetry
from rules.correlation.engine import CorrelationEngine
from rules.coverage import (
    FieldCoverage,
    activation,
    correlation_requirements,
)
from rules.engine import DetectionEngine
from rules.loader import RuleSet, RuleSource, load_rules
from rules.match import Match, RuleInfo
from rules.state import Ownership, merge_coverage, merge_detection, read_docs

log = logging.getLogger(__name__)

BUILTIN_RULES = Path(rules_package.__file__).resolve().parent / "library"
STATE_VERSION = 1
COVERAGE_SAVE_SECONDS = 60.0
SAVE_RETRY_SECONDS = 1.0  # a save the disk refused is tried again this much later
STATE_WRITER = "detection_state"
COVERAGE_WRITER = "coverage_state"


def rule_sources(config: VigilConfig, conf_dir: Path) -> list[RuleSource]:
    """The built-in library (unless switched off) and every `rules:` entry of the config."""
    sources = []
    if config.settings.detection.builtin_rules and BUILTIN_RULES.is_dir():
        sources.append(RuleSource(BUILTIN_RULES))
    for entry in config.section("rules").values():
        path = entry.path if entry.path.is_absolute() else conf_dir / entry.path
        sources.append(RuleSource(path, entry.tenant))
    return sources


def rule_cache_dir(data_dir: Path) -> Path:
    """Where the compiled-rule cache lives (rules/cache.py)."""
    return data_dir / "cache" / "rules"


def load_ruleset(config: VigilConfig, conf_dir: Path, data_dir: Path | None = None) -> RuleSet:
    """Load every configured rule (through the compiled-rule cache under `data_dir`, if
    given); a rule that fails is logged with its file and skipped."""
    tenants = config.tenants
    placeholders: dict[str | None, dict[str, list[str]]] = {
        None: config.settings.detection.placeholders,
        **{tid: t.rules.placeholders for tid, t in tenants.items()}}
    started = time.perf_counter()
    ruleset = load_rules(rule_sources(config, conf_dir), placeholders=placeholders,
                         tenants=sorted(tenants),
                         cache_dir=rule_cache_dir(data_dir) if data_dir is not None else None)
    cache = ruleset.cache
    for error in ruleset.errors:
        log.warning("rule not loaded", extra={"file": error.file, "reason": error.reason})
    log.info("rules loaded", extra={"rules": len(ruleset.rules),
                                    "correlations": len(ruleset.correlations),
                                    "errors": len(ruleset.errors),
                                    "unserved": len(ruleset.unserved),
                                    "inactive": len(ruleset.inactive),
                                    "seconds": round(time.perf_counter() - started, 3),
                                    "cached_files": cache.hits if cache else 0,
                                    "compiled_files": cache.misses if cache else None})
    return ruleset


class DetectionStage:
    """Coverage, activation, evaluation and alerting for every tenant; one per daemon."""

    def __init__(self, config: VigilConfig, conf_dir: Path, data_dir: Path,
                 telemetry: Telemetry | None, clock: Callable[[], datetime],
                 ruleset: RuleSet | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 ownership: Ownership | None = None) -> None:
        self.settings: DetectionConfig = config.settings.detection
        self.clock = clock
        self.monotonic = monotonic
        self.telemetry = telemetry
        self.ruleset = (ruleset if ruleset is not None
                        else load_ruleset(config, conf_dir, data_dir))
        correlation = self.settings.correlation
        self.engine = DetectionEngine(self.ruleset, correlation=CorrelationEngine(
            self.ruleset.correlations, lateness=correlation.lateness,
            max_keys=correlation.max_keys, max_events=correlation.max_events, clock=clock,
            max_skew=correlation.max_clock_skew, max_senders=correlation.max_senders))
        # Every rule (single-event, served by no dataset, correlations): what activation
        # decides on and `vigil coverage` reports, each with whether it alerts on its own.
        singles = self.ruleset.requirements()
        self.requirements = singles + correlation_requirements(self.ruleset.correlations,
                                                               singles)
        self.alerting_requirements = self.requirements
        self.source_health = SourceHealth(telemetry)
        self.coverage = FieldCoverage(self.settings.activation.window)
        self.alerts = AlertTracker(self.settings.suppression, self.settings.max_alert_events)
        self.switches = {tenant: (frozenset(t.rules.enable), frozenset(t.rules.disable))
                         for tenant, t in config.tenants.items()}
        # A worker process keeps its tenants' state in its own files (collector.processes).
        self.ownership = ownership or Ownership()
        self.state_dir = data_dir / "state"
        self.state_path = self.ownership.path(self.state_dir, "detection")
        self.coverage_path = self.ownership.path(self.state_dir, "coverage")
        self.unsaved: dict[str, int] = {}  # partition -> first offset processed since the save
        self.last_offset: dict[str, int] = {}
        self.on_saved: Callable[[dict[str, Any]], None] | None = None
        self.watermarks: dict[str, datetime] = {}
        self._saved_at = monotonic()
        self._coverage_saved_at = monotonic()
        self._coverage_changed = False
        self._stats_reported: dict[str, int] = {}
        self._logged_active: dict[str, set[str]] = {}
        self.storage = telemetry.storage if telemetry is not None else WriteEpisodes()
        self.report = PoisonReport(telemetry, monotonic)
        if telemetry is not None:
            telemetry.detection_rules.set(len(self.ruleset.rules))
            telemetry.detection_rule_errors.set(len(self.ruleset.errors))
            if (cache := self.ruleset.cache) is not None:
                for result, count in (("hit", cache.hits), ("miss", cache.misses),
                                      ("uncached", cache.uncached), ("invalid", cache.invalid),
                                      ("write_error", cache.write_errors)):
                    if count:
                        telemetry.detection_rule_cache.labels(result=result).inc(count)

    # -- processing -----------------------------------------------------------------------

    def process(self, batches: list[Batch]) -> list[Batch]:
        """The pipelines' batches plus one `alerts` batch per batch that produced alerts."""
        out = list(batches)
        now = self.clock()
        for batch in batches:
            tenant = batch.partition
            if batch.kind != EVENTS or tenant == QUARANTINE or not batch.events:
                continue
            self.last_offset[tenant] = batch.last_offset
            dataset = batch.dataset or "unknown"
            try:
                matches = self._evaluate(tenant, dataset, batch.events, batch.first_offset, now)
            except Exception:
                matches, poison = self._evaluate_each(tenant, dataset, batch, now)
                dead = self._dead_letter_batch(batch, poison, now)
                if dead is not None:
                    out.append(dead)
            if matches:
                out.append(self._alert_batch(tenant, matches, batch.first_offset,
                                             batch.last_offset, now))
        return out

    def _evaluate(self, tenant: str, dataset: str, events: list[Event], first_offset: int,
                  now: datetime) -> list[Match]:
        """Coverage, activation and the tenant's rules over events of one dataset."""
        self._advance_watermark(tenant, events)
        if self.coverage.observe(tenant, dataset, events, now):
            self.activate(tenant)
            # A new dataset or field: saved at the next tick, so what reads the saved coverage
            # (the API in the main process when workers count, `vigil coverage`) sees it now.
            self._coverage_changed = True
        changes = self.engine.state_changes
        try:
            matches = self.engine.evaluate(dataset, events, tenant)
        finally:
            if self.engine.state_changes != changes:
                self.unsaved.setdefault(tenant, first_offset)
        if matches:
            # The batch changed state that is saved (windows, learned values, alerts): its
            # offsets wait for the save. Batches that matched nothing need not.
            self.unsaved.setdefault(tenant, first_offset)
        return matches

    def _evaluate_each(self, tenant: str, dataset: str, batch: Batch, now: datetime
                       ) -> tuple[list[Match], list[tuple[Event, Exception]]]:
        """After the batch raised: each event alone; the ones that raise again leave the batch
        (poison), the others are evaluated as usual."""
        matches: list[Match] = []
        kept: list[Event] = []
        poison: list[tuple[Event, Exception]] = []
        for event in batch.events:
            offset = event.get(OFFSET)
            try:
                matches.extend(self._evaluate(
                    tenant, dataset, [event],
                    offset if isinstance(offset, int) else batch.first_offset, now))
            except Exception as exc:
                poison.append((event, exc))
            else:
                kept.append(event)
        batch.events[:] = kept  # the lake takes what detection could evaluate
        return matches, poison

    def _dead_letter_batch(self, batch: Batch, poison: list[tuple[Event, Exception]],
                           now: datetime) -> Batch | None:
        if not poison:
            return None
        tenant = batch.partition
        records = [poison_record(event, tenant, "detection", exc, now) for event, exc in poison]
        first, last = offset_span([e for e, _ in poison], (batch.first_offset, batch.last_offset))
        self.report("detection", tenant, len(poison), poison[0][1])
        if self.telemetry is not None:
            self.telemetry.dead_letters(tenant, len(poison))
        return Batch(tenant, records, first, last, None, kind=DEAD_LETTERS)

    def _alert_batch(self, tenant: str, matches: list[Match], first: int, last: int,
                     now: datetime) -> Batch:
        by_id: dict[str, Event] = {}
        for match in matches:
            alert = self.alerts.add(match, now)
            record = by_id[alert.id] = alert.record()  # the latest state of each alert, once
            # The offset of the event that produced this state: a replay trims the row with the
            # events it came from and writes it again, so the lake holds each state once.
            offsets = [ref.offset for ref in match.events if ref.offset is not None]
            record[OFFSET] = max(offsets) if offsets else last
        if self.telemetry is not None:
            self.telemetry.detection_matches.labels(tenant).inc(len(matches))
        return Batch(tenant, list(by_id.values()), first, last, "alerts", kind=ALERTS)

    def _advance_watermark(self, tenant: str, events: list[Event]) -> None:
        skew = self.settings.correlation.max_clock_skew
        for event in (events[0], events[-1]):
            ts = event.get(TIMESTAMP)
            received = event.get(RECEIVED_AT)
            if isinstance(ts, datetime) and isinstance(received, datetime) \
                    and ts - received > skew:
                ts = received  # a sender's clock running ahead does not expire alerts early
            if isinstance(ts, datetime) and (tenant not in self.watermarks
                                             or ts > self.watermarks[tenant]):
                self.watermarks[tenant] = ts

    def activate(self, tenant: str) -> set[str]:
        """Recompute the tenant's active rules from its coverage and switches."""
        enabled, disabled = self.switches.get(tenant, (frozenset(), frozenset()))
        result = activation(self.requirements, self.coverage.totals(tenant),
                            self.settings.activation, enabled, disabled)
        active = result.active_ids
        self.engine.set_tenant_rules(tenant, active=active, enabled=enabled, disabled=disabled)
        if self.telemetry is not None:
            self.telemetry.detection_active_rules.labels(tenant).set(result.active_count)
        if self._logged_active.get(tenant) != active:  # on change only: new fields arrive often
            self._logged_active[tenant] = set(active)
            log.info("rules activated", extra={"tenant": tenant,
                                               "active_rules": result.active_count})
        return active

    # -- tick -----------------------------------------------------------------------------

    def tick(self) -> list[Batch]:
        """Close correlation windows (alerts of `lt`-type rules), forget expired alerts, save
        state when due; returns alert batches to hand to the sinks."""
        now = self.clock()
        out = []
        by_tenant: dict[str, list[Match]] = {}
        for match in self.engine.correlation.flush(now=now):
            by_tenant.setdefault(match.tenant, []).append(match)
        for match in self.source_health.update(self.engine.correlation.skewed_senders(), now):
            by_tenant.setdefault(match.tenant, []).append(match)
        for tenant, matches in by_tenant.items():
            # Fired by time passing: attach them to the last offset the tenant had processed.
            offset = max(self.last_offset.get(tenant, 0), 0)
            self.unsaved.setdefault(tenant, offset)
            out.append(self._alert_batch(tenant, matches, offset, offset, now))
        self.alerts.expire(self.watermarks)
        if self.monotonic() - self._saved_at >= self.settings.state_interval.total_seconds():
            self._save_or_retry(self.save, STATE_WRITER)
        since = self.monotonic() - self._coverage_saved_at
        if since >= COVERAGE_SAVE_SECONDS or (self._coverage_changed
                                              and since >= SAVE_RETRY_SECONDS):
            self._save_or_retry(self.save_coverage, COVERAGE_WRITER)
        self._report_stats()
        return out

    def _save_or_retry(self, save: Callable[[], None], writer: str) -> bool:
        """Save; when the disk refuses, count it and keep the state (and the held offsets,
        which the journal's bound turns into backpressure) for a retry after a short wait."""
        try:
            save()
        except OSError as exc:
            self.storage.failed(writer, exc)
            retry_at = self.monotonic() + SAVE_RETRY_SECONDS
            if writer == STATE_WRITER:
                self._saved_at = retry_at - self.settings.state_interval.total_seconds()
            else:
                self._coverage_saved_at = retry_at - COVERAGE_SAVE_SECONDS
            return False
        self.storage.succeeded(writer)
        return True

    def uncommitted_floor(self, partition: str) -> int | None:
        """Offsets at or after this were counted in state not yet saved."""
        return self.unsaved.get(partition)

    # -- state ----------------------------------------------------------------------------

    def save(self) -> None:
        """Correlation windows and open alerts, atomically; releases the held offsets."""
        data = {"version": STATE_VERSION, "correlation": self.engine.correlation.dump(),
                "new_values": self.engine.new_values.dump(), "alerts": self.alerts.dump(),
                "watermarks": {t: w.isoformat() for t, w in self.watermarks.items()},
                "owned": self.ownership.owned_list()}
        write_atomic(self.state_path, orjson.dumps(data, default=str))
        self.unsaved.clear()
        self._saved_at = self.monotonic()
        if self.on_saved is not None:  # the cluster worker's checkpoint to JetStream
            self.on_saved(data)

    def save_coverage(self) -> None:
        self.coverage.save(self.coverage_path)
        self._coverage_saved_at = self.monotonic()
        self._coverage_changed = False

    def restore(self) -> None:
        """Load saved state and coverage, then activate every tenant seen before."""
        now = self.clock()
        coverage = merge_coverage(read_docs(self.state_dir, "coverage"), self.ownership)
        if coverage is not None:
            self.coverage.load(coverage, now)
        # Every process's file: a tenant's state follows it to the worker that owns it now.
        data = merge_detection(read_docs(self.state_dir, "detection"), self.ownership,
                               STATE_VERSION)
        if data is not None:
            self.load_state(data)
        for tenant in self.coverage.tenants():
            self.activate(tenant)

    def load_state(self, data: dict[str, Any]) -> None:
        """Add a saved detection state document (from `save`, or one tenant's part of it) to
        the running state."""
        if data.get("version") != STATE_VERSION:
            log.warning("detection state of another version ignored")
            return
        keys = self.engine.correlation.load(data.get("correlation") or {})
        self.engine.new_values.load(data.get("new_values") or [])
        infos: dict[tuple[str, str | None], RuleInfo] = {
            (r.info.id, r.info.tenant): r.info for r in self.ruleset.rules}
        infos.update({(c.info.id, c.info.tenant): c.info for c in self.ruleset.correlations})
        infos[(CLOCK_SKEW_RULE.id, None)] = CLOCK_SKEW_RULE
        alerts = self.alerts.load(data.get("alerts") or [], infos)
        for tenant, text in (data.get("watermarks") or {}).items():
            self.watermarks[tenant] = datetime.fromisoformat(text)
        log.info("detection state restored", extra={"correlation_keys": keys,
                                                    "open_alerts": alerts})

    def state_tenants(self) -> set[str]:
        """The tenants this stage holds detection state of."""
        return {*self.engine.correlation.tenants, *(t for t, _ in self.engine.new_values.keys),
                *(a.tenant for a in self.alerts.open.values()), *self.watermarks,
                *self.unsaved, *self.last_offset}

    def forget(self, tenants: Iterable[str]) -> None:
        """Drop the detection state of `tenants` (a cluster worker whose shard moved on: the
        next owner continues from the checkpoint, and this worker, should the shard come back,
        from the checkpoint again, never from what it held before). Coverage stays."""
        for tenant in tenants:
            self.engine.correlation.forget(tenant)
            self.engine.new_values.forget(tenant)
            self.alerts.forget(tenant)
            for held in (self.watermarks, self.unsaved, self.last_offset):
                held.pop(tenant, None)

    def adopt(self, previous: DetectionStage) -> None:
        """Take over another stage's state (a reload built this one with new rules)."""
        self.coverage = previous.coverage
        self.engine.correlation.load(previous.engine.correlation.dump())
        self.engine.new_values = previous.engine.new_values
        self.alerts.open = previous.alerts.open
        self.unsaved = previous.unsaved
        self.last_offset = previous.last_offset
        self.watermarks = previous.watermarks
        self.source_health = previous.source_health  # senders already alerted on
        for tenant in self.coverage.tenants():
            self.activate(tenant)

    def close(self) -> bool:
        """Save state and coverage; False when the disk refused (the held offsets stay
        unacknowledged, so the next start replays them)."""
        saved = self._save_or_retry(self.save, STATE_WRITER)
        return self._save_or_retry(self.save_coverage, COVERAGE_WRITER) and saved

    def _report_stats(self) -> None:
        if self.telemetry is None:
            return
        stats = {**self.engine.correlation.stats, "suppressed": self.alerts.suppressed,
                 "new_value_evicted": self.engine.new_values.evicted}
        for name, value in stats.items():
            delta = value - self._stats_reported.get(name, 0)
            if delta > 0:
                self.telemetry.detection_events.labels(name).inc(delta)
            self._stats_reported[name] = value
        self.telemetry.detection_correlation_keys.set(self.engine.correlation.key_count())

    def health(self) -> dict[str, Any]:
        return {"rules": len(self.ruleset.rules), "correlations": len(self.ruleset.correlations),
                "rule_errors": len(self.ruleset.errors), "open_alerts": len(self.alerts.open),
                "correlation_keys": self.engine.correlation.key_count()}

