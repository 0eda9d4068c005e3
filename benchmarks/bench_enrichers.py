"""Per-step benchmark of the enrichers: geoip (cache on/off, maxminddb vs geoip2, LRU kinds),
lookup and threat_intel with 10k indicators, on one core, in process.

Databases, tables and indicator lists are generated (seeded) into a temporary directory; events
draw their addresses from a skewed pool, as real traffic repeats a few talkers. Each figure is
the best of several rounds. The last line printed is one JSON object.
`python -m benchmarks.bench_enrichers` (BENCH_EVENTS: events per round, BENCH_NETWORKS: networks
in the GeoIP databases).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import os
import random
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import geoip2.database
import maxminddb
import orjson

from core.events import Event
from core.step import Step, StepContext
from enrichers.geoip import GeoipConfig, GeoipStep
from enrichers.geoip_testdb import (
    CITY_RECORDS,
    asn_record,
    city_record,
    write_asn_database,
    write_city_database,
)
from enrichers.lookup import LookupConfig, LookupStep
from enrichers.threat_intel import ThreatIntelConfig, ThreatIntelStep

DEFAULT_EVENTS = 100_000
ROUNDS = 3
NETWORKS = int(os.environ.get("BENCH_NETWORKS", 5_000))  # /24s in the generated databases
TALKERS = 20_000  # distinct public addresses events draw from (more than the default cache)
INDICATORS = 10_000
TABLE_ROWS = 10_000
SEED = 20261123


def best_rate(run: Callable[[], int], rounds: int = ROUNDS) -> float:
    """Items per second of the fastest of `rounds` runs (`run` returns how many it did)."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        done = run()
        elapsed = time.perf_counter() - start
        best = max(best, done / elapsed)
    return round(best)


