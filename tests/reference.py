"""Independent decoding of what we return, with eth-account and pyrlp."""

from __future__ import annotations

from typing import Any

import rlp
from eth_account._utils.legacy_transactions import Transaction
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes


def decode_raw_transaction(raw: bytes) -> dict[str, Any]:
    """Fields of a signed raw transaction, decoded by eth-account / pyrlp."""
    if raw[0] >= 0xC0:
        fields = rlp.decode(raw, Transaction).as_dict()
        fields["type"] = 0
    else:
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    fields["to"] = to_checksum_address(fields["to"]) if fields["to"] else None
    fields["data"] = bytes(fields["data"])
    if "accessList" in fields:
        fields["accessList"] = [
            {
                "address": to_checksum_address(e["address"]),
                # eth-account decodes storage keys as integers
                "storageKeys": [k.to_bytes(32, "big") for k in e["storageKeys"]],
            }
            for e in fields["accessList"]
        ]
    if "blobVersionedHashes" in fields:
        fields["blobVersionedHashes"] = [bytes(h) for h in fields["blobVersionedHashes"]]
    if "authorizationList" in fields:
        fields["authorizationList"] = [
            {**a, "address": to_checksum_address(a["address"])} for a in fields["authorizationList"]
        ]
    return fields
