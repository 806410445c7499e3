"""Users, API tokens and dashboard sessions, kept in PostgreSQL with only digests of secrets.

Roles are ordered: a ``viewer`` reads dashboards, alerts and exports; an ``analyst`` also changes
statuses, runs batches and ingests; an ``admin`` also manages users and tokens. A token that acts
for a user never has more rights than that user has now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

from workflow.db import Database

__all__ = [
    "ROLES",
    "AccountError",
    "Principal",
    "add_user",
    "create_token",
    "hash_password",
    "list_tokens",
    "list_users",
    "principal_for_session",
    "principal_for_token",
    "rank",
    "reset_password",
    "revoke_token",
    "sign_in",
    "sign_out",
    "verify_password",
]

logger = logging.getLogger(__name__)

ROLES = ("viewer", "analyst", "admin")
TOKEN_PREFIX = "msd_"
MAX_PASSWORD_LENGTH = 1024
MIN_PASSWORD_LENGTH = 12

# scrypt at N=2^14, r=8 takes about 0.15 s here: slow for a guesser, fine for a sign-in.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
# A session's last use is written at most this often, so that reads stay reads.
_TOUCH_EVERY = timedelta(minutes=1)


class AccountError(ValueError):
    """A request about users or tokens that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, with which role, and through which credential."""

    name: str
    role: str
    credential: str  # "token:<id>", "session" or "anonymous"
    user_id: int | None = None
    token_id: int | None = None
    csrf_token: str | None = None

    def may(self, role: str) -> bool:
        return rank(self.role) >= rank(role)

    @property
    def limit_key(self) -> str:
        """What request limits are counted per: the token, the user, or all anonymous clients."""
        if self.token_id is not None:
            return f"token:{self.token_id}"
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return "anonymous"


def rank(role: str) -> int:
    try:
        return ROLES.index(role)
    except ValueError:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}") from None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    _check_password(password)
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt" or len(password) > MAX_PASSWORD_LENGTH:
        return False
    expected = _unb64(key)
    actual = hashlib.scrypt(
        password.encode(),
        salt=_unb64(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        maxmem=_SCRYPT_MAXMEM,
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")


def add_user(db: Database, username: str, password: str, role: str, *, demo: bool = False) -> int:
    rank(role)
    password_hash = hash_password(password)
    try:
        with db.transaction(actor="accounts", source="accounts") as conn:
            row = conn.execute(
                "INSERT INTO users (username, password_hash, role, demo) VALUES (%s, %s, %s, %s)"
                " RETURNING user_id",
                (username, password_hash, role, demo),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"a user named {username!r} exists already") from None
    except psycopg.errors.CheckViolation:
        raise AccountError(
            f"username {username!r} must be 1 to 64 letters, digits or . _ @ -, "
            "starting with a letter or digit"
        ) from None
    logger.info("added %s user %s", role, username)
    return int(row[0])


def reset_password(db: Database, username: str, password: str) -> None:
    """A new password for an enabled user; their open sessions end."""
    password_hash = hash_password(password)
    with db.transaction(actor="accounts", source="accounts") as conn:
        row = conn.execute(
            "UPDATE users SET password_hash = %s WHERE username = %s AND disabled_at IS NULL"
            " RETURNING user_id",
            (password_hash, username),
        ).fetchone()
        if row is None:
            raise AccountError(f"no enabled user named {username!r}")
        conn.execute("DELETE FROM sessions WHERE user_id = %s", (row[0],))


def disable_user(db: Database, username: str) -> None:
    """Disable a user: their sessions end and their tokens stop working at once."""
    with db.transaction(actor="accounts", source="accounts") as conn:
        row = conn.execute(
            "UPDATE users SET disabled_at = now() WHERE username = %s AND disabled_at IS NULL"
            " RETURNING user_id",
            (username,),
        ).fetchone()
        if row is None:
            raise AccountError(f"no enabled user named {username!r}")
        conn.execute("DELETE FROM sessions WHERE user_id = %s", (row[0],))
    logger.info("disabled user %s", username)


def list_users(db: Database) -> list[dict[str, Any]]:
    with db.reading() as conn:
        cursor = conn.execute(
            "SELECT user_id, username, role, demo, created_at, disabled_at FROM users"
            " ORDER BY user_id"
        )
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def enabled_demo_users(db: Database) -> list[str]:
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT username FROM users WHERE demo AND disabled_at IS NULL ORDER BY username"
        ).fetchall()
    return [row[0] for row in rows]


def create_token(
    db: Database,
    name: str,
    role: str,
    *,
    username: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    """A new token: its id and the secret, which is shown to the caller once and never stored."""
    rank(role)
    if not 1 <= len(name) <= 100:
        raise AccountError("a token name needs 1 to 100 characters")
    if expires_at is not None and expires_at <= datetime.now(timezone.utc):
        raise AccountError(f"the expiry {expires_at.isoformat()} is in the past")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction(actor="accounts", source="accounts") as conn:
        user_id = _token_owner(conn, username, role)
        row = conn.execute(
            "INSERT INTO api_tokens (token_digest, token_prefix, name, role, user_id, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING token_id",
            (_digest(secret), secret[: len(TOKEN_PREFIX) + 6], name, role, user_id, expires_at),
        ).fetchone()
    logger.info("created %s token %d (%s)", role, row[0], name)
    return int(row[0]), secret


def _token_owner(conn: psycopg.Connection, username: str | None, role: str) -> int | None:
    if username is None:
        return None
    row = conn.execute(
        "SELECT user_id, role FROM users WHERE username = %s AND disabled_at IS NULL", (username,)
    ).fetchone()
    if row is None:
        raise AccountError(f"no enabled user named {username!r}")
    if rank(role) > rank(row[1]):
        raise AccountError(f"user {username!r} is {row[1]}: a token for them cannot be {role}")
    return int(row[0])


def revoke_token(db: Database, token_id: int) -> None:
    with db.transaction(actor="accounts", source="accounts") as conn:
        row = conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL"
            " RETURNING token_id",
            (token_id,),
        ).fetchone()
    if row is None:
        raise AccountError(f"no active token with id {token_id}")
    logger.info("revoked token %d", token_id)


def list_tokens(db: Database) -> list[dict[str, Any]]:
    with db.reading() as conn:
        cursor = conn.execute(
            "SELECT t.token_id, t.token_prefix, t.name, t.role, u.username, t.created_at,"
            " t.expires_at, t.revoked_at, t.last_used_at"
            " FROM api_tokens t LEFT JOIN users u USING (user_id) ORDER BY t.token_id"
        )
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def principal_for_token(db: Database, secret: str) -> Principal | None:
    """The principal of a valid token, or None when it is unknown, revoked or expired."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    with db.reading() as conn:
        row = conn.execute(
            "SELECT t.token_id, t.name, t.role, t.user_id, u.username, u.role,"
            "  t.last_used_at IS NULL OR t.last_used_at < now() - %s"
            " FROM api_tokens t LEFT JOIN users u USING (user_id)"
            " WHERE t.token_digest = %s AND t.revoked_at IS NULL"
            "  AND (t.expires_at IS NULL OR t.expires_at > now())"
            "  AND (t.user_id IS NULL OR u.disabled_at IS NULL)",
            (_TOUCH_EVERY, _digest(secret)),
        ).fetchone()
    if row is None:
        return None
    token_id, name, role, user_id, username, user_role, stale = row
    if stale:
        with db.transaction(actor="accounts", source="accounts") as conn:
            conn.execute(
                "UPDATE api_tokens SET last_used_at = now() WHERE token_id = %s", (token_id,)
            )
    if user_role is not None and rank(user_role) < rank(role):
        role = user_role  # the user was demoted after the token was made
    return Principal(
        name=username or f"token {name}",
        role=role,
        credential=f"token:{token_id}",
        user_id=user_id,
        token_id=token_id,
    )


