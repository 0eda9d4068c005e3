"""The compiled-rule cache: a second load takes every unchanged file from the cache and gives
the same rules and the same matches; an edited file, another engine version, other mappings or
other placeholder values compile again; a corrupt, tampered or foreign cache file is ignored,
counted and rebuilt, never trusted."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import rules.cache as rule_cache
from rules.datasets import MAPPINGS_DIR, load_mapping, shipped_mappings
from rules.engine import DetectionEngine
from rules.loader import RuleSet, RuleSource, load_rules

LIBRARY = Path(__file__).resolve().parents[2] / "rules" / "library"
AUTH = {"product": "linux", "service": "auth"}
ROOT, KINDS = "5b0b6a4e-0000-4000-8000-000000000001", "5b0b6a4e-0000-4000-8000-000000000002"
UNSERVED, EXPAND = "5b0b6a4e-0000-4000-8000-000000000003", "5b0b6a4e-0000-4000-8000-000000000004"

EVENTS = [
    {"message": "Failed password for root from 203.0.113.9 port 4 ssh2", "user.name": "root",
     "source.ip": "203.0.113.9", "event.outcome": "failure", "process.name": "sshd",
     "@timestamp": datetime(2026, 3, 1, 10, 0, tzinfo=UTC)},
    {"message": "Accepted publickey for alice from 10.0.0.5", "user.name": "alice",
     "process.name": "sshd", "event.outcome": "success", "count": 7,
     "@timestamp": datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC)},
    {"message": "session opened for user root by (uid=0)", "process.name": "sudo",
     "user.name": "root", "@timestamp": datetime(2026, 3, 1, 10, 0, 2, tzinfo=UTC)},
]


def write_rules(directory: Path, sigma: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sigma.write_rule(directory, "root_login", {"sel": {"user.name": "root",
                                                       "message|contains": "failed password"},
                                               "condition": "sel"}, id=ROOT)
    sigma.write_rule(directory, "any_kinds", {
        "sel": {"message|re": "(?i)accepted (publickey|password)", "count|gte": 5,
                "event.outcome": ["success", "ok"], "source.ip|cidr": "10.0.0.0/8",
                "process.name|endswith": "shd"},
        "alt": {"user.name|exists": True, "event.outcome": None},
        "keywords": ["session opened"], "condition": "sel or alt or keywords"}, id=KINDS)
    sigma.write_rule(directory, "unserved", {"sel": {"x": "y"}, "condition": "sel"},
                     logsource={"product": "nosuchproduct"}, id=UNSERVED)
    (directory / "broken.yml").write_text("title: [unclosed\n", encoding="utf-8")
    return directory


def summary(ruleset: RuleSet) -> list[Any]:
    """Everything a load decides, in order, with each condition's anchors and fields."""
    return [
        [(r.info, r.position, r.new_value, r.placeholders,
          (r.logsource.category, r.logsource.product, r.logsource.service) if r.logsource
          else None,
          {d: (c.anchors, c.anchors2, c.fields, c.cost) for d, c in r.conditions.items()},
          {d: m.name for d, m in r.mappings.items()}) for r in ruleset.rules],
        [str(e) for e in ruleset.errors], ruleset.unserved,
        [(i.info, i.reason, i.owners, i.placeholders) for i in ruleset.inactive],
        [(c.info, [r.position for r in c.base_rules], c.group_keys) for c in ruleset.correlations],
        ruleset.filters,
    ]


def matches(ruleset: RuleSet, dataset: str = "linux.auth") -> list[Any]:
    found = DetectionEngine(ruleset).evaluate(dataset, [dict(e) for e in EVENTS], "t")
    return sorted((m.rule_id, m.events[0].index if m.events else -1, str(m.group_key))
                  for m in found)


