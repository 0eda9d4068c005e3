"""SIGKILL at random points under HTTP and TCP load: every acknowledged event is in the lake
exactly once, nothing is in it twice, and no alert is duplicated (tests/support/crash.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.crash import duplicated_alerts, lake_ids, run_with_kills


def check(tmp_path: Path, kills: int, workers: int | None = None) -> dict[str, int]:
    run, data = run_with_kills(tmp_path, kills, workers=workers)
    found = lake_ids(data)
    acknowledged = run.acknowledged
    assert len(acknowledged) == len(set(acknowledged)) > 0
    lost = [i for i in acknowledged if found[i] == 0]
    twice = {i: n for i, n in found.items() if n > 1}
    alerts, store_dups, lake_dups = duplicated_alerts(data)
    figures = {"workers": workers, "kills": run.kills, "acknowledged": len(acknowledged),
               "http_failed_requests": sum(h.failed_requests for h in run.http),
               "tcp_lines_in_lake": sum(1 for i in found if i.startswith("t")),
               "events_in_lake": sum(found.values()), "lost": len(lost),
               "duplicated": len(twice), "ssh_bursts": run.tcp.bursts if run.tcp else 0,
               "alerts_in_store": alerts, "duplicated_alerts": len(store_dups) + len(lake_dups)}
    print("crash figures:", json.dumps(figures))
    assert lost == [], f"{len(lost)} acknowledged events lost, e.g. {lost[:5]}"
    assert twice == {}, f"{len(twice)} events in the lake more than once, e.g. {list(twice)[:5]}"
    assert store_dups == [] and lake_dups == []
    assert alerts > 0  # the bursts made alerts, so "no duplicate" means something
    return figures


# 1: the single-process model; 2: the main process and two worker processes (a tenant each).
# Four starts of three interpreters each: minutes on a loaded machine.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_few_kills_lose_and_duplicate_nothing(tmp_path: Path, workers: int) -> None:
    figures = check(tmp_path, kills=3, workers=workers)
    assert figures["kills"] == 3


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_hundred_kills_lose_and_duplicate_nothing(tmp_path: Path, workers: int) -> None:
    figures = check(tmp_path, kills=100, workers=workers)
    assert figures["kills"] == 100
