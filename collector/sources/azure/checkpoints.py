"""Event Hubs checkpoints and partition ownership in the data directory: the client library's
`CheckpointStore` interface on one JSON file per (namespace, hub, consumer group), replaced
atomically (`core.durable.write_atomic`) on every change.

Ownership claims compare etags like the blob store does, so the library's load balancing
works unchanged; the file is local, so one daemon owns a consumer group (several daemons
sharing one need the blob store), and the claims of a previous run are dropped at start.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from azure.eventhub.aio import CheckpointStore

from core.durable import write_atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_KEYS = ("fully_qualified_namespace", "eventhub_name", "consumer_group")


class FileCheckpointStore(CheckpointStore):  # type: ignore[misc]
    """See the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = asyncio.Lock()

    def path(self, namespace: str, hub: str, group: str) -> Path:
        name = "_".join(_UNSAFE.sub("-", part) for part in (namespace, hub, group))
        return self.directory / f"{name}.json"

    def _load(self, path: Path) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return {"ownership": {}, "checkpoints": {}}
        return {"ownership": dict(data.get("ownership", {})),
                "checkpoints": dict(data.get("checkpoints", {}))}

    def _save(self, path: Path, data: dict[str, Any]) -> None:
        write_atomic(path, orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def forget_ownership(self) -> None:
        """Drop every ownership record (checkpoints stay). A killed daemon's claims would
        otherwise keep its partitions from the restarted one until they time out; the files
        are this daemon's alone (its data directory is locked), so no one else owns them."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.json"):
            data = self._load(path)
            if data["ownership"]:
                self._save(path, {**data, "ownership": {}})

    async def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str,
                             consumer_group: str, **kwargs: Any) -> list[dict[str, Any]]:
        path = self.path(fully_qualified_namespace, eventhub_name, consumer_group)
        data = await asyncio.to_thread(self._load, path)
        return list(data["ownership"].values())

    async def claim_ownership(self, ownership_list: Any, **kwargs: Any) -> list[dict[str, Any]]:
        claims = list(ownership_list)
        if not claims:
            return []
        claimed = []
        async with self._lock:
            by_file: dict[Path, list[dict[str, Any]]] = {}
            for claim in claims:
                by_file.setdefault(self.path(*(claim[k] for k in _KEYS)), []).append(claim)
            for path, group in by_file.items():
                data = await asyncio.to_thread(self._load, path)
                for claim in group:
                    current = data["ownership"].get(claim["partition_id"])
                    if current is not None and current.get("etag") != claim.get("etag"):
                        continue  # someone else changed it since it was listed
                    owned = {**claim, "etag": uuid.uuid4().hex, "last_modified_time": time.time()}
                    data["ownership"][claim["partition_id"]] = owned
                    claimed.append(owned)
                await asyncio.to_thread(self._save, path, data)
        return claimed

    async def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        path = self.path(*(str(checkpoint[k]) for k in _KEYS))
        async with self._lock:
            data = await asyncio.to_thread(self._load, path)
            data["checkpoints"][str(checkpoint["partition_id"])] = {
                **{k: checkpoint[k] for k in _KEYS}, "partition_id": checkpoint["partition_id"],
                "sequence_number": checkpoint["sequence_number"],
                "offset": checkpoint["offset"]}
            await asyncio.to_thread(self._save, path, data)

    async def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str,
                               consumer_group: str, **kwargs: Any) -> list[dict[str, Any]]:
        path = self.path(fully_qualified_namespace, eventhub_name, consumer_group)
        data = await asyncio.to_thread(self._load, path)
        return list(data["checkpoints"].values())
