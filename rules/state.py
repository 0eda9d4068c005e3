"""Detection state files when worker processes share the data directory.

Each process saves the state of the tenants it owns in its own file (`detection.json` for the
single-process model, `detection.w<k>.json` for worker slot k; the same for `coverage`), so
no two processes write one file. A process restores its tenants from every such file, each
tenant from the newest file that holds it (or that names it among the tenants its writer
owned), so state follows a tenant whose worker changed with `vigil.workers`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

ALL = "*"  # the writer owned every tenant (the single-process model)


@dataclass
class Ownership:
    """Which tenants a process owns and the name of its state files."""

    slot: str = ""  # "" in the single-process model, "w<k>" in worker slot k
    owns: Callable[[str], bool] | None = None  # None: every tenant
    owned: Callable[[], Iterable[str]] = field(default=lambda: ())

    def path(self, state_dir: Path, stem: str) -> Path:
        return state_dir / (f"{stem}.{self.slot}.json" if self.slot else f"{stem}.json")

    def owned_list(self) -> list[str] | str:
        return ALL if self.owns is None else sorted(self.owned())

    def keeps(self, tenant: str) -> bool:
        return self.owns is None or self.owns(tenant)


def state_files(state_dir: Path, stem: str) -> list[Path]:
    """Every process's file of `stem`, oldest first."""
    found = [p for p in state_dir.glob(f"{stem}*.json")
             if p.name == f"{stem}.json" or p.name.startswith(f"{stem}.w")]
    dated = []
    for path in found:
        try:
            dated.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue
    return [path for _, _, path in sorted(dated)]


def read_docs(state_dir: Path, stem: str) -> list[dict[str, Any]]:
    """The readable documents of `stem`, oldest first; an unreadable one is logged."""
    docs = []
    for path in state_files(state_dir, stem):
        try:
            doc = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            continue
        except (OSError, orjson.JSONDecodeError) as exc:
            log.error("detection state unreadable; its tenants start empty",
                      extra={"path": str(path), "error": str(exc)})
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


def _detection_tenants(doc: dict[str, Any]) -> set[str]:
    owned = doc.get("owned")
    tenants = set((doc.get("correlation") or {}).get("tenants") or {})
    tenants.update(e[0] for e in doc.get("new_values") or [] if e)
    tenants.update(a.get("tenant") for a in doc.get("alerts") or [] if isinstance(a, dict))
    tenants.update(doc.get("watermarks") or {})
    if isinstance(owned, list):
        tenants.update(owned)
    return {t for t in tenants if isinstance(t, str)}


def _winners(docs: list[dict[str, Any]], tenants_of: Callable[[dict[str, Any]], set[str]]
             ) -> tuple[dict[str, int], int]:
    """For each tenant, the newest document holding it; and the newest one owning all."""
    winner: dict[str, int] = {}
    everything = -1
    for index, doc in enumerate(docs):
        if doc.get("owned") == ALL:
            everything = index
            winner = {}
        for tenant in tenants_of(doc):
            winner[tenant] = index
    return winner, everything


def _picks(docs: list[dict[str, Any]], tenants_of: Callable[[dict[str, Any]], set[str]],
           ownership: Ownership) -> Callable[[int, Any], bool]:
    winner, everything = _winners(docs, tenants_of)

    def keep(index: int, tenant: Any) -> bool:
        if not isinstance(tenant, str) or not ownership.keeps(tenant):
            return False
        return winner.get(tenant, everything) == index

    return keep


def merge_detection(docs: list[dict[str, Any]], ownership: Ownership, version: int
                    ) -> dict[str, Any] | None:
    """One detection state document for the tenants `ownership` keeps."""
    docs = [d for d in docs if d.get("version") == version]
    if not docs:
        return None
    keep = _picks(docs, _detection_tenants, ownership)
    correlation: dict[str, Any] = {"tenants": {}}
    merged: dict[str, Any] = {"version": version, "correlation": correlation,
                              "new_values": [], "alerts": [], "watermarks": {}}
    for index, doc in enumerate(docs):
        saved = doc.get("correlation") or {}
        for key, value in saved.items():
            if key != "tenants":
                correlation[key] = value
        correlation["tenants"].update({t: v for t, v in (saved.get("tenants") or {}).items()
                                       if keep(index, t)})
        merged["new_values"].extend(e for e in doc.get("new_values") or []
                                    if e and keep(index, e[0]))
        merged["alerts"].extend(a for a in doc.get("alerts") or []
                                if isinstance(a, dict) and keep(index, a.get("tenant")))
        merged["watermarks"].update({t: w for t, w in (doc.get("watermarks") or {}).items()
                                     if keep(index, t)})
    return merged


def merge_coverage(docs: list[dict[str, Any]], ownership: Ownership) -> dict[str, Any] | None:
    """One coverage document for the tenants `ownership` keeps."""
    if not docs:
        return None

    def tenants_of(doc: dict[str, Any]) -> set[str]:
        return {t for e in doc.get("coverage") or [] if isinstance(e, dict)
                and isinstance(t := e.get("tenant"), str)}

    keep = _picks(docs, tenants_of, ownership)
    newest = docs[-1]
    entries = [e for index, doc in enumerate(docs) for e in doc.get("coverage") or []
               if isinstance(e, dict) and keep(index, e.get("tenant"))]
    return {**{k: v for k, v in newest.items() if k != "coverage"}, "coverage": entries}
