"""Approval requests: waiting for a person, then approved or denied, then used once.

    pending ──approve──▶ approved ──used by the matching request──▶ used
       │  └───deny────▶ denied ◀──deny (revoked before use)──┘
       └──ttl passes──▶ (expired: read as such, never used)

An approval is bound to the request's digest and to the sha256 of the policy
that asked for it: ``consume`` marks it used only for that digest under that
policy, before its expiry, and only once (the UPDATE's row count is the proof,
and every write runs in the store's exclusive transaction). A request waits
``ttl`` for a person; an approval, once given, lasts ``ttl`` from that moment
(while pending, ``expires - created`` is the ttl, so no column holds it twice).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from ._backend import Connection, Row

_COLUMNS = (
    "id, digest, policy_sha256, tool, summary, client, created, expires, status, decided, "
    "channel, used"
)
# Unambiguous to read aloud and type: no 0/o, 1/l/i.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class Approval:
    id: str
    digest: str
    policy_sha256: str
    tool: str
    summary: str
    client: str
    created: float
    expires: float
    status: str  # pending | approved | denied | used
    decided: float | None
    channel: str | None
    used: float | None

    def state_at(self, now: float) -> str:
        """The status, with ``expired`` for a pending or approved one past its expiry."""
        if self.status in ("pending", "approved") and now >= self.expires:
            return "expired"
        return self.status


def new_id() -> str:
    return "ap-" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


def _approval(row: Row) -> Approval:
    return Approval(*row)


def create(
    connection: Connection,
    *,
    digest: str,
    policy_sha256: str,
    tool: str,
    summary: str,
    client: str,
    now: float,
    ttl: float,
) -> Approval:
    """A new pending request, or the one this client already has pending for it."""
    for existing in find(connection, digest, policy_sha256, client):
        if existing.state_at(now) == "pending":
            return existing
    approval = Approval(
        new_id(),
        digest,
        policy_sha256,
        tool,
        summary,
        client,
        now,
        now + ttl,
        "pending",
        None,
        None,
        None,
    )
    connection.execute(
        f"INSERT INTO approvals ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant columns
        (
            approval.id, approval.digest, approval.policy_sha256, approval.tool, approval.summary,
            approval.client, approval.created, approval.expires, approval.status, None, None, None,
        ),
    )  # fmt: skip
    return approval


def find(connection: Connection, digest: str, policy_sha256: str, client: str) -> list[Approval]:
    """The requests ``client`` filed for exactly this digest under this policy."""
    rows = connection.query(
        f"SELECT {_COLUMNS} FROM approvals WHERE digest = ? AND policy_sha256 = ? AND client = ? "  # noqa: S608 - constant columns
        "ORDER BY created",
        (digest, policy_sha256, client),
    )
    return [_approval(row) for row in rows]


def get(connection: Connection, approval_id: str) -> Approval | None:
    rows = connection.query(f"SELECT {_COLUMNS} FROM approvals WHERE id = ?", (approval_id,))  # noqa: S608 - constant columns
    return _approval(rows[0]) if rows else None


def listing(connection: Connection, since: float) -> list[Approval]:
    rows = connection.query(
        f"SELECT {_COLUMNS} FROM approvals WHERE created >= ? ORDER BY created",  # noqa: S608 - constant columns
        (since,),
    )
    return [_approval(row) for row in rows]


def decide(
    connection: Connection, approval_id: str, *, approve: bool, channel: str, now: float
) -> Approval | None:
    """Approve a pending request, or deny a pending or approved one, before its expiry.

    None if no request by that id is in that state. Denying an approved request
    revokes it: a "no" wins as long as the approval has not been used.
    """
    if approve:
        changed = connection.execute(
            "UPDATE approvals SET status = ?, decided = ?, channel = ?, "
            "expires = ? + (expires - created) WHERE id = ? AND status = ? AND expires > ?",
            ("approved", now, channel, now, approval_id, "pending", now),
        )
    else:
        changed = connection.execute(
            "UPDATE approvals SET status = ?, decided = ?, channel = ? "
            "WHERE id = ? AND status IN (?, ?) AND expires > ?",
            ("denied", now, channel, approval_id, "pending", "approved", now),
        )
    return get(connection, approval_id) if changed == 1 else None


def consume(
    connection: Connection,
    approvals: Sequence[Approval],
    digest: str,
    policy_sha256: str,
    client: str,
    now: float,
) -> Approval | None:
    """Mark the first usable approval of ``client`` for exactly this digest and policy used.

    None if none: an approval is for the client that asked, not for another that sends
    the same request first.
    """
    for approval in approvals:
        changed = connection.execute(
            "UPDATE approvals SET status = ?, used = ? WHERE id = ? AND status = ? "
            "AND digest = ? AND policy_sha256 = ? AND client = ? AND expires > ?",
            ("used", now, approval.id, "approved", digest, policy_sha256, client, now),
        )
        if changed == 1:
            return approval
    return None
