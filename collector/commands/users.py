"""`vigil users add|list|disable|enable|reset|review|unlock|tokens|revoke-token|logout`:
accounts and their tokens in the alert store's database (no daemon needed). `add` prints the
one-time activation link for the partner to hand over; the TOTP enrollment goes by mail from
the platform straight to the user, or (`--show-enrollment`, for a host without mail such as
the first administrator's) is shown once on the administrator's terminal."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from collector.cli import EX_CONFIG

log = logging.getLogger(__name__)
EX_UNAVAILABLE = 69  # sysexits: the enrollment mail could not be sent


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("users", help="manage users and review access")
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="add a user: prints the activation "
                             "link, mails the TOTP enrollment to the user")
    add.add_argument("login")
    add.add_argument("--email", required=True)
    add.add_argument("--name", help="display name (default: the login)")
    add.add_argument("--role", required=True,
                     help="platform_admin, soc_l1, soc_l2, soc_l3, client_admin (users of "
                          "its tenants), client_operator, client_viewer")
    add.add_argument("--tenant", action="append", default=[], dest="tenants",
                     help="a tenant in the user's scope (repeat for several)")
    add.add_argument("--show-enrollment", action="store_true",
                     help="no mail server (the first administrator, a test host): print the "
                     "TOTP enrollment (QR code and otpauth URI) here instead of mailing it")
    add.set_defaults(func=add_user)
    listing = actions.add_parser("list", parents=[common], help="every user")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_users)
    disable = actions.add_parser("disable", parents=[common],
                                 help="disable a user and revoke its tokens")
    disable.add_argument("login")
    disable.add_argument("--reason", default="")
    disable.set_defaults(func=disable_user)
    enable = actions.add_parser("enable", parents=[common],
                                help="enable a disabled user again (same password and "
                                "authenticator; pending if it never activated)")
    enable.add_argument("login")
    enable.add_argument("--reason", required=True, help="why (audited)")
    enable.set_defaults(func=enable_user)
    reset = actions.add_parser("reset", parents=[common],
                               help="lost authenticator or password: clear both, revoke the "
                               "user's tokens, print a new activation link and mail a new "
                               "TOTP enrollment")
    reset.add_argument("login")
    reset.add_argument("--reason", default="")
    reset.add_argument("--show-enrollment", action="store_true",
                       help="print the new TOTP enrollment here instead of mailing it")
    reset.set_defaults(func=reset_user)
    unlock = actions.add_parser("unlock", parents=[common],
                                help="lift the login delays failed logins put on a user "
                                "(password, authenticator and tokens stay)")
    unlock.add_argument("login")
    unlock.add_argument("--reason", default="")
    unlock.set_defaults(func=unlock_user)
    tokens = actions.add_parser("tokens", parents=[common],
                                help="a user's live sessions and API tokens (ids, never tokens)")
    tokens.add_argument("login")
    tokens.add_argument("--json", action="store_true")
    tokens.set_defaults(func=list_tokens)
    revoke = actions.add_parser("revoke-token", parents=[common],
                                help="revoke one of a user's tokens (and those made from it)")
    revoke.add_argument("login")
    revoke.add_argument("token_id", help="the id `vigil users tokens` shows")
    revoke.set_defaults(func=revoke_token)
    logout = actions.add_parser("logout", parents=[common],
                                help="log a user out everywhere: revoke every token")
    logout.add_argument("login")
    logout.set_defaults(func=logout_user)
    review = actions.add_parser("review", parents=[common],
                                help="inactive, never activated and multi-tenant users")
    review.add_argument("--inactive", type=_whole_days, default=None, dest="inactive",
                        metavar="DURATION",
                        help="idle threshold such as 90d (default: access.default."
                        "inactive_after, 90d)")
    review.add_argument("--inactive-days", type=int, default=None,
                        help="the same threshold in days")
    review.add_argument("--disable-inactive", action="store_true",
                        help="disable the inactive and never-activated users listed")
    review.add_argument("--json", action="store_true")
    review.set_defaults(func=review_users)


def _operator() -> Any:
    from soc.alerts.model import Actor

    return Actor(f"cli:{getpass.getuser()}"[:64], None, "local")


def _directory(args: argparse.Namespace) -> tuple[Any, Any] | None:
    from collector.cli import load_or_report
    from collector.commands.tenants import store_path
    from soc.alerts.db import Database
    from soc.auth.config import access_policy
    from soc.auth.directory import UserDirectory

    config = load_or_report(args)
    if config is None:
        return None
    directory = UserDirectory(Database(store_path(config, args.data_dir)),
                              access_policy(config), known_tenants=lambda: set(config.tenants))
    return config, directory


def _enrollment_channel(config: Any, conf_dir: Any, data_dir: Any) -> Any:
    """The email channel that mails TOTP enrollments, or None (reported on stderr)."""
    from soc.auth.config import POLICY_ID
    from soc.auth.enrollment import enrollment_notifier
    from soc.notify.email import EmailChannel

    mail_id = enrollment_notifier(config)
    if mail_id is None:
        print("no notifier of type email is configured: the TOTP enrollment must be mailed "
              "to the user by the platform (set one under `notifiers:` or "
              f"`access.{POLICY_ID}.enrollment_notifier`)", file=sys.stderr)
        return None
    return EmailChannel(mail_id, config.section("notifiers")[mail_id], conf_dir.resolve(),
                        data_dir=data_dir)


def _show_enrollment(new: Any, issuer: str) -> None:
    """The TOTP enrollment on this terminal (whoever runs the CLI is an administrator of the
    host; the mail is the way for everyone else)."""
    import segno

    from soc.auth.totp import provisioning_uri

    uri = provisioning_uri(new.totp_secret, new.user.login, issuer)
    print(f"TOTP enrollment for {new.user.login} (scan it, then clear this terminal; it is "
          "shown once and not mailed):")
    segno.make(uri, error="m").terminal(compact=True)
    print(f"  otpauth URI: {uri}")
    log.warning("TOTP enrollment shown on the terminal instead of mailed",
                extra={"login": new.user.login})


def _print_activation(config: Any, new: Any, mailed: bool = True, outbox: bool = False
                      ) -> None:
    from soc.auth.config import public_url
    from soc.auth.enrollment import activation_link

    user = new.user
    if outbox:
        print(f"TOTP enrollment for {user.email} written to the outbox (read it with "
              "`vigil outbox show`: it holds the authenticator key and QR code)")
    elif mailed:
        print(f"TOTP enrollment mailed to {user.email}")
    print(f"hand this one-time activation link to {user.login} (valid until "
          f"{new.activation_expires}):")
    print(f"  {activation_link(public_url(config), user.login, new.activation_token)}")


def add_user(args: argparse.Namespace) -> int:
    def undo(directory: Any, new: Any) -> str:
        directory.remove_pending(new.user.login)
        return "user not created"

    return _enroll(args, "add", lambda directory: directory.add_user(
        args.login, args.name or args.login, args.email, args.role, args.tenants, _operator()),
        undo, lambda user: f"user {user.login} added ({user.role}; tenants: "
                           f"{', '.join(user.tenants)}); pending activation")


def reset_user(args: argparse.Namespace) -> int:
    return _enroll(
        args, "reset",
        lambda directory: directory.reset_enrollment(args.login, _operator(), args.reason),
        lambda _, new: f"the reset stands: run `vigil users reset {new.user.login}` again "
                       "once mail works",
        lambda user: f"user {user.login} reset: password and authenticator cleared, sessions "
                     "and API tokens revoked; pending activation")


def _enroll(args: argparse.Namespace, action: str, start: Callable[[Any], Any],
            on_mail_failure: Callable[[Any, Any], str], headline: Callable[[Any], str]) -> int:
    """Start an enrollment (`start` returns the NewUser), mail it, print the activation link;
    when the mail cannot be sent, `on_mail_failure` says (and does) what becomes of it."""
    from soc.auth.model import AuthError

    found = _directory(args)
    if found is None:
        return EX_CONFIG
    config, directory = found
    shown = getattr(args, "show_enrollment", False)
    channel = None if shown else _enrollment_channel(config, args.config_dir,
                                                          config.data_dir(args.data_dir))
    if channel is None and not shown:
        return EX_CONFIG
    try:
        new = start(directory)
    except AuthError as exc:
        print(f"cannot {action} user: {exc}", file=sys.stderr)
        return 1
    from soc.auth.config import access_policy
    from soc.auth.enrollment import send_enrollment

    if channel is None:
        print(headline(new.user))
        _show_enrollment(new, access_policy(config).issuer)
        _print_activation(config, new, mailed=False)
        return 0
    error = send_enrollment(channel, new, access_policy(config).issuer)
    if error is not None:
        print(f"cannot send the enrollment mail through {channel.channel_id!r} "
              f"({type(error).__name__}: {error}); {on_mail_failure(directory, new)}",
              file=sys.stderr)
        return EX_UNAVAILABLE
    print(headline(new.user))
    _print_activation(config, new, outbox=channel.outbox is not None)
    return 0


def _row(user: Any) -> tuple[str, ...]:
    return (user.login, user.role, user.status, ",".join(user.tenants), user.email,
            (user.last_login_at or "-")[:19], _status_change(user))


def _status_change(user: Any) -> str:
    """The last disable (while disabled) or enable again: when and by whom."""
    if user.status == "disabled" and user.disabled_at:
        return f"disabled {user.disabled_at[:16]} by {user.disabled_by or '?'}"
    if user.enabled_at:
        return f"enabled {user.enabled_at[:16]} by {user.enabled_by or '?'}"
    return "-"


def _print(users: list[Any]) -> None:
    table: list[tuple[str, ...]] = [("LOGIN", "ROLE", "STATUS", "TENANTS", "EMAIL", "LAST LOGIN",
                                     "DISABLED / ENABLED")]
    from collector.commands.tenants import print_table

    print_table(table + [_row(u) for u in users])


def list_users(args: argparse.Namespace) -> int:
    found = _directory(args)
    if found is None:
        return EX_CONFIG
    users = found[1].users()
    if args.json:
        print(json.dumps([u.public() for u in users], indent=2))
    else:
        _print(users)
    return 0


def _directory_change(args: argparse.Namespace, change: Callable[[Any], Any]
                      ) -> tuple[int, Any]:
    """(0, `change(directory)`), or the exit code when the configuration or the change fails
    (an AuthError such as no such user, printed)."""
    from soc.auth.model import AuthError

    found = _directory(args)
    if found is None:
        return EX_CONFIG, None
    try:
        return 0, change(found[1])
    except AuthError as exc:
        print(str(exc), file=sys.stderr)
        return 1, None


def disable_user(args: argparse.Namespace) -> int:
    code, user = _directory_change(
        args, lambda d: d.disable(args.login, _operator(), args.reason))
    if code:
        return code
    print(f"user {user.login} disabled; its sessions and API tokens are revoked")
    return 0


def enable_user(args: argparse.Namespace) -> int:
    code, user = _directory_change(
        args, lambda d: d.enable(args.login, _operator(), args.reason))
    if code:
        return code
    if user.status == "pending":
        print(f"user {user.login} enabled but pending: it never activated and its activation "
              f"link died with the disable; send a new one with `vigil users reset "
              f"{user.login}`")
    else:
        print(f"user {user.login} enabled: same password and authenticator; its sessions and "
              "API tokens from before the disable stay revoked")
    return 0


def unlock_user(args: argparse.Namespace) -> int:
    code, user = _directory_change(
        args, lambda d: d.unlock(args.login, _operator(), args.reason))
    if code:
        return code
    print(f"user {user.login} unlocked: every client address may log in again; password, "
          "authenticator and tokens unchanged")
    return 0


def _existing_user(args: argparse.Namespace) -> tuple[int, Any]:
    """(0, the directory) when `args.login` is a user, else the exit code (cause printed)."""
    found = _directory(args)
    if found is None:
        return EX_CONFIG, None
    if found[1].get(args.login) is None:
        print(f"no user {args.login!r}", file=sys.stderr)
        return 1, None
    return 0, found[1]


def list_tokens(args: argparse.Namespace) -> int:
    code, directory = _existing_user(args)
    if code:
        return code
    tokens = directory.tokens(args.login)
    if args.json:
        print(json.dumps(tokens, indent=2))
        return 0
    from collector.commands.tenants import print_table

    table: list[tuple[str, ...]] = [("ID", "KIND", "NAME", "TENANTS", "CREATED", "FROM",
                                     "EXPIRES", "PARENT")]
    print_table(table + [(t["id"], t["kind"], t["name"] or "-", ",".join(t["tenants"]),
                          t["created_at"][:19], t["created_from"] or "-",
                          t["expires_at"][:19], t["parent_id"] or "-") for t in tokens])
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    code, count = _directory_change(
        args, lambda d: d.revoke_token(args.login, args.token_id, _operator()))
    if code:
        return code
    print(f"revoked {count} token(s) of {args.login}")
    return 0


def logout_user(args: argparse.Namespace) -> int:
    code, directory = _existing_user(args)
    if code:
        return code
    count = directory.revoke_all(args.login, _operator())
    print(f"{args.login} logged out everywhere: {count} token(s) revoked")
    return 0


def _whole_days(text: str) -> timedelta:
    """`--inactive 90d`: a duration of at least a day."""
    from core.config import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < timedelta(days=1):
        raise argparse.ArgumentTypeError("the inactivity threshold is counted in days: at "
                                         "least 1d")
    return value


def review_users(args: argparse.Namespace) -> int:
    found = _directory(args)
    if found is None:
        return EX_CONFIG
    directory = found[1]
    idle = args.inactive or (timedelta(days=args.inactive_days) if args.inactive_days
                             else None)
    review = directory.review(idle)
    disabled: list[str] = []
    if args.disable_inactive:
        for user in review["inactive"] + review["never_activated"]:
            directory.disable(user.login, _operator(), "access review: inactive")
            disabled.append(user.login)
    # The review itself is audited (who, when, what each list held), as the console does.
    directory.record_review(_operator(), idle or directory.policy.inactive_after,
                            {k: [u.login for u in v] for k, v in review.items()},
                            f"disabled: {', '.join(disabled)}"[:500] if disabled
                            else "reviewed")
    if args.json:
        print(json.dumps({k: [u.public() for u in v] for k, v in review.items()}
                         | {"disabled": disabled}, indent=2))
        return 0
    days = (idle or directory.policy.inactive_after).days
    titles = {"inactive": f"inactive (no login for {days} days)",
              "never_activated": "never activated", "multi_tenant": "multi-tenant scopes"}
    for key, title in titles.items():
        print(f"{title}: {len(review[key])}")
        if review[key]:
            _print(review[key])
        print()
    off = [u for u in directory.users() if u.status == "disabled"]
    print(f"disabled accounts: {len(off)}"
          + (" (`vigil users enable LOGIN --reason ...` brings one back)" if off else ""))
    if off:
        _print(off)
    if disabled:
        print(f"disabled: {', '.join(disabled)}")
    return 0
