"""`vigil run`: the daemon in the foreground (systemd's Type=notify service)."""

from __future__ import annotations

import argparse
import logging
import sys

from collector.cli import EX_CONFIG


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("run", parents=[common], help="run the daemon")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    import uvloop

    from collector.errors import ConfigErrors
    from collector.logs import configure_logging
    from collector.runtime import Daemon

    configure_logging()
    try:
        daemon = Daemon(args.config_dir, data_dir=args.data_dir, setup_logging=True)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EX_CONFIG
    try:
        return uvloop.run(daemon.run())
    except Exception:
        # Start-up or shutdown failed: say why once and exit non-zero, so systemd restarts us.
        logging.getLogger("collector.runtime").exception("vigil failed; exiting")
        return 1
