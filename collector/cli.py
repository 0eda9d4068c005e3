"""Vigil, a multi-tenant security log collector: receive logs, parse them per tenant, run
detections, keep every event in a Parquet lake and triage the alerts.

Run `vigil COMMAND --help` for a command's options; every command reads the conf.d directory
given with -c (default $VIGIL_CONF_DIR, else ./conf.d when run in a source checkout, else
/etc/vigil/conf.d) and keeps state in --data-dir (default $VIGIL_DATA_DIR, ./var in a checkout,
else the configuration's vigil.data_dir, /var/lib/vigil)."""

from __future__ import annotations

import argparse
import importlib
import os
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
    "collector.commands.outbox",
    "collector.commands.alerts",
    "collector.commands.sla",
    "collector.commands.reports",
    "collector.commands.rules",
    "collector.commands.coverage",
    "collector.commands.top",
    "collector.commands.install",
    "collector.commands.retention",
    "collector.commands.cluster",
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


CHECKOUT_CONF_DIR = Path("conf.d")
CHECKOUT_DATA_DIR = Path("var")


def in_checkout(cwd: Path | None = None) -> bool:
    """Run from a Vigil source checkout (its pyproject.toml and example conf.d/ here) on a host
    without /etc/vigil/conf.d: then the example configuration and ./var are the defaults, the
    ones `make run` uses."""
    cwd = cwd or Path.cwd()
    if DEFAULT_CONF_DIR.is_dir() or not (cwd / CHECKOUT_CONF_DIR).is_dir():
        return False
    try:
        project = (cwd / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return 'name = "vigil"' in project


def default_dirs() -> tuple[Path, Path | None]:
    """-c and --data-dir when not given: $VIGIL_CONF_DIR / $VIGIL_DATA_DIR, else ./conf.d and
    ./var in a checkout, else /etc/vigil/conf.d and the configuration's `vigil.data_dir`."""
    checkout = in_checkout()
    conf = os.environ.get("VIGIL_CONF_DIR")
    data = os.environ.get("VIGIL_DATA_DIR")
    return (Path(conf) if conf else CHECKOUT_CONF_DIR if checkout else DEFAULT_CONF_DIR,
            Path(data) if data else CHECKOUT_DATA_DIR if checkout and not conf else None)


def checkout_data_dir(args: argparse.Namespace) -> None:
    """./var goes with the checkout's ./conf.d only: `-c elsewhere` keeps that
    configuration's `vigil.data_dir`."""
    if (getattr(args, "data_dir", None) == CHECKOUT_DATA_DIR
            and not os.environ.get("VIGIL_DATA_DIR")
            and getattr(args, "config_dir", None) != CHECKOUT_CONF_DIR):
        args.data_dir = None


def common_options() -> argparse.ArgumentParser:
    """Options every sub-command accepts: -c/--config-dir and --data-dir."""
    conf, data = default_dirs()
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-c", "--config-dir", type=Path, default=conf, metavar="DIR",
                        help=f"conf.d directory (default {conf}: $VIGIL_CONF_DIR, else "
                             f"./conf.d in a source checkout, else {DEFAULT_CONF_DIR})")
    parent.add_argument("--data-dir", type=Path, default=data, metavar="PATH",
                        help="state directory (overrides vigil.data_dir; default "
                             "$VIGIL_DATA_DIR, else ./var in a source checkout)")
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
    checkout_data_dir(args)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130  # Ctrl-C at a prompt or a wait: the shell's code for SIGINT, no traceback
    except BrokenPipeError:
        # `vigil ... | head` closed the pipe: stop quietly, as cat and grep do (128 + SIGPIPE).
        # stdout is pointed at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
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
