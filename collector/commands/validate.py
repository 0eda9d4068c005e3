"""`vigil validate`: check a conf.d directory and print every error as FILE:LINE:COL: path: msg."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("validate", parents=[common], help="check the configuration")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collector.config import load_config
    from collector.errors import ConfigErrors

    try:
        config = load_config(args.config_dir, require_inputs=True)
    except ConfigErrors as exc:
        print("\n".join(exc.report(args.config_dir)), file=sys.stderr)
        return exc.exit_code
    counts = ", ".join(f"{len(entries)} {name}" for name, entries in config.sections.items())
    print(f"{args.config_dir}: configuration is valid ({counts})")
    return 0