def test_second_load_takes_every_file_from_the_cache(tmp_path: Path, sigma: Any) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    plain = load_rules([rules])
    first = load_rules([rules], cache_dir=cache)
    assert first.cache is not None and (first.cache.misses, first.cache.hits) == (4, 0)
    assert first.cache.written and (cache / rule_cache.CACHE_FILE).stat().st_mode & 0o777 == 0o600
    second = load_rules([rules], cache_dir=cache)
    assert second.cache is not None
    assert (second.cache.hits, second.cache.misses, second.cache.invalid) == (4, 0, 0)
    assert not second.cache.written  # nothing changed: nothing rewritten
    assert summary(second) == summary(first) == summary(plain)
    assert matches(second) == matches(plain)
    assert {m[0] for m in matches(second)} == {ROOT, KINDS}


def test_builtin_library_with_correlations_and_filters_is_identical(tmp_path: Path) -> None:
    """Files holding correlations or filters are parsed at every load; their base rules may
    come from the cache, and resolve to the same positions and group keys."""
    cache = tmp_path / "cache"
    plain = load_rules([LIBRARY])
    load_rules([LIBRARY], cache_dir=cache)
    warm = load_rules([LIBRARY], cache_dir=cache)
    assert warm.cache is not None and warm.cache.hits > 0 and warm.cache.misses == 0
    assert warm.correlations and warm.cache.uncached > 0
    assert summary(warm) == summary(plain)
    events = [{"message": f"Failed password for root from 203.0.113.9 port {i} ssh2",
               "event.action": "ssh_login", "event.outcome": "failure", "user.name": "root",
               "source.ip": "203.0.113.9", "source.address": "203.0.113.9",
               "process.name": "sshd", "@timestamp": datetime(2026, 3, 1, 10, 0, i, tzinfo=UTC)}
              for i in range(30)]

    def fired(ruleset: RuleSet) -> list[str]:
        return sorted(m.rule_id for m in DetectionEngine(ruleset).evaluate(
            "linux.auth", [dict(e) for e in events], "t", offsets=list(range(len(events)))))

    assert fired(warm) == fired(plain) and fired(plain)


def test_an_edited_rule_file_is_compiled_again(tmp_path: Path, sigma: Any) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    load_rules([rules], cache_dir=cache)
    sigma.write_rule(rules, "root_login", {"sel": {"user.name": "alice"}, "condition": "sel"},
                     id=ROOT)
    edited = load_rules([rules], cache_dir=cache)
    assert edited.cache is not None and (edited.cache.misses, edited.cache.hits) == (1, 3)
    assert summary(edited) == summary(load_rules([rules]))
    assert (ROOT, 1, "{}") in matches(edited)  # now alice's event, not root's failure
    assert load_rules([rules], cache_dir=cache).cache.hits == 4  # type: ignore[union-attr]
    # A file removed is dropped from the cache, not served.
    (rules / "root_login.yml").unlink()
    after = load_rules([rules], cache_dir=cache)
    assert after.by_id(ROOT) is None and after.cache.hits == 3  # type: ignore[union-attr]


def test_another_engine_version_or_mapping_set_compiles_everything(
        tmp_path: Path, sigma: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    load_rules([rules], cache_dir=cache)
    monkeypatch.setattr(rule_cache, "ENGINE_VERSION", rule_cache.ENGINE_VERSION + 1)
    bumped = load_rules([rules], cache_dir=cache)
    assert bumped.cache is not None
    assert (bumped.cache.hits, bumped.cache.misses, bumped.cache.invalid) == (0, 4, 0)
    assert load_rules([rules], cache_dir=cache).cache.hits == 4  # type: ignore[union-attr]

    # An edited mapping (another field name for the same logsource) invalidates it too.
    mappings_dir = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR, mappings_dir)
    auth = mappings_dir / "linux_auth.yml"
    auth.write_text(auth.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    mappings = [load_mapping(path) for path in sorted(mappings_dir.glob("*.yml"))]
    remapped = load_rules([rules], mappings, cache_dir=cache)
    assert remapped.cache is not None and (remapped.cache.hits, remapped.cache.misses) == (0, 4)
    # Mappings built in code carry no digest: no cache at all rather than a wrong one.
    coded = [m for m in shipped_mappings()]
    for mapping in coded:
        mapping.digest = ""
    assert load_rules([rules], coded, cache_dir=cache).cache is None


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage", b"[1, 2, 3]",
                                     b'{"format": "vigil-rule-cache", "fingerprint": 1}'])
