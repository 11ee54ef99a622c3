"""Rolling sums: amounts reserved against a cap before signing, kept or released after.

    reserve ──▶ state "reserved" ──signed──▶ "kept"      (counts for its window)
                                 └─failed──▶ "released"  (counts no more)

A reservation is checked and written inside the store's exclusive write
transaction, so two requests (threads, processes or servers on one
PostgreSQL) can never both fit under a cap that has room for one. What is
reserved but never settled (the server was killed between ``kms:Sign`` and
its outcome) keeps counting: it may have been signed.

Amounts are integers in base units (wei, a token's smallest unit, or 1 per
signature for the rate), stored as decimal text: a uint256 fits no SQL
integer. Sums are taken in Python over the window's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ._backend import Connection


class Reservation(Protocol):
    """What a policy decision asks the ledger to hold (``policy.Reservation``)."""

    @property
    def scope(self) -> str: ...  # e.g. "native:8453", "token:usdc", "rate"

    @property
    def amount(self) -> int: ...

    @property
    def cap(self) -> int: ...

    @property
    def window_seconds(self) -> int: ...


@dataclass(frozen=True)
class Usage:
    """How much of a cap the window holds now, and when the oldest amounts leave it."""

    used: int
    # (time an amount leaves the window, amount), oldest first
    expiring: tuple[tuple[float, int], ...]

    def frees_at(self, needed: int) -> float | None:
        """When enough leaves the window for ``needed`` more to fit under what is used now."""
        freed = 0
        for leaves_at, amount in self.expiring:
            freed += amount
            if freed >= needed:
                return leaves_at
        return None


@dataclass(frozen=True)
class Exceeded:
    """A reservation that does not fit: nothing was written."""

    reservation: Reservation
    usage: Usage

    def frees_at(self) -> float | None:
        room = self.reservation.cap - self.usage.used
        return self.usage.frees_at(self.reservation.amount - room)


def usage(connection: Connection, scope: str, window_seconds: int, now: float) -> Usage:
    rows = connection.query(
        "SELECT amount, created FROM ledger WHERE scope = ? AND created > ? AND state <> ? "
        "ORDER BY created",
        (scope, now - window_seconds, "released"),
    )
    expiring = tuple((float(created) + window_seconds, int(amount)) for amount, created in rows)
    return Usage(sum(amount for _, amount in expiring), expiring)


def check(
    connection: Connection, reservations: Sequence[Reservation], now: float
) -> Exceeded | None:
    """The first reservation that does not fit beside what its window holds, if any."""
    for reservation in reservations:
        current = usage(connection, reservation.scope, reservation.window_seconds, now)
        if current.used + reservation.amount > reservation.cap:
            return Exceeded(reservation, current)
    return None


def hold(
    connection: Connection,
    reservations: Sequence[Reservation],
    now: float,
    intent_seq: int | None = None,
) -> list[str]:
    """Write the reservations (after ``check``, in the same transaction); returns their ids."""
    held = []
    for reservation in reservations:
        hold_id = uuid.uuid4().hex
        connection.execute(
            "INSERT INTO ledger (id, scope, amount, created, state, intent_seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (hold_id, reservation.scope, str(reservation.amount), now, "reserved", intent_seq),
        )
        held.append(hold_id)
    return held


def settle(connection: Connection, hold_ids: Sequence[str], *, kept: bool) -> None:
    """Keep (signed) or release (not signed) what ``hold`` wrote."""
    state = "kept" if kept else "released"
    for hold_id in hold_ids:
        connection.execute(
            "UPDATE ledger SET state = ? WHERE id = ? AND state = ?", (state, hold_id, "reserved")
        )
