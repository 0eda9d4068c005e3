"""Vigil, a multi-tenant security log collector: receive logs, parse them per tenant, run
detections, keep every event in a Parquet lake and triage the alerts.

Run `vigil COMMAND --help` for a command's options; every command reads the conf.d directory
given with -c (default /etc/vigil/conf.d)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.config import VigilConfig

# Each module defines `register(subparsers, common)`; a sub-command sets `func(args) -> int`.
COMMAND_MODULES = [
    "collector.commands.run",
    "collector.commands.validate",
    "collector.commands.dlq",
    "collector.commands.test",
    "collector.commands.process",
    "collector.commands.journal",
    "collector.commands.tenants",
    "collector.commands.users",
    "collector.commands.alerts",
    "collector.commands.sla",
    "collector.commands.rules",
    "collector.commands.coverage",
]

DEFAULT_CONF_DIR = Path("/etc/vigil/conf.d")
EX_CONFIG = 78


def load_or_report(args: argparse.Namespace) -> VigilConfig | None:
    """The configuration of `-c DIR`, or None after printing each error (FILE:LINE:COL: key:
    message) on stderr; callers then exit with EX_CONFIG."""
    from collector.config import load_config
    from core.errors import ConfigErrors

    try:
        return load_config(args.config_dir)
    except ConfigErrors as exc:
        print("\n".join(exc.report(args.config_dir)), file=sys.stderr)
        return None


def common_options() -> argparse.ArgumentParser:
    """Options every sub-command accepts: -c/--config-dir and --data-dir."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-c", "--config-dir", type=Path, default=DEFAULT_CONF_DIR, metavar="DIR",
                        help=f"conf.d directory (default {DEFAULT_CONF_DIR})")
    parent.add_argument("--data-dir", type=Path, default=None, metavar="PATH",
                        help="state directory (overrides vigil.data_dir)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from collector import __version__

    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.errors import explain

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130  # Ctrl-C at a prompt or a wait: the shell's code for SIGINT, no traceback
    except Exception as exc:
        # An operator's mistake (a missing file, a port in use) is one line; a bug keeps its
        # traceback.
        problem = explain(exc)
        if problem is None:
            raise
        print(f"vigil: {problem}", file=sys.stderr)
        return problem.exit_code


if __name__ == "__main__":
    sys.exit(main())