def best_rates(runs: dict[str, Callable[[], int]], rounds: int = ROUNDS) -> dict[str, float]:
    """`best_rate` of several runs measured in interleaved rounds, for side-by-side figures."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for label, run in runs.items():
            best[label] = max(best[label], best_rate(run, rounds=1))
    return best


def step_rate(step: Step, events: list[Event], reset: Callable[[], None] | None = None) -> float:
    """Events per second through `step.apply`; each round on fresh copies (not timed) and, with
    `reset`, an emptied cache, so every round pays its misses."""
    best = 0.0
    for _ in range(ROUNDS):
        if reset is not None:
            reset()
        batch = [dict(e) for e in events]
        apply = step.apply
        start = time.perf_counter()
        for event in batch:
            apply(event)
        best = max(best, len(batch) / (time.perf_counter() - start))
    return round(best)


def found(get: Callable[[str], Any], addresses: list[str]) -> int:
    """Look every address up; all must be in the database (so both readers decode records)."""
    for address in addresses:
        if get(address) is None:
            raise RuntimeError(f"{address} is not in the benchmark database")
    return len(addresses)


def skewed(rng: random.Random, pool: list[Any], n: int) -> list[Any]:
    """`n` draws from `pool` with Zipf weights (1/rank), as talkers in real logs: a few are
    everywhere, most appear a handful of times. The pool is shuffled first."""
    pool = list(pool)
    rng.shuffle(pool)
    weights = list(itertools.accumulate(1 / rank for rank in range(1, len(pool) + 1)))
    return rng.choices(pool, cum_weights=weights, k=n)


LANGUAGES = ("de", "es", "fr", "ja", "pt-BR", "ru", "zh-CN")


def geolite2_shaped(record: dict[str, Any], i: int) -> dict[str, Any]:
    """A record as big as a GeoLite2-City one: names in eight languages, geoname ids, continent,
    registered country, postal code, time zone (decoding cost grows with the record)."""
    def named(part: dict[str, Any], geoname_id: int) -> dict[str, Any]:
        english = part["names"]["en"]
        return {**part, "geoname_id": geoname_id,
                "names": {"en": english, **{lang: f"{english} ({lang})" for lang in LANGUAGES}}}
    out = {"country": named(record["country"], 2635167),
           "registered_country": named(record["country"], 2635167),
           "continent": named({"code": "EU", "names": {"en": "Europe"}}, 6255148),
           "city": named(record["city"], 2_000_000 + i),
           "subdivisions": [named(s, 6269131) for s in record["subdivisions"]],
           "location": {**record["location"], "time_zone": "Europe/London"},
           "postal": {"code": f"P{i % 1000}"}}
    return out


def build_geoip(directory: Path, rng: random.Random) -> tuple[Path, Path, list[str]]:
    """City and ASN databases over NETWORKS random public /24s; returns public addresses in
    them."""
    networks: set[str] = set()
    while len(networks) < NETWORKS:
        network = ipaddress.ip_network(f"{rng.randrange(1, 223)}.{rng.randrange(256)}."
                                       f"{rng.randrange(256)}.0/24")
        if network.is_global:
            networks.add(str(network))
    ordered = sorted(networks)
    city = [(n, geolite2_shaped(city_record("GB", "United Kingdom", city=f"City {i}",
                                            region="Region", region_code="R",
                                            lat=51.0 + i / 1e4, lon=-0.1), i))
            for i, n in enumerate(ordered)]
    asn = [(n, asn_record(64496 + i % 16, f"Org {i % 500}")) for i, n in enumerate(ordered)]
    city_path = write_city_database(directory / "city.mmdb", city)
    asn_path = write_asn_database(directory / "asn.mmdb", asn)
    addresses = [n.rsplit(".", 1)[0] + f".{rng.randrange(1, 255)}" for n in ordered]
    return city_path, asn_path, addresses


def geoip_events(rng: random.Random, public: list[str], n: int) -> list[Event]:
    talkers = [rng.choice(public) for _ in range(TALKERS)]
    private = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
               for _ in range(200)]
    sources = skewed(rng, talkers, n)
    # Destinations: half our own (private) servers, half public.
    destinations = [rng.choice(private) if rng.random() < 0.5 else d
                    for d in skewed(rng, talkers, n)]
    return [{"source.ip": s, "destination.ip": d} for s, d in zip(sources, destinations,
                                                                   strict=True)]


class DictLru:
    """The alternative to functools.lru_cache: an OrderedDict with move_to_end."""

    def __init__(self, function: Callable[[Any], Any], size: int) -> None:
        self.function, self.size = function, size
        self.entries: OrderedDict[Hashable, Any] = OrderedDict()

    def __call__(self, key: Hashable) -> Any:
        entries = self.entries
        try:
            entries.move_to_end(key)
            return entries[key]
        except KeyError:
            value = entries[key] = self.function(key)
            if len(entries) > self.size:
                entries.popitem(last=False)
            return value


def bench_geoip(directory: Path, rng: random.Random, n: int) -> dict[str, Any]:
    city_path, asn_path, public = build_geoip(directory, rng)
    events = geoip_events(rng, public, n)
    context = StepContext(directory)
    out: dict[str, Any] = {}
    for label, size in (("geoip_cached", 10_000), ("geoip_uncached", 0)):
        step = GeoipStep(GeoipConfig(city_database=city_path, asn_database=asn_path,
                                     cache_size=size), context)
        reset = getattr(step.lookup, "cache_clear", None)
        out[f"{label}_events_per_second"] = step_rate(step, events, reset)
        if size:
            info = step.lookup.cache_info()  # type: ignore[attr-defined]
            out["geoip_cache_hit_ratio"] = round(info.hits / (info.hits + info.misses), 3)
        step.close()

    # The LRU itself: the same lookup behind functools.lru_cache and behind a dict LRU.
    step = GeoipStep(GeoipConfig(city_database=city_path, asn_database=asn_path,
                                 cache_size=0), context)
    keys = [e["source.ip"] for e in events]

    def through(cached: Callable[[str], Any]) -> int:
        for key in keys:
            cached(key)
        return len(keys)

    out.update(best_rates({
        "geoip_lru_functools_lookups_per_second":
            lambda: through(functools.lru_cache(10_000)(step._lookup)),
        "geoip_lru_ordereddict_lookups_per_second":
            lambda: through(DictLru(step._lookup, 10_000))}, rounds=5))
    step.close()

    # Raw lookups of public addresses: maxminddb's dict vs geoip2's City model.
    sample = public[:5_000]
    with maxminddb.open_database(str(city_path)) as reader, \
            maxminddb.open_database(str(city_path), maxminddb.MODE_MEMORY) as memory, \
            geoip2.database.Reader(str(city_path)) as city:
        # Interleaved rounds: load from other processes hits all three alike.
        out.update(best_rates({
            "maxminddb_get_per_second": lambda: found(reader.get, sample),
            "maxminddb_memory_mode_get_per_second": lambda: found(memory.get, sample[:500]),
            "geoip2_city_per_second": lambda: found(city.city, sample)}, rounds=5))
    # The same on the small example records (English names only): decoding is cheaper, so
    # geoip2's model building weighs more.
    small = write_city_database(directory / "small.mmdb")
    small_sample = [str(ipaddress.ip_network(n)[i % 200 + 1]) for i, (n, _) in
                    enumerate(CITY_RECORDS * 700) if not n.startswith("198.51.100.")]
    with maxminddb.open_database(str(small)) as reader, geoip2.database.Reader(str(small)) as city:
        small_rates = best_rates({"maxminddb": lambda: found(reader.get, small_sample),
                                  "geoip2": lambda: found(city.city, small_sample)}, rounds=5)
    out["maxminddb_vs_geoip2_small_records"] = round(small_rates["maxminddb"] /
                                                     small_rates["geoip2"], 2)
    out["maxminddb_vs_geoip2"] = round(out["maxminddb_get_per_second"] /
                                       out["geoip2_city_per_second"], 2)
    return out


def bench_lookup(directory: Path, rng: random.Random, n: int) -> dict[str, Any]:
    table = directory / "users.csv"
    users = [f"user{i:05d}" for i in range(TABLE_ROWS)]
    with table.open("w") as handle:
        handle.write("username,department,vip\n")
        for i, user in enumerate(users):
            handle.write(f"{user},dept{i % 40},{'true' if i % 50 == 0 else 'false'}\n")
    step = LookupStep(LookupConfig(table=table, key_field="user.name", key_column="username",
                                   fields={"department": "user.department", "vip": "user.vip"},
                                   ignore_case=True, defaults={"vip": "false"}),
                      StepContext(directory))
    # One in ten users is not in the table (service accounts, typos).
    names = users + [f"svc{i}" for i in range(TABLE_ROWS // 10)]
    events = [{"user.name": name} for name in skewed(rng, names, n)]
    return {"lookup_events_per_second": step_rate(step, events)}


def bench_threat_intel(directory: Path, rng: random.Random, n: int) -> dict[str, Any]:
    ips = directory / "ips.txt"
    feed = directory / "feed.csv"
    listed_ips = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}."
                  f"{rng.randrange(256)}" for _ in range(INDICATORS // 2)]
    cidrs = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.0/"
             f"{rng.choice((16, 20, 24))}" for _ in range(INDICATORS // 4)]
    domains = [f"bad{i}.example{i % 7}.net" for i in range(INDICATORS - len(listed_ips) -
                                                            len(cidrs))]
    ips.write_text("".join(f"{ip}\n" for ip in listed_ips + cidrs))
    feed.write_text("indicator,type,provider,confidence,description\n" +
                    "".join(f"{d},domain-name,bench,high,bench domain\n" for d in domains))
    step = ThreatIntelStep(ThreatIntelConfig.model_validate(
        {"files": [str(ips), str(feed)]}), StepContext(directory))
    assert step.index.size >= INDICATORS * 0.95, step.index.size
    talkers = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}."
               f"{rng.randrange(256)}" for _ in range(TALKERS)] + listed_ips[:100]
    names = [f"host{i}.site{i % 300}.org" for i in range(5_000)] + \
        [f"x.{d}" for d in domains[:50]]
    events = [{"source.ip": s, "destination.ip": d, "dns.question.name": q}
              for s, d, q in zip(skewed(rng, talkers, n), skewed(rng, talkers, n),
                                 skewed(rng, names, n), strict=True)]
    rate = step_rate(step, events, step._rebuild)
    matched = sum(1 for e in events if "threat.enrichments.matched" in step.apply(dict(e)))
    return {"threat_intel_events_per_second": rate, "threat_intel_indicators": step.index.size,
            "threat_intel_matched_ratio": round(matched / len(events), 4)}


def main() -> int:
    n = int(os.environ.get("BENCH_EVENTS", DEFAULT_EVENTS))
    rng = random.Random(SEED)
    result: dict[str, Any] = {"events": n, "rounds": ROUNDS}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-enrich-") as tmp:
        directory = Path(tmp)
        result.update(bench_geoip(directory, rng, n))
        result.update(bench_lookup(directory, rng, n))
        result.update(bench_threat_intel(directory, rng, n))
    for key, value in result.items():
        print(f"{key:45} {value}", file=sys.stderr)
    sys.stderr.flush()
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
