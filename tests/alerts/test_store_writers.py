"""Worker processes write alerts into one store at once (`vigil.workers`): SQLite in WAL mode,
every writer taking the lock up front and waiting on the busy timeout, so no write fails and
none is lost while another process writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from alerts.kit import make_alert

from soc.alerts.db import Database
from soc.alerts.model import SYSTEM, AlertFilter
from soc.alerts.store import AlertStore

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, "tests")
    from alerts.kit import make_alert
    from soc.alerts.db import Database
    from soc.alerts.store import AlertStore
    store = AlertStore(Database(sys.argv[1]))
    tenant = sys.argv[2]
    for i in range(150):
        group = '{"source.ip": "198.51.100.%d"}' % i
        result = store.upsert([make_alert(tenant, group=group)], fallback_tenant=tenant)
        assert len(result.inserted) == 1 and not result.rejected, result
""")


def test_two_processes_upsert_alerts_at_once_and_every_alert_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    Database(path).migrate()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), tenant],
                                cwd=Path(__file__).resolve().parents[2])
               for tenant in ("acme", "demo")]
    assert [w.wait(120) for w in writers] == [0, 0]
    store = AlertStore(Database(path))
    rows, _ = store.search(SYSTEM, AlertFilter(), limit=1000)
    assert sorted(r["tenant"] for r in rows) == ["acme"] * 150 + ["demo"] * 150
    again = store.upsert([make_alert("acme", group='{"source.ip": "198.51.100.7"}')],
                         fallback_tenant="acme")
    assert again.inserted == [] and len(again.updated) + len(again.unchanged) == 1
