"""The `geoip` step: country, city, region, location and AS of IP fields from MaxMind databases.

Reads GeoIP2/GeoLite2 City (or Country) and ASN databases with maxminddb directly (its `get`
is several times faster than geoip2's model objects, see benchmarks/bench_enrichers.py), behind
an LRU cache of results per address string. For a field `source.ip` it writes
`source.geo.country_iso_code`, `.geo.country_name`, `.geo.city_name`, `.geo.region_name`,
`.geo.location.lat`, `.geo.location.lon`, `source.as.number`, `source.as.organization.name`.

The location is two float fields rather than one `{"lat", "lon"}` object: a flat event keeps
one value per key, and the lake then stores two float columns (declare them `float` in the
pipeline schema) that DuckDB/Athena can filter and aggregate, where an object would become a
JSON string column. Elasticsearch reads the dotted pair as a geo_point all the same.

Addresses that are not public (private, loopback, link-local, multicast, reserved, documentation,
shared address space) are skipped without a lookup, and so are values that are not IP addresses:
neither fails the event; both are counted in `GeoipStep.counts`.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import maxminddb
from pydantic import Field, field_validator, model_validator

from core.addresses import Address, parse_address
from core.config import ConfigIssue, ValidationContext
from core.events import Event
from core.provenance import WrittenName, under
from core.reloading import (
    EnrichmentFileError,
    ReloadingFile,
    file_stats,
    missing_file_message,
)
from core.step import Step, StepConfig, StepContext, StepResult

log = logging.getLogger(__name__)

DEFAULT_FIELDS = ["source.ip", "destination.ip"]

# Suffixes written under each prefix, in the order of the cached result tuples.
CITY_SUFFIXES = ("geo.country_iso_code", "geo.country_name", "geo.city_name", "geo.region_name",
                 "geo.location.lat", "geo.location.lon")
ASN_SUFFIXES = ("as.number", "as.organization.name")
SUFFIXES = CITY_SUFFIXES + ASN_SUFFIXES

# Which database types each key accepts (substring of the file's metadata `database_type`).
CITY_TYPES = ("City", "Country", "Enterprise")
ASN_TYPES = ("ASN", "ISP")

MODES = {"mmap": maxminddb.MODE_AUTO, "memory": maxminddb.MODE_MEMORY}

# Non-tuple lookup results (cached like the tuples): why an address got no fields.
INVALID = "invalid"
NOT_PUBLIC = "not_public"
NOT_FOUND = "not_found"


class GeoipConfig(StepConfig):
    type: Literal["geoip"] = "geoip"
    city_database: Path | None = Field(
        None, description="GeoIP2/GeoLite2 City (or Country) .mmdb; relative to conf.d")
    asn_database: Path | None = Field(
        None, description="GeoLite2 ASN (or GeoIP2 ISP) .mmdb; relative to conf.d")
    fields: list[str] | dict[str, str] = Field(
        default_factory=lambda: list(DEFAULT_FIELDS),
        description="IP fields to look up; results go under the field minus `.ip` "
        "(`source.ip` -> `source.geo.*`, `source.as.*`); a map gives `field: prefix`")
    language: str = Field("en", description="language of country, city and region names")
    cache_size: int = Field(10_000, ge=0, description="addresses whose results are cached "
                                                     "(LRU); 0 disables the cache")
    mode: Literal["mmap", "memory"] = Field(
        "mmap", description="mmap: the C reader maps the file (fast; update the file by "
        "replacing it, as geoipupdate does, never by rewriting it in place); memory: the file "
        "is read into memory (safe against in-place rewrites, slower lookups)")

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        if not value:
            raise ValueError("name at least one IP field")
        return value

    @model_validator(mode="after")
    def _some_database(self) -> GeoipConfig:
        if self.city_database is None and self.asn_database is None:
            raise ValueError("give `city_database`, `asn_database` or both")
        return self

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        for key, path in (("city_database", self.city_database),
                          ("asn_database", self.asn_database)):
            if path is None:
                continue
            try:
                open_database(context.resolve(path), key, self.mode).close()
            except EnrichmentFileError as exc:
                issues.append(((key,), str(exc)))
        return issues

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("fields", source) if isinstance(self.fields, dict) else ("fields",),
                 under(prefix), True) for source, prefix in self.targets()]

    def targets(self) -> list[tuple[str, str]]:
        """(IP field, output prefix) pairs."""
        if isinstance(self.fields, dict):
            return list(self.fields.items())
        return [(name, name.removesuffix(".ip")) for name in self.fields]


def open_database(path: Path, key: str, mode: str = "mmap") -> maxminddb.Reader:
    """Open and check one database; EnrichmentFileError says what is wrong with it."""
    problem = missing_file_message("GeoIP database", path)
    if problem:
        raise EnrichmentFileError(problem)
    try:
        reader = maxminddb.open_database(str(path), MODES[mode])
    except OSError as exc:
        raise EnrichmentFileError(f"cannot open GeoIP database {path}: "
                                  f"{exc.strerror or exc}") from None
    except (maxminddb.InvalidDatabaseError, ValueError):
        raise EnrichmentFileError(f"not a valid MaxMind DB file: {path}") from None
    db_type = str(reader.metadata().database_type)
    accepted = CITY_TYPES if key == "city_database" else ASN_TYPES
    if not any(kind in db_type for kind in accepted):
        reader.close()
        wanted = "a City or Country" if key == "city_database" else "an ASN or ISP"
        raise EnrichmentFileError(f"{path} is a {db_type!r} database; {key} needs {wanted} "
                                  "database")
    return reader


def _is_public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


def _ipv4_public_ranges() -> tuple[list[int], list[bool]]:
    """IPv4 cut where any network the standard library's `is_global` / `is_multicast` consult
    starts or ends, with the answer for each piece (the same for every address in it): one
    bisection instead of testing a dozen networks per address."""
    networks = [ipaddress.IPv4Network("100.64.0.0/10")]  # named inside IPv4Address.is_global
    for value in vars(ipaddress._IPv4Constants).values():  # type: ignore[attr-defined]
        for item in value if isinstance(value, (list, tuple, frozenset, set)) else (value,):
            if isinstance(item, ipaddress.IPv4Network):
                networks.append(item)
    cuts = {0}
    for network in networks:
        cuts.add(int(network.network_address))
        if int(network.broadcast_address) < 2 ** 32 - 1:
            cuts.add(int(network.broadcast_address) + 1)
    starts = sorted(cuts)
    return starts, [_is_public(ipaddress.IPv4Address(start)) for start in starts]


try:  # the networks are private to `ipaddress`: without them, test each address as it is
    _V4_STARTS, _V4_PUBLIC = _ipv4_public_ranges()
except AttributeError:  # pragma: no cover - a Python that reorganised ipaddress
    _V4_STARTS, _V4_PUBLIC = [], []


def is_public(address: Address) -> bool:
    """Whether an address can have a location: globally routable unicast."""
    if address.version == 4 and _V4_STARTS:
        return _V4_PUBLIC[bisect.bisect_right(_V4_STARTS, int(address)) - 1]
    return _is_public(address)


@dataclass
class GeoipCounts:
    """What happened to the addresses the step saw (a cache hit counts like a lookup)."""

    enriched: int = 0
    not_found: int = 0
    not_public: int = 0
    invalid: int = 0


class GeoipStep(Step):
    """`type: geoip`."""

    config_model = GeoipConfig

    def __init__(self, config: GeoipConfig, context: StepContext) -> None:
        super().__init__(config, context)
        self.language = config.language
        self.targets = [(field, tuple(f"{prefix}.{suffix}" for suffix in SUFFIXES))
                        for field, prefix in config.targets()]
        self.databases: dict[str, ReloadingFile[maxminddb.Reader]] = {}
        for key, path in (("city_database", config.city_database),
                          ("asn_database", config.asn_database)):
            if path is not None:
                self.databases[key] = ReloadingFile(
                    context.resolve(path),
                    functools.partial(open_database, key=key, mode=config.mode),
                    what=f"geoip {key}")
        self.counts = GeoipCounts()
        self.lookup: Callable[[str], tuple[Any, ...] | str] = self._lookup
        if config.cache_size:
            self.lookup = functools.lru_cache(maxsize=config.cache_size)(self._lookup)
        self._bind_readers()

    def stats(self) -> dict[str, int]:
        return file_stats(self.databases.values(), dataclasses.asdict(self.counts))

    def _bind_readers(self) -> None:
        city = self.databases.get("city_database")
        asn = self.databases.get("asn_database")
        self._city = city.value if city else None
        self._asn = asn.value if asn else None

    def _lookup(self, text: str) -> tuple[Any, ...] | str:
        """The values for SUFFIXES (None where unknown), or why there are none."""
        address = parse_address(text)
        if address is None:
            return INVALID
        if not is_public(address):
            return NOT_PUBLIC
        values: list[Any] = [None] * len(SUFFIXES)
        if self._city is not None:
            record = self._city.get(address)
            if isinstance(record, dict):
                self._city_values(record, values)
        if self._asn is not None:
            record = self._asn.get(address)
            if isinstance(record, dict):
                values[6] = record.get("autonomous_system_number")
                values[7] = record.get("autonomous_system_organization")
        if all(v is None for v in values):
            return NOT_FOUND
        return tuple(values)

    def _city_values(self, record: dict[str, Any], values: list[Any]) -> None:
        language = self.language
        country = record.get("country") or {}
        values[0] = country.get("iso_code")
        values[1] = (country.get("names") or {}).get(language)
        values[2] = ((record.get("city") or {}).get("names") or {}).get(language)
        subdivisions = record.get("subdivisions") or [{}]
        # The first subdivision is the largest (state, region), which ECS region_name means.
        values[3] = (subdivisions[0].get("names") or {}).get(language)
        location = record.get("location") or {}
        values[4] = location.get("latitude")
        values[5] = location.get("longitude")

    def apply(self, event: Event) -> Event:
        for field, names in self.targets:
            value = event.get(field)
            if value is None:
                continue
            if not isinstance(value, str):
                self.counts.invalid += 1
                continue
            self._store(event, names, self.lookup(value))
        return event

    def apply_batch(self, events: list[Event]) -> StepResult:
        """One lookup per distinct address of the batch (per target field), whatever the
        cache holds; each event then takes its address's values."""
        for field, names in self.targets:
            found: dict[str, tuple[Any, ...] | str] = {}
            lookup = self.lookup
            for event in events:
                value = event.get(field)
                if value is None:
                    continue
                if not isinstance(value, str):
                    self.counts.invalid += 1
                    continue
                result = found.get(value)
                if result is None:
                    result = found[value] = lookup(value)
                self._store(event, names, result)
        return StepResult(list(events))

    def _store(self, event: Event, names: tuple[str, ...], result: tuple[Any, ...] | str
               ) -> None:
        """Write a lookup's values into `event` and count the outcome."""
        counts = self.counts
        if type(result) is tuple:
            for name, value in zip(names, result, strict=True):
                if value is not None:
                    event[name] = value
            counts.enriched += 1
        elif result == NOT_PUBLIC:
            counts.not_public += 1
        elif result == NOT_FOUND:
            counts.not_found += 1
        else:
            counts.invalid += 1

    def maintain(self) -> None:
        """Switch to a database file that changed (MaxMind publishes weekly)."""
        replaced = []
        for loaded in self.databases.values():
            previous = loaded.value
            if loaded.refresh():
                replaced.append(previous)
        if replaced:
            self._bind_readers()
            cache_clear = getattr(self.lookup, "cache_clear", None)
            if cache_clear is not None:
                cache_clear()
            for reader in replaced:
                reader.close()

    def close(self) -> None:
        for loaded in self.databases.values():
            loaded.value.close()
