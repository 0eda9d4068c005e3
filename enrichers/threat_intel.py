"""The `threat_intel` step: match IP and domain fields against indicator lists from files.

IPs are matched against single addresses (one dict lookup on the address text) and CIDRs (one
dict per prefix length, probed from the longest prefix down: a few dict lookups whatever the
number of networks). Domains match themselves and their subdomains: a listed `evil.example`
matches `a.b.evil.example`. Files are read again when they change.

On the first match (IP fields in order, then domain fields) the event gets ECS threat fields:
`threat.enrichments.matched` (true), `threat.enrichments.matched.field` / `.atomic` / `.type`,
`threat.indicator.type` (ipv4-addr, ipv6-addr, domain-name), `threat.indicator.ip` (the event's
address, also for a CIDR match) or `threat.indicator.url.domain` (the listed domain),
`threat.indicator.name` (the indicator as listed, e.g. the CIDR), `.provider`, `.confidence` and
`.description`. ECS keeps several enrichments as a list of objects; a flat event keeps the first.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from core.addresses import parse_address
from core.config import ConfigIssue, StrictModel, ValidationContext
from core.events import Event
from core.reloading import (
    EnrichmentFileError,
    ReloadingFile,
    file_stats,
    missing_file_message,
)
from core.step import Step, StepConfig, StepContext

log = logging.getLogger(__name__)

IndicatorKind = Literal["auto", "ip", "domain"]

# `type` column values (ECS / STIX / MISP spellings) -> what the indicator is matched as.
TYPE_ALIASES: dict[str, str] = {
    "ip": "ip", "ipv4": "ip", "ipv6": "ip", "ipv4-addr": "ip", "ipv6-addr": "ip", "cidr": "ip",
    "ip-src": "ip", "ip-dst": "ip", "ip-addr": "ip",
    "domain": "domain", "domain-name": "domain", "hostname": "domain", "fqdn": "domain",
}
CSV_COLUMNS = ("indicator", "type", "provider", "confidence", "description")
MAX_EXAMPLES = 3

_DOMAIN_RE = re.compile(r"(?:[\w-]{1,63}\.)*[\w-]{1,63}")

# Fields set on a match.
MATCHED = "threat.enrichments.matched"
MATCHED_FIELD = "threat.enrichments.matched.field"
MATCHED_ATOMIC = "threat.enrichments.matched.atomic"
MATCHED_TYPE = "threat.enrichments.matched.type"
INDICATOR_TYPE = "threat.indicator.type"
INDICATOR_IP = "threat.indicator.ip"
INDICATOR_DOMAIN = "threat.indicator.url.domain"
INDICATOR_NAME = "threat.indicator.name"
INDICATOR_PROVIDER = "threat.indicator.provider"
INDICATOR_CONFIDENCE = "threat.indicator.confidence"
INDICATOR_DESCRIPTION = "threat.indicator.description"
MATCH_TYPE = "indicator_match_rule"


class IndicatorFileConfig(StrictModel):
    """One indicator file (a plain list or a CSV)."""

    path: Path = Field(description="relative to conf.d")
    format: Literal["auto", "list", "csv"] = Field(
        "auto", description="list: one indicator per line, `#` starts a comment (kept as the "
        "description), words after the indicator are ignored; csv: header with columns "
        "indicator,type,provider,confidence,description (only indicator required); "
        "auto: csv for *.csv, else list")
    type: IndicatorKind = Field("auto", description="what lines without a type are: auto "
                                                    "(an IP or CIDR if it parses, else a domain)")
    provider: str | None = Field(None, description="provider of lines that name none; "
                                                   "default: the file name without extension")
    confidence: str | None = Field(None, description="confidence of lines that give none")
    description: str | None = Field(None, description="description of lines that give none")


class ThreatIntelConfig(StepConfig):
    type: Literal["threat_intel"] = "threat_intel"
    files: list[IndicatorFileConfig] = Field(
        min_length=1, description="indicator files; a plain path string is a file with defaults")
    ip_fields: list[str] = Field(default_factory=lambda: ["source.ip", "destination.ip"],
                                 description="fields matched against IPs and CIDRs")
    domain_fields: list[str] = Field(
        default_factory=lambda: ["url.domain", "dns.question.name", "destination.domain"],
        description="fields matched against domains and their parent domains")
    cache_size: int = Field(10_000, ge=0, description="IP match results cached (LRU); "
                                                      "0 disables the cache")

    @field_validator("files", mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str) else item for item in value]
        return value

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        for index, spec in enumerate(self.files):
            try:
                read_indicator_file(context.resolve(spec.path), spec)
            except EnrichmentFileError as exc:
                issues.append((("files", index, "path"), str(exc)))
        return issues


@dataclass(frozen=True, slots=True)
class Indicator:
    """One listed indicator and what a match reports about it."""

    type: str  # ECS threat.indicator.type
    name: str  # as listed (normalised): an address, a CIDR or a domain
    provider: str | None = None
    confidence: str | None = None
    description: str | None = None


@dataclass
class IndicatorFile:
    """What one file held: networks and domains, and the lines that were skipped."""

    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Indicator]] = \
        field(default_factory=list)
    domains: list[tuple[str, Indicator]] = field(default_factory=list)
    invalid: int = 0
    unsupported: int = 0
    examples: list[str] = field(default_factory=list)

    def skip(self, line: int, text: str, *, unsupported: bool = False) -> None:
        if unsupported:
            self.unsupported += 1
        else:
            self.invalid += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {line}: {text[:80]!r}")


def normalize_domain(text: str) -> str | None:
    """`Evil.Example.` -> `evil.example`; a leading `*.` means the same as the bare domain."""
    domain = text.strip().lower().rstrip(".").removeprefix("*.")
    return domain if _DOMAIN_RE.fullmatch(domain) else None


def classify(text: str, kind: str, provider: str | None, confidence: str | None,
             description: str | None, into: IndicatorFile, line: int) -> None:
    """Add one indicator text to `into`, or count it as skipped."""
    if kind in ("auto", "ip"):
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            pass
        else:
            if network.version == 6 and network.prefixlen >= 96 and \
                    network.network_address.ipv4_mapped is not None:  # type: ignore[union-attr]
                mapped = network.network_address.ipv4_mapped  # type: ignore[union-attr]
                network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
            ecs_type = "ipv4-addr" if network.version == 4 else "ipv6-addr"
            name = str(network.network_address) if network.num_addresses == 1 else str(network)
            into.networks.append((network, Indicator(ecs_type, name, provider, confidence,
                                                     description)))
            return
    if kind in ("auto", "domain"):
        domain = normalize_domain(text)
        # A word without a dot is a domain only when the file says so (`type: domain`): in a
        # plain list it is far more often a stray word than a top-level domain.
        if domain and (kind == "domain" or "." in domain):
            into.domains.append((domain, Indicator("domain-name", domain, provider, confidence,
                                                   description)))
            return
    into.skip(line, text)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, line


def read_indicator_file(path: Path, spec: IndicatorFileConfig) -> IndicatorFile:
    """Parse one file; EnrichmentFileError when the file as a whole is unusable. Lines that are
    not indicators are counted and skipped: a feed with a bad line still loads."""
    problem = missing_file_message("indicator file", path)
    if problem:
        raise EnrichmentFileError(problem)
    try:
        # A stray byte in a third-party feed spoils one line, not the file.
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise EnrichmentFileError(f"cannot read indicator file {path}: {exc}") from None
    fmt = spec.format
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() == ".csv" else "list"
    provider = spec.provider if spec.provider is not None else path.stem
    parsed = IndicatorFile()
    if fmt == "list":
        for number, line in _lines(text):
            entry, _, comment = line.partition("#")
            words = entry.replace(",", " ").split()
            if not words:
                continue
            classify(words[0], spec.type, provider, spec.confidence,
                     comment.strip() or spec.description, parsed, number)
    else:
        _read_csv(path, text, spec, provider, parsed)
    if parsed.invalid or parsed.unsupported:
        log.warning("indicator file lines skipped",
                    extra={"path": str(path), "invalid": parsed.invalid,
                           "unsupported_type": parsed.unsupported,
                           "examples": "; ".join(parsed.examples)})
    return parsed


def _read_csv(path: Path, text: str, spec: IndicatorFileConfig, provider: str | None,
              parsed: IndicatorFile) -> None:
    numbered = list(_lines(text))
    reader = csv.reader(line for _, line in numbered)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if "indicator" not in header:
            raise EnrichmentFileError(
                f"indicator file {path} has no 'indicator' column in its header (expected "
                f"{','.join(CSV_COLUMNS)}; found {','.join(header) or 'nothing'})")
        positions = {name: header.index(name) for name in CSV_COLUMNS if name in header}
        for cells in reader:
            number = numbered[reader.line_num - 1][0]
            row = {name: cells[i].strip() for name, i in positions.items() if i < len(cells)}
            text_value = row.get("indicator", "")
            if not text_value:
                parsed.skip(number, ",".join(cells))
                continue
            kind = spec.type
            declared = row.get("type", "").lower()
            if declared:
                found = TYPE_ALIASES.get(declared)
                if found is None:
                    parsed.skip(number, f"{declared}: {text_value}", unsupported=True)
                    continue
                kind = found  # type: ignore[assignment]
            classify(text_value, kind, row.get("provider") or provider,
                     row.get("confidence") or spec.confidence,
                     row.get("description") or spec.description, parsed, number)
    except csv.Error as exc:
        raise EnrichmentFileError(f"indicator file {path} line {reader.line_num}: {exc}") \
            from None


class IndicatorIndex:
    """Every indicator of every file, arranged for lookups; the first file listing an indicator
    wins."""

    def __init__(self, files: list[IndicatorFile]) -> None:
        self.exact: dict[str, Indicator] = {}
        buckets: dict[int, dict[int, dict[int, Indicator]]] = {4: {}, 6: {}}
        self.domains: dict[str, Indicator] = {}
        for parsed in files:
            for network, indicator in parsed.networks:
                if network.num_addresses == 1:
                    self.exact.setdefault(str(network.network_address), indicator)
                bucket = buckets[network.version].setdefault(network.prefixlen, {})
                bucket.setdefault(int(network.network_address), indicator)
            for domain, indicator in parsed.domains:
                self.domains.setdefault(domain, indicator)
        bits = {4: 32, 6: 128}
        # Longest prefix first, so the most specific network answers.
        self.networks = {
            version: [(((1 << bits[version]) - 1) ^ ((1 << (bits[version] - plen)) - 1), table)
                      for plen, table in sorted(by_len.items(), reverse=True)]
            for version, by_len in buckets.items()}
        self.size = len(self.domains) + sum(len(t) for v in buckets.values() for t in v.values())

    def match_ip(self, text: str) -> Indicator | None:
        """The indicator an address falls under, or None (also for non-addresses)."""
        found = self.exact.get(text)
        if found is not None:
            return found
        address = parse_address(text)
        if address is None:
            return None
        number = int(address)
        for mask, table in self.networks[address.version]:
            found = table.get(number & mask)
            if found is not None:
                return found
        return None

    def match_domain(self, text: str) -> Indicator | None:
        """The indicator for the domain or its nearest listed parent domain, or None."""
        domain = text.strip().lower().rstrip(".")
        domains = self.domains
        while domain:
            found = domains.get(domain)
            if found is not None:
                return found
            dot = domain.find(".")
            if dot < 0:
                return None
            domain = domain[dot + 1:]
        return None


def load_indicators(specs: list[tuple[Path, IndicatorFileConfig]]) -> list[
        ReloadingFile[IndicatorFile]]:
    """One reloading file per configured indicator file."""
    return [ReloadingFile(path, functools.partial(read_indicator_file, spec=spec),
                          what="indicator file") for path, spec in specs]


@dataclass
class ThreatIntelCounts:
    matched: int = 0


class ThreatIntelStep(Step):
    """`type: threat_intel`."""

    config_model = ThreatIntelConfig

    def __init__(self, config: ThreatIntelConfig, context: StepContext) -> None:
        super().__init__(config, context)
        self.files = load_indicators([(context.resolve(s.path), s) for s in config.files])
        self.ip_fields = list(config.ip_fields)
        self.domain_fields = list(config.domain_fields)
        self.counts = ThreatIntelCounts()
        self._rebuild()

    def _rebuild(self) -> None:
        self.index = IndicatorIndex([f.value for f in self.files])
        self.match_ip: Callable[[str], Indicator | None] = self.index.match_ip
        if self.config.cache_size:
            self.match_ip = functools.lru_cache(maxsize=self.config.cache_size)(
                self.index.match_ip)

    def apply(self, event: Event) -> Event:
        for name in self.ip_fields:
            value = event.get(name)
            if value is not None:
                for text in (value,) if type(value) is str else _strings(value):
                    found = self.match_ip(text)
                    if found is not None:
                        return self._mark(event, name, text, found, INDICATOR_IP, text.strip())
        match_domain = self.index.match_domain
        for name in self.domain_fields:
            value = event.get(name)
            if value is not None:
                for text in (value,) if type(value) is str else _strings(value):
                    found = match_domain(text)
                    if found is not None:
                        return self._mark(event, name, text, found, INDICATOR_DOMAIN, found.name)
        return event

    def _mark(self, event: Event, field_name: str, value: str, indicator: Indicator,
              key: str, key_value: str) -> Event:
        self.counts.matched += 1
        event[MATCHED] = True
        event[MATCHED_FIELD] = field_name
        event[MATCHED_ATOMIC] = value
        event[MATCHED_TYPE] = MATCH_TYPE
        event[INDICATOR_TYPE] = indicator.type
        event[key] = key_value
        event[INDICATOR_NAME] = indicator.name
        for name, item in ((INDICATOR_PROVIDER, indicator.provider),
                           (INDICATOR_CONFIDENCE, indicator.confidence),
                           (INDICATOR_DESCRIPTION, indicator.description)):
            if item is not None:
                event[name] = item
        return event

    def stats(self) -> dict[str, int]:
        return file_stats(self.files, dataclasses.asdict(self.counts))

    def maintain(self) -> None:
        """Re-read indicator files that changed and rebuild the index once."""
        changed = [f.refresh() for f in self.files]
        if any(changed):
            self._rebuild()


def _strings(value: Any) -> list[str]:
    """The strings of a list value (e.g. `related.ip`); nothing for other types."""
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []
