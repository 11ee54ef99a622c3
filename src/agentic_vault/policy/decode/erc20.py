"""ERC-20 calldata: transfer, transferFrom, approve, increaseAllowance.

A call is read by its selector wherever it goes; the decider then judges it by
the token entry of its target (or, if the target is no listed token, by the
contract entry that lists the selector).
"""

from __future__ import annotations

from ..effects import Call, Effect, TokenAllowance, TokenTransfer, Unreadable
from .abi import checksum, decode_strict

TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
TRANSFER_FROM = bytes.fromhex("23b872dd")  # transferFrom(address,address,uint256)
APPROVE = bytes.fromhex("095ea7b3")  # approve(address,uint256)
INCREASE_ALLOWANCE = bytes.fromhex("39509351")  # increaseAllowance(address,uint256)

SIGNATURES = {
    TRANSFER: "transfer(address,uint256)",
    TRANSFER_FROM: "transferFrom(address,address,uint256)",
    APPROVE: "approve(address,uint256)",
    INCREASE_ALLOWANCE: "increaseAllowance(address,uint256)",
}
_TYPES = {
    TRANSFER: ("address", "uint256"),
    TRANSFER_FROM: ("address", "address", "uint256"),
    APPROVE: ("address", "uint256"),
    INCREASE_ALLOWANCE: ("address", "uint256"),
}


def decode(call: Call) -> Effect | None:
    """The transfer or allowance ``call`` makes, None if it is no ERC-20 call we read."""
    types = _TYPES.get(call.selector)
    if types is None:
        return None
    values = decode_strict(types, call.data[4:])
    if values is None:
        return Unreadable(
            what=f"{SIGNATURES[call.selector]} calldata",
            reason="the arguments are not exactly their canonical ABI encoding (wrong "
            "length, trailing bytes or dirty padding)",
            chain_id=call.chain_id,
            index=call.index,
        )
    if call.selector == TRANSFER:
        return TokenTransfer(
            call.chain_id, call.to, checksum(values[0]), values[1], index=call.index
        )
    if call.selector == TRANSFER_FROM:
        return TokenTransfer(
            call.chain_id,
            call.to,
            checksum(values[1]),
            values[2],
            sender=checksum(values[0]),
            index=call.index,
        )
    method = "approve" if call.selector == APPROVE else "increaseAllowance"
    return TokenAllowance(
        call.chain_id, call.to, checksum(values[0]), values[1], method, index=call.index
    )
