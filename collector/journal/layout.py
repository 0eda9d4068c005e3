"""The journal directory's layout: the lock and epoch files, the checkpoint of acknowledged
positions, and one directory per partition. Shared by the journal and `vigil journal`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = "LOCK"
EPOCH_FILE = "EPOCH"
CHECKPOINT_FILE = "checkpoints.json"
PARTITION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def read_checkpoints(path: Path, epoch: str | None = None) -> dict[str, dict[str, int]]:
    """Persisted positions per partition; empty when absent, unreadable or written for another
    epoch than `epoch` (replay all)."""
    try:
        data = json.loads(path.read_bytes())
        if epoch is not None and data.get("epoch", epoch) != epoch:
            log.warning("journal checkpoint belongs to another epoch; replaying every partition "
                        "from its oldest segment", extra={"file": str(path), "epoch": epoch,
                                                          "checkpoint_epoch": data.get("epoch")})
            return {}
        return {name: {"acked": int(v["acked"]), "next_offset": int(v["next_offset"])}
                for name, v in data["partitions"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("journal checkpoint unreadable; replaying every partition from its oldest "
                    "segment", extra={"file": str(path)})
        return {}


def partition_dirs(directory: Path) -> list[Path]:
    """The partition directories of a journal."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and PARTITION_RE.fullmatch(p.name))
