"""`vigil run`: the daemon in the foreground (systemd's Type=notify service)."""

from __future__ import annotations

import argparse
import logging
import sys


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("run", parents=[common], help="run the daemon")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    import uvloop

    from collector.config import load_config
    from collector.logs import configure_logging
    from collector.processes import leave
    from core.errors import ConfigErrors, explain

    configure_logging()
    try:
        # `vigil.role` picks the daemon: `all` is the single host, the others are in
        # collector.cluster.roles (imported only for them: NATS is optional).
        config = load_config(args.config_dir, require_inputs=True)
        if config.settings.role == "all":
            from collector.runtime import Daemon

            daemon = Daemon(args.config_dir, data_dir=args.data_dir, setup_logging=True,
                            config=config)
        else:
            from collector.cluster.roles import build_daemon

            daemon = build_daemon(args.config_dir, config, data_dir=args.data_dir,
                                  setup_logging=True)
    except ConfigErrors as exc:
        print("\n".join(exc.report(args.config_dir)), file=sys.stderr)
        return exc.exit_code
    try:
        code = uvloop.run(daemon.run())
    except Exception as exc:
        if explain(exc) is not None:
            raise  # the operator's to fix: `cli.main` prints one line and its exit code
        # A bug at start-up or shutdown: say why once and exit non-zero (systemd restarts us).
        logging.getLogger("collector.runtime").exception("vigil failed; exiting")
        return 1
    leave(code)  # everything is committed and closed: no interpreter teardown to wait for
