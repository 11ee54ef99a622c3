"""EIP-2612 ``Permit`` (and DAI's older ``Permit``): an allowance granted by signature.

The token is the domain's ``verifyingContract``. Only the two exact type
shapes are read; any other struct called ``Permit`` is other typed data.
"""

from __future__ import annotations

from ..._typed_data import TypedDataPayload
from ..effects import TokenAllowance

EIP2612_FIELDS = [
    ("owner", "address"),
    ("spender", "address"),
    ("value", "uint256"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
]
# DAI (and a few of its forks): `allowed` grants all or nothing; expiry 0 never expires.
DAI_FIELDS = [
    ("holder", "address"),
    ("spender", "address"),
    ("nonce", "uint256"),
    ("expiry", "uint256"),
    ("allowed", "bool"),
]
UINT256_MAX = 2**256 - 1


def decode(payload: TypedDataPayload) -> TokenAllowance | None:
    message = payload.full_message
    if message["primaryType"] != "Permit" or payload.verifying_contract is None:
        return None
    if payload.chain_id is None:
        return None
    fields = [(f["name"], f["type"]) for f in message["types"]["Permit"]]
    values = message["message"]
    token = payload.verifying_contract
    if fields == EIP2612_FIELDS:
        return TokenAllowance(
            chain_id=payload.chain_id,
            token=token,
            spender=values["spender"],
            amount=values["value"],
            method="EIP-2612 Permit",
            deadline=values["deadline"],
            owner=values["owner"],
            signed=True,
        )
    if fields == DAI_FIELDS:
        expiry = values["expiry"]
        return TokenAllowance(
            chain_id=payload.chain_id,
            token=token,
            spender=values["spender"],
            amount=UINT256_MAX if values["allowed"] else 0,
            method="DAI Permit",
            deadline=expiry if expiry != 0 else None,
            owner=values["holder"],
            signed=True,
        )
    return None
