"""ERC-721 / ERC-1155 ``setApprovalForAll``: one call hands over a whole collection."""

from __future__ import annotations

from ..effects import Call, Effect, OperatorApproval, Unreadable
from .abi import checksum, decode_strict

SET_APPROVAL_FOR_ALL = bytes.fromhex("a22cb465")  # setApprovalForAll(address,bool)


def decode(call: Call) -> Effect | None:
    if call.selector != SET_APPROVAL_FOR_ALL:
        return None
    values = decode_strict(("address", "bool"), call.data[4:])
    if values is None:
        return Unreadable(
            what="setApprovalForAll(address,bool) calldata",
            reason="the arguments are not exactly their canonical ABI encoding",
            chain_id=call.chain_id,
            index=call.index,
        )
    return OperatorApproval(call.chain_id, call.to, checksum(values[0]), values[1], call.index)
