"""`vigil outbox list|show`: the mails an email notifier with `transport: outbox` wrote under
<data_dir>/outbox/ (enrollments, alert notifications), for hosts without a mail server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collector.cli import EX_CONFIG, load_or_report
from core.errors import ExitCode


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("outbox", help="read mails kept in the outbox (transport: "
                                   "outbox)")
    actions = parser.add_subparsers(dest="outbox_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="one line per message")
    listing.set_defaults(func=list_outbox)
    show = actions.add_parser("show", parents=[common], help="print one message's text")
    show.add_argument("message_id", metavar="ID", help="a message id or a unique prefix of it "
                      "(default: the newest)", nargs="?")
    show.add_argument("--save-attachments", type=Path, metavar="DIR",
                      help="write the message's attachments (e.g. the TOTP QR code) into DIR")
    show.set_defaults(func=show_message)


def _root(args: argparse.Namespace) -> Path | None:
    from soc.notify.outbox import outbox_root

    config = load_or_report(args)
    if config is None:
        return None
    return outbox_root(config.data_dir(args.data_dir))


def list_outbox(args: argparse.Namespace) -> int:
    from collector.commands.tenants import print_table
    from soc.notify.outbox import list_messages

    root = _root(args)
    if root is None:
        return EX_CONFIG
    messages = list_messages(root)
    if not messages:
        print(f"the outbox {root} is empty", file=sys.stderr)
        return 0
    table: list[tuple[str, ...]] = [("ID", "DATE", "TO", "SUBJECT")]
    table += [(m.message_id, m.date, m.to, m.subject) for m in messages]
    print_table(table)
    return 0


def show_message(args: argparse.Namespace) -> int:
    from soc.notify.outbox import OutboxLookupError, find_message, list_messages

    root = _root(args)
    if root is None:
        return EX_CONFIG
    try:
        if args.message_id is None:
            messages = list_messages(root)
            if not messages:
                raise OutboxLookupError(f"the outbox {root} is empty")
            message = messages[-1]
        else:
            message = find_message(root, args.message_id)
    except OutboxLookupError as exc:
        print(f"vigil outbox: {exc}", file=sys.stderr)
        return int(ExitCode.NOINPUT)
    print(f"From: {message.message.get('From', '')}\nTo: {message.to}\nDate: {message.date}\n"
          f"Subject: {message.subject}\n")
    print(message.text())
    attachments = message.attachments()
    if attachments and args.save_attachments is None:
        names = ", ".join(name for name, _ in attachments)
        print(f"[attachments: {names}; save them with --save-attachments DIR]")
    for name, data in attachments if args.save_attachments is not None else []:
        target = args.save_attachments / Path(name).name
        args.save_attachments.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"[saved {target}]")
    return 0
