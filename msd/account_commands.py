"""``msd user ...`` and ``msd token ...``: who may use the service, managed from the shell.

These commands need only PostgreSQL, so they work while ``msd serve`` runs.
"""

from __future__ import annotations

import argparse
import getpass
import re
import secrets
import sys
from datetime import datetime, timedelta, timezone
from typing import Callable

from msd.settings import Settings, SettingsError, is_loopback
from workflow import accounts
from workflow.accounts import ROLES, AccountError

__all__ = ["add_account_commands", "create_demo_credentials", "refuse_demo_on_network"]

DEMO_USER = "demo"
DEMO_TOKEN_NAME = "demo"


def _pool(settings: Settings):  # type: ignore[no-untyped-def]
    from workflow.db import open_pool

    return open_pool(settings, max_size=1)


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """'30d', '12h', '90m', a date (end of that day, UTC) or an ISO instant."""
    now = now or datetime.now(timezone.utc)
    match = re.fullmatch(r"(\d{1,6})\s*([dhm])", text.strip())
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        return now + timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AccountError(
            f"--expires {text!r} must be like 30d, 12h, 90m, 2027-01-31 or 2027-01-31T12:00Z"
        ) from None
    if len(text.strip()) == 10:
        moment = moment + timedelta(days=1)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password from stdin, a prompt, or made up here; and whether it was made up."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise AccountError("the two passwords differ")
        return first, False
    return secrets.token_urlsafe(18), True


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    db = _pool(settings)
    try:
        if args.action == "add":
            password, generated = _read_password(args)
            accounts.add_user(db, args.name, password, args.role)
            print(f"added {args.role} user {args.name}")
            if generated:
                print(f"password (shown once): {password}")
        elif args.action == "disable":
            accounts.disable_user(db, args.name)
            print(f"disabled user {args.name}: their sessions and tokens stop working within 2 s")
        else:
            for user in accounts.list_users(db):
                state = "disabled" if user["disabled_at"] else "enabled"
                demo = " (demo)" if user["demo"] else ""
                print(f"{user['username']}\t{user['role']}\t{state}{demo}")
    finally:
        db.close()
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    db = _pool(settings)
    try:
        if args.action == "create":
            expires = parse_expiry(args.expires) if args.expires else None
            token_id, secret = accounts.create_token(
                db, args.name, args.role, username=args.user, expires_at=expires
            )
            until = f", expires {expires.isoformat(timespec='minutes')}" if expires else ""
            print(f"token {token_id} ({args.role}{until}); shown once, store it now:")
            print(secret)
        elif args.action == "revoke":
            accounts.revoke_token(db, args.token_id)
            print(f"revoked token {args.token_id}")
        else:
            for token in accounts.list_tokens(db):
                state = "revoked" if token["revoked_at"] else "active"
                expires = token["expires_at"].isoformat() if token["expires_at"] else "never"
                owner = token["username"] or "-"
                print(
                    f"{token['token_id']}\t{token['token_prefix']}…\t{token['name']}\t"
                    f"{token['role']}\t{owner}\t{state}\texpires {expires}"
                )
    finally:
        db.close()
    return 0


def add_account_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    user = command("user", cmd_user, "Add, list or disable dashboard users.")
    user_actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = user_actions.add_parser("add", help="add a user (password prompted, or from stdin)")
    add.add_argument("name", help="username: letters, digits, . _ @ -")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    disable = user_actions.add_parser("disable", help="disable a user and end their sessions")
    disable.add_argument("name")
    user_actions.add_parser("list", help="list users")

    token = command("token", cmd_token, "Create, list or revoke API tokens.")
    token_actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_actions.add_parser("create", help="make a token (shown once)")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--name", default="cli", help="what the token is for (shown in lists)")
    create.add_argument("--user", default=None, help="the user it acts for (audit trail)")
    create.add_argument("--expires", default=None, help="30d, 12h, 90m or a date; default never")
    revoke = token_actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", type=int)
    token_actions.add_parser("list", help="list tokens (never their secrets)")


def create_demo_credentials(db) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A fresh password for the demo admin and a fresh admin token; older demo tokens revoked."""
    password = secrets.token_urlsafe(12)
    names = {user["username"]: user for user in accounts.list_users(db)}
    if DEMO_USER in names:
        accounts.reset_password(db, DEMO_USER, password)
    else:
        accounts.add_user(db, DEMO_USER, password, "admin", demo=True)
    for token in accounts.list_tokens(db):
        if token["name"] == DEMO_TOKEN_NAME and token["revoked_at"] is None:
            accounts.revoke_token(db, token["token_id"])
    _, secret = accounts.create_token(db, DEMO_TOKEN_NAME, "admin", username=DEMO_USER)
    return password, secret


def refuse_demo_on_network(settings: Settings, db) -> None:  # type: ignore[no-untyped-def]
    """A network bind with the printed demo credentials still valid would hand out admin."""
    if is_loopback(settings.host):
        return
    demo_users = accounts.enabled_demo_users(db)
    if demo_users:
        raise SettingsError(
            f"MSD_HOST={settings.host} is not loopback and the demo user "
            f"{', '.join(demo_users)} is enabled: run `msd user disable demo` first"
        )
