"""`vigil process`: run the lines of files through a source's decoding, tenant routing and the
pipelines, as if they had arrived on that source; events go to stdout as JSON lines, nothing is
written to the lake. How a partner checks a new source before going live."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from collector.cli import EX_CONFIG, load_or_report
from collector.progress import add_progress_flag, progress
from core.errors import usage_error

CHUNK_LINES = 10_000


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("process", parents=[common],
                                   help="run log lines through a source's pipelines offline")
    parser.add_argument("--source", required=True, metavar="SOURCE_ID",
                        help="configured source the lines arrive on")
    parser.add_argument("--tenant", help="force the tenant (otherwise the source's routing)")
    parser.add_argument("--peer", help="sender address for CIDR routing")
    add_progress_flag(parser)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="`-` reads stdin")
    parser.set_defaults(func=run)


def _lines(handle: BinaryIO, advance: Callable[[float], None] = lambda _n: None
           ) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for raw in handle:
        advance(len(raw))
        line = raw.rstrip(b"\r\n")
        if line:
            chunk.append(line)
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _emit(offline: Any, args: argparse.Namespace, chunk: list[bytes], out: BinaryIO,
          datasets: Counter[str]) -> int:
    """One chunk through the pipelines: events to `out`, dead letters to stderr (counted)."""
    import orjson

    from collector.offline import UnknownSource, split_dead_letters
    from core.events import DATASET

    try:
        batches = offline.process_lines(args.source, chunk, tenant=args.tenant, peer=args.peer)
    except UnknownSource as exc:
        raise usage_error(str(exc)) from None
    events, dead = split_dead_letters(batches)
    for event in events:
        datasets[str(event.get(DATASET))] += 1
        out.write(orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE))
    for record in dead:
        original = orjson.dumps(record.get("event"), default=str).decode()
        print(f"dead letter: {record.get('pipeline')}/{record.get('step')}: "
              f"{record.get('error')}: {original}", file=sys.stderr)
    return len(dead)


def run(args: argparse.Namespace) -> int:
    from collector.offline import OfflineRun

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    offline = OfflineRun(config, args.config_dir)
    out = sys.stdout.buffer
    datasets: Counter[str] = Counter()
    lines = dead_count = 0
    sizes = [0 if str(p) == "-" else p.stat().st_size for p in args.files]
    try:
        with progress("process", sum(sizes) or None, unit="B",
                      enabled=args.progress) as advance:
            for path in args.files:
                handle = (sys.stdin.buffer if str(path) == "-"
                          else open(path, "rb"))  # noqa: SIM115
                try:
                    for chunk in _lines(handle, advance):
                        lines += len(chunk)
                        dead_count += _emit(offline, args, chunk, out, datasets)
                finally:
                    if handle is not sys.stdin.buffer:
                        handle.close()
    finally:
        offline.close()
    out.flush()
    summary = ", ".join(f"{name} {count}" for name, count in datasets.most_common())
    print(f"{lines} line(s): {sum(datasets.values())} event(s) ({summary or 'none'}), "
          f"{dead_count} dead letter(s)", file=sys.stderr)
    return 0
