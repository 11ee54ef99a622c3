"""Strict ABI decoding: what eth-abi decodes *and* encodes back to the very same bytes.

eth-abi accepts trailing bytes and dynamic data reached through unusual
offsets; a contract may read such calldata differently from us. Only the one
canonical encoding of the decoded values is taken as meaning them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def decode_strict(types: Sequence[str], data: bytes) -> tuple[Any, ...] | None:
    """The values ``data`` encodes as ``types``, or None unless it is their canonical encoding."""
    from eth_abi.abi import decode, encode
    from eth_abi.exceptions import DecodingError

    try:
        values = decode(types, data, strict=True)
    except (DecodingError, ValueError, OverflowError, MemoryError):
        return None
    if encode(types, values) != data:
        return None
    return values


def checksum(address: str) -> str:
    """The EIP-55 form of an address decoded from calldata (``0x`` + 40 hex digits)."""
    from ..._fields import checksum_address

    return checksum_address(address)
