"""`vigil test`: run the pipeline test cases of a conf.d (its `tests:` section), like
`vector test`; exit 1 when any case fails."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from collector.cli import EX_CONFIG, load_or_report
from core.errors import usage_error


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("test", parents=[common], help="run pipeline test cases")
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these test cases")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collector.offline import OfflineRun, split_dead_letters
    from collector.pipeline.testcases import CaseResult, check_case

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    cases = config.section("tests")
    unknown = [name for name in args.names if name not in cases]
    if unknown:
        raise usage_error(f"unknown test case(s): {', '.join(unknown)}",
                          f"{len(cases)} are configured; without names `vigil test` runs all")
    selected = {name: case for name, case in cases.items()
                if not args.names or name in args.names}
    now = {"value": datetime.now(UTC)}
    offline = OfflineRun(config, args.config_dir, clock=lambda: now["value"])
    results: list[CaseResult] = []
    try:
        print(f"Running {len(selected)} test case(s) from {args.config_dir}")
        for name, case in selected.items():
            received = case.received_at or datetime.now(UTC)
            now["value"] = received if received.tzinfo else received.replace(tzinfo=UTC)
            batches = offline.process_lines(case.source, [case.line()], tenant=case.tenant,
                                            peer=case.peer)
            events, dead = split_dead_letters(batches)
            result = check_case(name, case, events, dead)
            results.append(result)
            print(f"test {name} ... {'passed' if result.passed else 'FAILED'}")
            for failure in result.failures:
                print(f"    {failure}")
    finally:
        offline.close()
    failed = [r.name for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
