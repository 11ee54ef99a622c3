"""Multicall3 batches: the calls inside, each with the value it carries.

Multicall3 lives at one address on every chain that has it. Every function of
it that makes calls is unwrapped here (not only the four usual ones: a batch
through ``blockAndAggregate`` must not pass unread). The calls come back as
``Call`` values for the decider to judge one by one; a batch inside a batch is
not unwrapped (the decider refuses it).
"""

from __future__ import annotations

from typing import Any

from ..effects import Call, Unreadable
from .abi import checksum, decode_strict

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"

AGGREGATE = bytes.fromhex("252dba42")  # aggregate((address,bytes)[])
AGGREGATE3 = bytes.fromhex("82ad56cb")  # aggregate3((address,bool,bytes)[])
AGGREGATE3_VALUE = bytes.fromhex("174dea71")  # aggregate3Value((address,bool,uint256,bytes)[])
TRY_AGGREGATE = bytes.fromhex("bce38bd7")  # tryAggregate(bool,(address,bytes)[])
BLOCK_AND_AGGREGATE = bytes.fromhex("c3077fa9")  # blockAndAggregate((address,bytes)[])
TRY_BLOCK_AND_AGGREGATE = bytes.fromhex("399542e9")  # tryBlockAndAggregate(bool,(address,bytes)[])

FUNCTIONS: dict[bytes, tuple[str, tuple[str, ...]]] = {
    AGGREGATE: ("aggregate", ("(address,bytes)[]",)),
    AGGREGATE3: ("aggregate3", ("(address,bool,bytes)[]",)),
    AGGREGATE3_VALUE: ("aggregate3Value", ("(address,bool,uint256,bytes)[]",)),
    TRY_AGGREGATE: ("tryAggregate", ("bool", "(address,bytes)[]")),
    BLOCK_AND_AGGREGATE: ("blockAndAggregate", ("(address,bytes)[]",)),
    TRY_BLOCK_AND_AGGREGATE: ("tryBlockAndAggregate", ("bool", "(address,bytes)[]")),
}


def is_batch(call: Call) -> bool:
    return call.to == MULTICALL3 and call.selector in FUNCTIONS


def unwrap(call: Call) -> tuple[str, tuple[Call, ...]] | Unreadable:
    """The function name and the inner calls of a Multicall3 batch (``is_batch(call)``)."""
    name, types = FUNCTIONS[call.selector]
    values = decode_strict(types, call.data[4:])
    if values is None:
        return Unreadable(
            what=f"Multicall3 {name} calldata",
            reason="it is not exactly the canonical ABI encoding of a list of calls",
            chain_id=call.chain_id,
            index=call.index,
        )
    entries: list[Any] = list(values[-1])
    calls = []
    for i, entry in enumerate(entries, start=1):
        target, data = checksum(entry[0]), bytes(entry[-1])
        value = entry[2] if call.selector == AGGREGATE3_VALUE else 0
        calls.append(Call(call.chain_id, target, value, data, index=i))
    return name, tuple(calls)
