"""The enrichment steps inside the real daemon: enriched fields reach the lake with their schema
types, and files changed on disk are picked up by the daemon's own tick, with no signal."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from support.daemon import VigilProcess, basic_config, lake_rows, wait_for, write_conf

from enrichers.geoip_testdb import ASN_FILE, CITY_FILE


def send(daemon: VigilProcess, *lines: bytes) -> None:
    with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
        sock.sendall(b"".join(lines))


def test_enriched_events_in_the_lake_and_reload_by_the_tick(tmp_path: Path,
                                                            geoip_dir: Path) -> None:
    conf = tmp_path / "conf.d"
    enrich = conf / "enrich"
    shutil.copytree(geoip_dir, enrich)
    users = enrich / "users.csv"
    users.write_text("username,department,vip\nann,Finance,true\n")
    indicators = enrich / "bad.txt"
    indicators.write_text("203.0.113.66 # known bad\n")
    config = basic_config(flush_seconds=0.2)
    config["pipelines"] = {"app": {
        "dataset": "app.enriched", "match": {"field": "log.syslog.appname", "equals": "app"},
        "steps": [
            {"type": "json"},
            {"type": "geoip", "city_database": f"enrich/{CITY_FILE}",
             "asn_database": f"enrich/{ASN_FILE}"},
            {"type": "lookup", "table": "enrich/users.csv", "key_field": "user.name",
             "key_column": "username", "fields": {"department": "user.department",
                                                  "vip": "user.vip"}},
            {"type": "threat_intel", "files": ["enrich/bad.txt"]},
            {"type": "convert"}],
        "schema": {"source.geo.location.lat": "float", "source.geo.location.lon": "float",
                   "source.as.number": "int", "user.vip": "bool",
                   "threat.enrichments.matched": "bool"}}}
    write_conf(conf, config)
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start()
    try:
        event = b'<13>Nov 23 10:00:00 h app: {"user.name": "ann", "source.ip": "81.2.69.142", ' \
                b'"destination.ip": "203.0.113.66"}\n'
        send(daemon, event)
        wait_for(lambda: len(lake_rows(data)) == 1, message="the first lake row")
        (row,) = lake_rows(data)
        assert (row["source.geo.city_name"], row["source.geo.location.lat"],
                row["source.as.number"]) == ("London", 51.5142, 64496)
        assert (row["user.department"], row["user.vip"]) == ("Finance", True)
        assert row["threat.enrichments.matched"] is True
        assert row["threat.indicator.description"] == "known bad"

        # Files changed on disk, no SIGHUP: the tick's maintain() reloads them. The indicators
        # first, so an event enriched from the new table also saw the new indicators.
        indicators.write_text("198.51.100.0/24 # new block\n")
        tmp = enrich / "users.tmp"
        tmp.write_text("username,department,vip\nann,Treasury,false\n")
        os.replace(tmp, users)
        query = "SELECT * FROM lake WHERE \"user.department\" = 'Treasury'"

        def reloaded_row() -> list:
            send(daemon, event)
            return lake_rows(data, query)

        wait_for(reloaded_row, timeout=15, interval=0.3, message="an event enriched from the "
                 "new table")
        row = lake_rows(data, query)[0]
        assert row["user.vip"] is False and row["threat.enrichments.matched"] is None
        assert daemon.stop() == 0
    finally:
        daemon.kill()
