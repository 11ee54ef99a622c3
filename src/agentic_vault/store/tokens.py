"""HTTP bearer tokens: made once, shown once, kept only as their SHA-256, revoked by name.

    token create NAME ──▶ avt_<43 url-safe chars> (printed once) ──▶ row: NAME, sha256, created
    request with Bearer T ──▶ sha256(T) ──▶ the live row with that hash ──▶ NAME (and its policy)
    token revoke NAME ──▶ row.revoked = now ──▶ refused by every server on this store at once

The token is 32 random bytes, so its SHA-256 is all a stolen copy of the store
gives away: no salt or slow hash is needed to protect it. A lookup is one
indexed query on the hash; the stored hash is then compared in constant time
with the presented one, so the row found proves the match, not the index
alone. A name is the audit records' client: a revoked name may be given a new
token (rotation), a live one may not be taken twice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ._backend import Connection

TOKEN_PREFIX = "avt_"  # noqa: S105 - the public prefix, not a secret
TOKEN_BYTES = 32
# Longer than any token we make: hashing what a client sends costs nothing, but
# there is no reason to accept a megabyte of header as a candidate.
MAX_TOKEN_CHARS = 256


class TokenExists(Exception):
    """A live token already has this name."""


@dataclass(frozen=True)
class TokenInfo:
    """A token as ``token list`` shows it: never the token itself."""

    name: str
    created: float
    revoked: float | None
    policy: str | None


@dataclass(frozen=True)
class Bearer:
    """Who a valid token speaks for, and the policy it is judged by (None: the server's)."""

    name: str
    policy: str | None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(connection: Connection, name: str, now: float, policy: str | None = None) -> str:
    """A new token for ``name``; returns it (the only time it exists outside the client).

    Raises ``TokenExists`` if ``name`` has a live token. A revoked one is replaced.
    """
    rows = connection.query("SELECT revoked FROM tokens WHERE name = ?", (name,))
    if rows and rows[0][0] is None:
        raise TokenExists(name)
    token = new_token()
    connection.execute("DELETE FROM tokens WHERE name = ?", (name,))
    connection.execute(
        "INSERT INTO tokens (name, token_sha256, created, revoked, policy) VALUES (?, ?, ?, ?, ?)",
        (name, token_sha256(token), now, None, policy),
    )
    return token


def listing(connection: Connection) -> list[TokenInfo]:
    rows = connection.query("SELECT name, created, revoked, policy FROM tokens ORDER BY name")
    return [TokenInfo(str(n), float(c), None if r is None else float(r), p) for n, c, r, p in rows]


def revoke(connection: Connection, name: str, now: float) -> bool:
    """Revoke ``name``'s live token; False if it has none."""
    changed = connection.execute(
        "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (now, name)
    )
    return changed == 1


def lookup(connection: Connection, token: str) -> Bearer | None:
    """Whom ``token`` speaks for; None if it is unknown or revoked."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    presented = token_sha256(token)
    rows = connection.query(
        "SELECT name, token_sha256, policy FROM tokens WHERE token_sha256 = ? AND revoked IS NULL",
        (presented,),
    )
    for name, stored, policy in rows:
        if hmac.compare_digest(str(stored), presented):
            return Bearer(str(name), None if policy is None else str(policy))
    return None
