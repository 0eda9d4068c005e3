"""`vigil journal stats` and `vigil journal fsck [--repair]` on a journal no daemon holds.

The journal directory is `--data-dir`/journal, or taken from the configuration
(`vigil.queue.path`, `vigil.data_dir`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from collector.cli import EX_CONFIG
from collector.progress import add_progress_flag, progress

EX_DAMAGED = 1
EX_NO_JOURNAL = 66  # sysexits EX_NOINPUT: nothing to inspect there
EX_TEMPFAIL = 75  # sysexits: the journal is in use; try again when the daemon is stopped


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("journal", help="inspect or repair the durable journal")
    commands = parser.add_subparsers(dest="journal_command", metavar="COMMAND", required=True)
    stats = commands.add_parser("stats", parents=[common],
                                help="segments, bytes, offsets and pending events per partition")
    stats.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    stats.set_defaults(func=run_stats)
    fsck = commands.add_parser("fsck", parents=[common],
                               help="verify every record; exit 1 when damage is found")
    fsck.add_argument("--repair", action="store_true",
                      help="cut torn tails and rewrite damaged segments (damaged bytes are kept "
                           "in <partition>/damaged/)")
    add_progress_flag(fsck)
    fsck.set_defaults(func=run_fsck)


def _journal_dir(args: argparse.Namespace) -> Path | int:
    """The journal directory, or the exit code to return when there is none."""
    path = _configured_dir(args)
    if path is None:
        return EX_CONFIG
    if not path.is_dir():
        print(f"{path}: no journal here (is --data-dir the daemon's?)", file=sys.stderr)
        return EX_NO_JOURNAL
    return path


def _configured_dir(args: argparse.Namespace) -> Path | None:
    """`vigil.queue.path`, else `journal` under --data-dir / `vigil.data_dir`. With --data-dir
    and no conf.d at all (a data dir inspected on its own), `<data-dir>/journal`."""
    from collector.cli import load_or_report
    from collector.journal import journal_path

    if args.data_dir is not None and not args.config_dir.is_dir():
        path: Path = args.data_dir / "journal"
        return path
    config = load_or_report(args)
    if config is None:
        return None
    return journal_path(config.settings, config.data_dir(args.data_dir))


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(n)


def run_stats(args: argparse.Namespace) -> int:
    from collector.journal.fsck import inspect

    directory = _journal_dir(args)
    if isinstance(directory, int):
        return directory
    report = inspect(directory)
    rows = [p.as_dict() for p in report.partitions]
    if args.json:
        print(json.dumps({"path": str(directory), "epoch": report.epoch, "in_use": report.in_use,
                          "partitions": rows}))
        return 0
    state = "in use by a running daemon: figures may move" if report.in_use else "not in use"
    print(f"journal {directory} (epoch {report.epoch}, {state})")
    header = ("PARTITION", "SEGMENTS", "BYTES", "FIRST", "LAST", "ACKED", "PENDING", "DAMAGED")
    table = [header] + [(r["partition"], str(r["segments"]), _human(r["disk_bytes"]),
                         str(r["first_offset"]), str(r["last_offset"]), str(r["acked_offset"]),
                         str(r["pending_events"]), str(r["damaged_records"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width)
                        for cell, width in zip(row, widths, strict=True)).rstrip())
    total_pending = sum(r["pending_events"] for r in rows)
    total_bytes = sum(r["disk_bytes"] for r in rows)
    print(f"{len(rows)} partition(s), {total_pending} pending event(s), {_human(total_bytes)}")
    return 0


def run_fsck(args: argparse.Namespace) -> int:
    from collector.journal.files import FileLayer
    from collector.journal.fsck import inspect, repair, segment_bytes
    from collector.journal.layout import LOCK_FILE

    directory = _journal_dir(args)
    if isinstance(directory, int):
        return directory
    files = FileLayer()
    # Hold the lock for the whole check so a daemon cannot start in the middle of a repair.
    lock = files.lock(directory / LOCK_FILE)
    if lock is None:
        print(f"{directory}: in use by a running daemon; stop it first", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        with progress("fsck", segment_bytes(directory) or None, unit="B",
                      enabled=args.progress) as advance:
            report = inspect(directory, files, advance)
        report.in_use = False
        segments = sum(len(p.segments) for p in report.partitions)
        checked = f"{segments} segment(s) ({_human(sum(p.disk_bytes for p in report.partitions))})"
        damage = report.damage
        for item in damage:
            print(item.describe())
        if not damage:
            print(f"{directory}: {len(report.partitions)} partition(s), {checked}, no damage")
            return 0
        records = sum(d.records for d in damage)
        size = sum(d.length for d in damage)
        events = sum(d.events for d in damage)
        about = "~" if any(d.estimated for d in damage) else ""
        print(f"{directory}: {len(damage)} damaged range(s), {records} record(s), "
              f"{about}{events} event(s), {size} bytes")
        if not args.repair:
            print("run `vigil journal fsck --repair` to cut them out", file=sys.stderr)
            return EX_DAMAGED
        for action in repair(report, files):
            print(action)
        return 0
    finally:
        files.unlock(lock)
