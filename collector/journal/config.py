"""The `vigil.queue` settings: which queue, the journal's fsync policy and its bounds.

YAML: `queue: {type: journal, fsync: always}` or `fsync: {interval_ms: 50}` or `fsync: never`.
The models live with the other global settings (collector/config/models.py), so GlobalConfig
can hold them without an import cycle through this package; they are re-exported here.
"""

from collector.config.models import MIB, FsyncInterval, FsyncPolicy, QueueConfig

__all__ = ["MIB", "FsyncInterval", "FsyncPolicy", "QueueConfig"]