def test_a_corrupt_cache_file_is_ignored_counted_and_rebuilt(
        tmp_path: Path, sigma: Any, content: bytes) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / rule_cache.CACHE_FILE).write_bytes(content)
    (cache / rule_cache.CACHE_FILE).chmod(0o600)
    loaded = load_rules([rules], cache_dir=cache)
    assert loaded.cache is not None
    assert (loaded.cache.invalid, loaded.cache.misses, loaded.cache.hits) == (1, 4, 0)
    assert summary(loaded) == summary(load_rules([rules]))
    again = load_rules([rules], cache_dir=cache)
    assert again.cache is not None and (again.cache.invalid, again.cache.hits) == (0, 4)


def test_a_tampered_entry_is_refused_and_only_its_file_compiled(tmp_path: Path,
                                                                sigma: Any) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    load_rules([rules], cache_dir=cache)
    path = cache / rule_cache.CACHE_FILE
    document = orjson.loads(path.read_bytes())
    (key,) = [k for k in document["entries"] if k.endswith("any_kinds.yml")]
    rule = document["entries"][key]["outputs"]["rules"][0]
    rule["conditions"][0][1] = ["x", 1.0, "__import__('os').system('id')"]  # not an IR node
    path.write_bytes(orjson.dumps(document))
    loaded = load_rules([rules], cache_dir=cache)
    assert loaded.cache is not None
    assert (loaded.cache.invalid, loaded.cache.misses, loaded.cache.hits) == (1, 1, 3)
    assert summary(loaded) == summary(load_rules([rules]))
    assert matches(loaded) == matches(load_rules([rules]))


def test_a_cache_file_others_can_write_is_not_trusted(tmp_path: Path, sigma: Any) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    load_rules([rules], cache_dir=cache)
    (cache / rule_cache.CACHE_FILE).chmod(0o666)
    loaded = load_rules([rules], cache_dir=cache)
    assert loaded.cache is not None and (loaded.cache.invalid, loaded.cache.hits) == (1, 0)
    assert (cache / rule_cache.CACHE_FILE).stat().st_mode & 0o777 == 0o600  # rewritten


def test_an_unwritable_cache_directory_only_costs_the_cache(tmp_path: Path, sigma: Any) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be", encoding="utf-8")
    loaded = load_rules([rules], cache_dir=blocker / "rules")
    assert loaded.cache is not None and loaded.cache.write_errors == 1
    assert summary(loaded) == summary(load_rules([rules]))


def test_placeholder_values_key_only_the_files_using_them(tmp_path: Path, sigma: Any) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    sigma.write_rule(rules, "expand", {"sel": {"user.name|expand": "%admins%"},
                                       "condition": "sel"}, id=EXPAND)
    cache = tmp_path / "cache"
    values = {None: {"admins": ["root"]}}
    first = load_rules([rules], placeholders=values, cache_dir=cache)
    assert first.by_id(EXPAND) is not None
    same = load_rules([rules], placeholders=values, cache_dir=cache)
    assert same.cache is not None and (same.cache.hits, same.cache.misses) == (5, 0)
    other = load_rules([rules], placeholders={None: {"admins": ["alice"]}}, cache_dir=cache)
    assert other.cache is not None and (other.cache.hits, other.cache.misses) == (4, 1)
    assert summary(other) == summary(load_rules([rules],
                                                placeholders={None: {"admins": ["alice"]}}))
    none = load_rules([rules], cache_dir=cache)
    assert none.by_id(EXPAND) is None and [i.info.id for i in none.inactive] == [EXPAND]
    assert summary(none) == summary(load_rules([rules]))


