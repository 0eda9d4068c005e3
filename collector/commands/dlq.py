"""`vigil dlq list|replay`: inspect the dead-letter area and hand files back to the daemon.

Replay goes through the running daemon (its tick appends marked files to the queue, so replayed
events travel the journal like any other input); this command marks files and waits.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from collector.cli import EX_CONFIG, load_or_report
from collector.progress import add_progress_flag, progress
from core.errors import ExitCode


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("dlq", help="inspect and replay dead-lettered events")
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="summarise dead letters")
    listing.add_argument("--tenant", help="only this tenant")
    listing.add_argument("--records", action="store_true",
                         help="print every record as a JSON line instead of a summary")
    listing.set_defaults(func=list_dead_letters)
    replay = actions.add_parser("replay", parents=[common],
                                help="replay dead letters through the running daemon")
    replay.add_argument("--tenant", help="only this tenant")
    replay.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for the daemon to take the files (default 60)")
    add_progress_flag(replay)
    replay.set_defaults(func=replay_dead_letters)


def _root(args: argparse.Namespace) -> Path | None:
    from sinks.dead_letter import dead_letter_root

    config = load_or_report(args)
    if config is None:
        return None
    return dead_letter_root(config.data_dir(args.data_dir), config.sinks.values())


def list_dead_letters(args: argparse.Namespace) -> int:
    import orjson

    from sinks.dead_letter import dead_letter_files, read_dead_letters

    root = _root(args)
    if root is None:
        return EX_CONFIG
    summary: Counter[tuple[str, str, str, str]] = Counter()
    out = sys.stdout.buffer
    for path in dead_letter_files(root, args.tenant):
        for record in read_dead_letters(path):
            if args.records:
                out.write(orjson.dumps({
                    "file": str(record.file), "line": record.line, "tenant": record.tenant,
                    "pipeline": record.pipeline, "step": record.step, "error": record.error,
                    "failed_at": record.failed_at, "event": record.event},
                    option=orjson.OPT_APPEND_NEWLINE))
            else:
                summary[(record.tenant, record.pipeline, record.step, record.error[:80])] += 1
    if not args.records:
        print(f"{'COUNT':>7}  TENANT / PIPELINE / STEP: ERROR")
        for (tenant, pipeline, step, error), count in summary.most_common():
            print(f"{count:>7}  {tenant} / {pipeline} / {step}: {error}")
        print(f"{sum(summary.values())} dead letter(s) waiting under {root}")
    return 0


def replay_dead_letters(args: argparse.Namespace) -> int:
    from sinks.dead_letter import REPLAY_SUFFIX, dead_letter_files, mark_for_replay

    root = _root(args)
    if root is None:
        return EX_CONFIG
    marked = [mark_for_replay(path) for path in dead_letter_files(root, args.tenant)]
    if not marked:
        print("nothing to replay")
        return 0
    # The bar counts events (a file's lines), as the daemon takes whole files.
    events = {path: _lines(path) for path in marked}
    print(f"{len(marked)} file(s) marked for replay ({sum(events.values())} event(s)); "
          "waiting for the daemon", flush=True)
    started = time.monotonic()
    deadline = started + args.wait
    waiting = set(marked)
    with progress("replay", sum(events.values()) or None, unit="events",
                  enabled=args.progress) as advance:
        while waiting and time.monotonic() < deadline:
            taken = waiting - set(dead_letter_files(root, suffixes=(REPLAY_SUFFIX,)))
            advance(sum(events[path] for path in taken))
            waiting -= taken
            if waiting:
                time.sleep(0.2)
    done = sum(events[path] for path in marked if path not in waiting)
    if not waiting:
        print(f"replayed {len(marked)} file(s), {done} event(s) in "
              f"{time.monotonic() - started:.1f} s")
        return 0
    print(f"replayed {len(marked) - len(waiting)} of {len(marked)} file(s), {done} event(s); "
          f"{len(waiting)} file(s) still waiting: is `vigil run` running on this data dir? "
          "They are replayed when it starts.", file=sys.stderr)
    return ExitCode.TEMPFAIL


def _lines(path: Path) -> int:
    """Records in a dead-letter file (one JSON line each); 0 when it is already gone."""
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
