"""Permit2 messages: allowances (PermitSingle, PermitBatch) and one-time transfers
(PermitTransferFrom, PermitBatchTransferFrom, the witness kinds), one effect per token.

A payload is Permit2's if its domain says so by name or by address; it is read
only if both are right and its types are Permit2's own, else it is a forgery
or a mistake and the decider refuses it.
"""

from __future__ import annotations

from ..._typed_data import TypedDataPayload
from ..effects import TokenAllowance, Unreadable

PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
DOMAIN_NAME = "Permit2"

_DETAILS = [
    ("token", "address"),
    ("amount", "uint160"),
    ("expiration", "uint48"),
    ("nonce", "uint48"),
]
_PERMISSIONS = [("token", "address"), ("amount", "uint256")]
_ALLOWANCE = {
    "PermitSingle": [
        ("details", "PermitDetails"),
        ("spender", "address"),
        ("sigDeadline", "uint256"),
    ],
    "PermitBatch": [
        ("details", "PermitDetails[]"),
        ("spender", "address"),
        ("sigDeadline", "uint256"),
    ],
}
_TRANSFER_HEAD = [("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256")]
_TRANSFER = {
    "PermitTransferFrom": [("permitted", "TokenPermissions"), *_TRANSFER_HEAD],
    "PermitBatchTransferFrom": [("permitted", "TokenPermissions[]"), *_TRANSFER_HEAD],
    "PermitWitnessTransferFrom": [("permitted", "TokenPermissions"), *_TRANSFER_HEAD],
    "PermitBatchWitnessTransferFrom": [("permitted", "TokenPermissions[]"), *_TRANSFER_HEAD],
}
PRIMARY_TYPES = (*_ALLOWANCE, *_TRANSFER)


def claims_permit2(payload: TypedDataPayload) -> bool:
    domain = payload.full_message["domain"]
    return domain.get("name") == DOMAIN_NAME or payload.verifying_contract == PERMIT2


def decode(payload: TypedDataPayload) -> tuple[TokenAllowance, ...] | Unreadable | None:
    """The grants of a Permit2 message; None if it does not claim to be one."""
    if not claims_permit2(payload):
        return None
    message = payload.full_message
    domain = message["domain"]
    primary = message["primaryType"]
    chain_id = payload.chain_id
    if (
        domain.get("name") != DOMAIN_NAME
        or payload.verifying_contract != PERMIT2
        or set(domain) != {"name", "chainId", "verifyingContract"}
        or chain_id is None
    ):
        return _forged(
            "its domain is not Permit2's (name 'Permit2', chainId, verifyingContract "
            f"{PERMIT2}, nothing else)",
            chain_id,
        )
    types = {
        name: [(f["name"], f["type"]) for f in fields] for name, fields in message["types"].items()
    }
    values = message["message"]
    if primary in _ALLOWANCE:
        if types.get(primary) != _ALLOWANCE[primary] or types.get("PermitDetails") != _DETAILS:
            return _forged(f"its {primary} type is not Permit2's", chain_id)
        entries, deadline, method = values["details"], values["sigDeadline"], f"Permit2 {primary}"
    elif primary in _TRANSFER:
        fields = types.get(primary, [])
        expected = _TRANSFER[primary]
        # A witness kind adds one last field, of the application's own struct type.
        witness = fields[len(expected) :] if "Witness" in primary else []
        if (
            fields[: len(expected)] != expected
            or len(fields) != len(expected) + (1 if "Witness" in primary else 0)
            or types.get("TokenPermissions") != _PERMISSIONS
        ):
            return _forged(f"its {primary} type is not Permit2's", chain_id)
        entries, deadline = values["permitted"], values["deadline"]
        method = f"Permit2 {primary}" + (f" with witness {witness[0][1]}" if witness else "")
    else:
        return _forged(
            f"{primary!r} is not a Permit2 message type ({', '.join(PRIMARY_TYPES)})", chain_id
        )
    # Allowances (PermitDetails) carry an expiration; transfer permits are used once.
    grants = tuple(
        TokenAllowance(
            chain_id=chain_id,
            token=entry["token"],
            spender=values["spender"],
            amount=entry["amount"],
            method=method,
            deadline=deadline,
            expires_at=entry.get("expiration"),
            single_use=primary in _TRANSFER,
            signed=True,
        )
        for entry in (entries if isinstance(entries, list) else [entries])
    )
    return grants if grants else _forged("it lists no token", chain_id)


def _forged(reason: str, chain_id: int | None) -> Unreadable:
    return Unreadable(what="a Permit2 message", reason=reason, chain_id=chain_id)