def test_a_tenants_rules_are_cached_apart_from_the_same_global_file(tmp_path: Path,
                                                                    sigma: Any) -> None:
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    load_rules([RuleSource(rules)], cache_dir=cache)
    owned = load_rules([RuleSource(rules, "acme")], cache_dir=cache)
    assert owned.cache is not None and owned.cache.hits == 0
    assert {r.info.tenant for r in owned.rules} == {"acme"}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_a_cache_of_another_user_is_neither_trusted_nor_overwritten(tmp_path: Path,
                                                                    sigma: Any) -> None:
    """A cache file owned by another user is refused; a command run as root on the daemon's
    data directory (owned by the daemon's user) writes no cache the daemon could not use."""
    rules = write_rules(tmp_path / "rules", sigma)
    cache = tmp_path / "cache"
    load_rules([rules], cache_dir=cache)
    os.chown(cache / rule_cache.CACHE_FILE, 65534, 65534)
    foreign = load_rules([rules], cache_dir=cache)
    assert foreign.cache is not None and (foreign.cache.invalid, foreign.cache.hits) == (1, 0)
    assert (cache / rule_cache.CACHE_FILE).stat().st_uid == os.getuid()  # rewritten, ours

    daemon_owned = tmp_path / "data"
    daemon_owned.mkdir()
    os.chown(daemon_owned, 65534, 65534)
    loaded = load_rules([rules], cache_dir=daemon_owned / "cache" / "rules")
    assert loaded.cache is not None and loaded.cache.misses == 4
    assert not loaded.cache.written and loaded.cache.write_errors == 0
    assert list(daemon_owned.iterdir()) == []


def test_filters_apply_to_rules_taken_from_the_cache(tmp_path: Path, sigma: Any) -> None:
    """A Sigma filter (in a file that is never cached) narrows a rule that came from the
    cache exactly as it narrows a freshly compiled one, per owner."""
    library, tenant_dir, cache = tmp_path / "library", tmp_path / "acme", tmp_path / "cache"
    library.mkdir()
    tenant_dir.mkdir()
    sigma.write_rule(library, "sudo_root", {"sel": {"process.name": "sudo", "user.name": "root"},
                                            "condition": "sel"}, id=ROOT, name="sudo_root")
    sigma.write_docs(library, "global_filter", {
        "title": "Backup host runs sudo", "id": "dddddddd-0000-4000-8000-000000000001",
        "logsource": AUTH, "filter": {"rules": [ROOT], "selection": {"hostname": "backup1"},
                                      "condition": "not selection"}})
    sigma.write_docs(tenant_dir, "acme_filter", {
        "title": "acme's admin host", "id": "dddddddd-0000-4000-8000-000000000002",
        "logsource": AUTH, "filter": {"rules": ["sudo_root"], "selection": {"hostname": "admin7"},
                                      "condition": "not selection"}})
    sources = [RuleSource(library), RuleSource(tenant_dir, tenant="acme")]
    events = [{"process.name": "sudo", "user.name": "root", "host.hostname": host,
               "@timestamp": datetime(2026, 1, 1, tzinfo=UTC)}
              for host in ("web1", "backup1", "admin7")]

    def fired(ruleset: RuleSet) -> dict[str, list[int]]:
        engine = DetectionEngine(ruleset)
        return {t: [m.events[0].index for m in engine.evaluate("linux.auth", events, t)]
                for t in ("acme", "other")}

    load_rules(sources, cache_dir=cache)
    warm = load_rules(sources, cache_dir=cache)
    assert warm.cache is not None and (warm.cache.hits, warm.cache.uncached) == (1, 2)
    assert warm.filters == 2
    assert fired(warm) == fired(load_rules(sources)) == {"acme": [0], "other": [0, 2]}


def test_every_value_predicate_decodes_with_its_arguments_checked() -> None:
    """Predicates are built at their first call, so the decoder checks each value test's
    argument count up front: a stored node with the wrong count is refused at load."""
    import inspect

    from rules.compiler.codec import VALUE_ARITY, node_from_data, node_to_data
    from rules.compiler.ir import ValueTest
    from rules.compiler.predicates import VALUE_PREDICATES

    assert VALUE_ARITY.keys() == VALUE_PREDICATES.keys()
    for kind, build in VALUE_PREDICATES.items():
        assert len(inspect.signature(build).parameters) - 1 == VALUE_ARITY[kind], kind
    node = ValueTest(cost=1.0, keys=("a",), kind="compare", args=("GT", 3))
    data = node_to_data(node)
    assert node_from_data(data) == node and node_from_data(data).build()({"a": 4}, {})
    data[4] = ["GT"]
    with pytest.raises(ValueError):
        node_from_data(data)
