"""The guard's answer as a value: allow, deny with the key that decided, or ask a person.

A ``Decision`` also carries what the ledger must reserve before ``kms:Sign``
(``Reservation``: an amount against a rolling cap) and the effects in plain
words. When the ledger finds a reservation would pass its cap, ``cap_denial``
words the refusal: what was asked, what is used, what is left, and when more
frees up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from .._errors import PolicyDenied
from .effects import Effect
from .units import format_units

Outcome = Literal["allow", "deny", "approve"]


@dataclass(frozen=True)
class Reservation:
    """``amount`` to reserve in ``scope`` against ``cap`` over the last ``window_seconds``.

    Scopes: ``native:<chain id>`` (wei, per chain), ``token:<policy name>`` (base
    units, over all the token's chains), ``rate`` (1 per signature).
    """

    scope: str
    amount: int
    cap: int
    window_seconds: int
    key: str
    unit: str  # "USDC", "ETH", "signatures"
    decimals: int
    action: str  # what the request does with the amount: "sends", "sends or approves"

    def format(self, amount: int) -> str:
        """``amount`` in this reservation's units: ``"1,900 USDC"``, ``"3 signatures"``."""
        if self.scope == "rate":
            return f"{amount:,} signature{'s' if amount != 1 else ''}"
        return f"{format_units(amount, self.decimals)} {self.unit}"

    @property
    def window(self) -> str:
        return "per hour" if self.window_seconds == 3600 else "per 24 h"


@dataclass(frozen=True)
class Decision:
    """What the policy says about one request.

    ``key``: for a denial, the dotted policy key that decided (``default`` when no
    entry allows the request); for an approval, the ``approve_above`` key that asks
    for a person; for an allowance, the entry that allowed it (for the audit
    record). ``reason``: the sentence after ``policy_denied: KEY:``.
    ``summary``: the effects in plain words, one per line, for the person asked.
    """

    outcome: Outcome
    key: str
    reason: str
    effects: tuple[Effect, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    summary: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    @property
    def denial(self) -> str:
        """``policy_denied: KEY: reason`` (the refusal text; meaningful for a denial)."""
        return f"policy_denied: {self.key}: {self.reason}"

    def error(self) -> PolicyDenied:
        """The refusal as the error the tools return."""
        return PolicyDenied(f"{self.key}: {self.reason}")

    def __str__(self) -> str:
        if self.outcome == "deny":
            return self.denial
        return f"{self.outcome}: {self.key}: {self.reason}"


def cap_denial(
    reservation: Reservation, used: int, frees_at: datetime | None, now: datetime
) -> Decision:
    """The refusal when ``used`` (already reserved in the window) + this would pass the cap.

    ``frees_at``: when the oldest reservation in the window expires (None if none).
    """
    asked = reservation.format(reservation.amount)
    cap = reservation.format(reservation.cap)
    left = max(reservation.cap - used, 0)
    if reservation.scope == "rate":
        sentence = (
            f"this would be one more signature; {used:,} of the {cap} allowed "
            f"{reservation.window} are already used, so none is left now"
        )
    else:
        sentence = (
            f"this {reservation.action} {asked}; {reservation.format(used)} of the {cap} "
            f"allowed {reservation.window} are already used, so {reservation.format(left)} "
            "is left now"
        )
    if frees_at is not None and frees_at > now:
        sentence += (
            f"; more frees up from {frees_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        )
    elif frees_at is None and used == 0:
        sentence += f"; no single request may exceed {cap}"
    return Decision(
        outcome="deny",
        key=reservation.key,
        reason=sentence + ".",
        reservations=(reservation,),
    )