def sign_in(
    db: Database, username: str, password: str, lifetime: timedelta
) -> tuple[str, Principal] | None:
    """A new session for right credentials: its id (for the cookie) and principal; else None."""
    with db.reading() as conn:
        row = conn.execute(
            "SELECT user_id, password_hash, role FROM users"
            " WHERE username = %s AND disabled_at IS NULL",
            (username,),
        ).fetchone()
    if row is None:
        # Spend the same time as a wrong password, so that timing does not reveal names.
        verify_password(password, _DUMMY_HASH)
        return None
    user_id, password_hash, role = row
    if not verify_password(password, password_hash):
        return None
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    with db.transaction(actor="accounts", source="accounts") as conn:
        conn.execute("DELETE FROM sessions WHERE expires_at < now()")
        conn.execute(
            "INSERT INTO sessions (session_digest, user_id, csrf_token, expires_at)"
            " VALUES (%s, %s, %s, now() + %s)",
            (_digest(session_id), user_id, csrf_token, lifetime),
        )
    logger.info("user %s signed in", username)
    principal = Principal(username, role, "session", user_id=user_id, csrf_token=csrf_token)
    return session_id, principal


_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def principal_for_session(db: Database, session_id: str, lifetime: timedelta) -> Principal | None:
    """The principal of a live session; each use extends it by ``lifetime`` from now."""
    if len(session_id) > 200:
        return None
    with db.reading() as conn:
        row = conn.execute(
            "SELECT s.user_id, u.username, u.role, s.csrf_token, s.last_seen_at < now() - %s"
            " FROM sessions s JOIN users u USING (user_id)"
            " WHERE s.session_digest = %s AND s.expires_at > now() AND u.disabled_at IS NULL",
            (_TOUCH_EVERY, _digest(session_id)),
        ).fetchone()
    if row is None:
        return None
    user_id, username, role, csrf_token, stale = row
    if stale:
        with db.transaction(actor="accounts", source="accounts") as conn:
            conn.execute(
                "UPDATE sessions SET last_seen_at = now(), expires_at = now() + %s"
                " WHERE session_digest = %s",
                (lifetime, _digest(session_id)),
            )
    return Principal(username, role, "session", user_id=user_id, csrf_token=csrf_token)


def sign_out(db: Database, session_id: str) -> None:
    with db.transaction(actor="accounts", source="accounts") as conn:
        conn.execute("DELETE FROM sessions WHERE session_digest = %s", (_digest(session_id),))
