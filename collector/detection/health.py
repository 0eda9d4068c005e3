"""Data-source health alerts: a sender whose clock is off becomes an alert of a built-in rule
(`CLOCK_SKEW_RULE`) through the same alert path as detections, once per (tenant, sender) while
it stays flagged (the alert tracker folds repeats), and a per-tenant count in a gauge."""

from __future__ import annotations

from datetime import datetime

from core.telemetry import Telemetry
from rules.correlation.clocks import SkewedSender
from rules.match import Match, RuleInfo

CLOCK_SKEW_RULE = RuleInfo(
    id="vigil-source-health-clock-skew", title="Sender clock is off", level="medium",
    severity="medium", kind="rule", status="stable",
    description="A device's event times run ahead of when Vigil receives them (or, in a replay, "
    "of the tenant's other devices) by more than detection.correlation.max_clock_skew. Its "
    "events are correlated at their receive time; fix the device's time source (NTP).",
    tags=("vigil.source_health",), product="vigil", category="source_health",
    suppress_by=("host.hostname",))


class SourceHealth:
    """Turns the correlation engine's skewed senders into alerts and a gauge."""

    def __init__(self, telemetry: Telemetry | None) -> None:
        self.telemetry = telemetry
        self.flagged: set[tuple[str, str]] = set()
        self.counts: dict[str, int] = {}

    def update(self, skewed: list[SkewedSender], now: datetime) -> list[Match]:
        """Alerts for senders flagged since the last update; the gauge for every tenant."""
        current = {(s.tenant, s.sender) for s in skewed}
        out = [Match(rule=CLOCK_SKEW_RULE, tenant=s.tenant, dataset=None, events=[],
                     first_seen=now, last_seen=now, group_key={"host.hostname": s.sender},
                     value=s.seconds)
               for s in skewed if (s.tenant, s.sender) not in self.flagged]
        self.flagged = current
        counts: dict[str, int] = dict.fromkeys(self.counts, 0)
        for tenant, _ in current:
            counts[tenant] = counts.get(tenant, 0) + 1
        if self.telemetry is not None:
            for tenant, count in counts.items():
                if self.counts.get(tenant) != count:
                    self.telemetry.detection_skewed_senders.labels(tenant).set(count)
        self.counts = counts
        return out
