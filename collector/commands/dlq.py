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
    print(f"{len(marked)} file(s) marked for replay; waiting for the daemon")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        waiting = set(dead_letter_files(root, suffixes=(REPLAY_SUFFIX,))) & set(marked)
        if not waiting:
            print(f"replayed {len(marked)} file(s)")
            return 0
        time.sleep(0.2)
    print(f"{len(waiting)} file(s) still waiting: is `vigil run` running on this data dir? "
          "They are replayed when it starts.", file=sys.stderr)
    return ExitCode.TEMPFAIL
