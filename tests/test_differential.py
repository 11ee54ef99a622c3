"""Differential tests: our KMS signatures against eth-account with a local key.

For each kind, hypothesis draws at least 200 requests. For every one:
our digest equals eth-account's (the local key's signature of eth-account's
digest verifies over ours), the KMS signature recovers to our address with
eth-account, ``s <= n/2``, and a transaction decodes back to exactly the
fields asked for. Across the run, both recovery parities must occur.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_keys import keys
from eth_utils import keccak
from hexbytes import HexBytes
from hypothesis import given, settings

from agentic_vault import KmsSigner, PersonalMessage, parse_typed_data
from agentic_vault._signer import prepare_transaction

from .reference import decode_raw_transaction
from .strategies import HALF_N, personal_message, transaction, typed_data

EXAMPLES = 200
REFERENCE = Account.create()
REFERENCE_KEY = keys.PrivateKey(REFERENCE.key)


def _parity_of(v: int, tx_type: int, chain_id: int) -> int:
    return v - (chain_id * 2 + 35) if tx_type == 0 else v


def _reference_fields(canonical: dict[str, Any]) -> dict[str, Any]:
    """The canonical values as eth-account's ``sign_transaction`` takes them."""
    fields = copy.deepcopy({k: v for k, v in canonical.items() if k != "type"})
    if canonical["type"] != 0:
        fields["type"] = canonical["type"]
    if fields["to"] is None:
        del fields["to"]
    for entry in fields.get("accessList", []):
        entry["storageKeys"] = ["0x" + k.hex() for k in entry["storageKeys"]]
    if "blobVersionedHashes" in fields:
        fields["blobVersionedHashes"] = ["0x" + h.hex() for h in fields["blobVersionedHashes"]]
    return fields


@pytest.mark.parametrize("tx_type", [0, 1, 2, 3, 4])
def test_transactions_match_eth_account(signer: KmsSigner, tx_type: int) -> None:
    parities: Counter[int] = Counter()

    @settings(max_examples=EXAMPLES)
    @given(pair=transaction(tx_type))
    def check(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
        request, canonical = pair
        chain_id = canonical["chainId"]

        # Our digest is eth-account's: its signature with the reference key verifies over ours.
        ours = prepare_transaction(request).digest
        reference = Account.sign_transaction(_reference_fields(canonical), REFERENCE.key)
        ref_parity = _parity_of(reference.v, tx_type, chain_id)
        ref_signature = keys.Signature(vrs=(ref_parity, reference.r, reference.s))
        assert ref_signature.verify_msg_hash(ours, REFERENCE_KEY.public_key)

        signed = signer.sign_transaction(request)
        raw = bytes(HexBytes(signed.raw_transaction))
        assert Account.recover_transaction(raw) == signer.address
        assert signed.from_ == signer.address
        assert signed.hash == "0x" + keccak(raw).hex()
        assert signed.type == tx_type
        assert int(signed.s, 16) <= HALF_N

        decoded = decode_raw_transaction(raw)
        assert (decoded.pop("v"), decoded.pop("r"), decoded.pop("s")) == (
            signed.v,
            int(signed.r, 16),
            int(signed.s, 16),
        )
        expected = dict(canonical)
        if tx_type == 0:
            expected.pop("chainId")  # carried in v (EIP-155), checked below
            assert signed.v in (chain_id * 2 + 35, chain_id * 2 + 36)
        assert decoded == expected
        parities[_parity_of(signed.v, tx_type, chain_id)] += 1

    check()
    assert sum(parities.values()) >= EXAMPLES
    assert parities[0] > 0
    assert parities[1] > 0


def test_typed_data_matches_eth_account(signer: KmsSigner) -> None:
    parities: Counter[int] = Counter()

    @settings(max_examples=EXAMPLES)
    @given(pair=typed_data())
    def check(pair: tuple[Any, dict[str, Any]]) -> None:
        request, canonical = pair
        signable = encode_typed_data(full_message=canonical)
        reference_digest = bytes(Account.sign_message(signable, REFERENCE.key).message_hash)
        assert parse_typed_data(request).digest == reference_digest

        signed = signer.sign_typed_data(request)
        assert signed.digest == "0x" + reference_digest.hex()
        assert Account.recover_message(signable, signature=signed.signature) == signer.address
        assert int(signed.s, 16) <= HALF_N
        assert signed.signature == "0x" + signed.r[2:] + signed.s[2:] + f"{signed.v:02x}"
        parities[signed.v - 27] += 1

    check()
    assert sum(parities.values()) >= EXAMPLES
    assert parities[0] > 0
    assert parities[1] > 0


def test_messages_match_eth_account(signer: KmsSigner) -> None:
    parities: Counter[int] = Counter()

    @settings(max_examples=EXAMPLES)
    @given(pair=personal_message())
    def check(pair: tuple[dict[str, Any], bytes]) -> None:
        arguments, raw = pair
        signable = encode_defunct(primitive=raw)
        reference_digest = bytes(Account.sign_message(signable, REFERENCE.key).message_hash)
        assert PersonalMessage.parse(**arguments).digest == reference_digest

        signed = signer.sign_message(**arguments)
        assert signed.digest == "0x" + reference_digest.hex()
        assert Account.recover_message(signable, signature=signed.signature) == signer.address
        assert int(signed.s, 16) <= HALF_N
        parities[signed.v - 27] += 1

    check()
    assert sum(parities.values()) >= EXAMPLES
    assert parities[0] > 0
    assert parities[1] > 0
