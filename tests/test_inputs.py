"""Bad requests to the signer itself: the right code, the field named, nothing signed."""

from __future__ import annotations

from typing import Any

import pytest

from agentic_vault import InvalidInput, KmsSigner, SignerConfig, TransactionRequest, VaultError
from agentic_vault._local_kms import CONTROL

from .bad_inputs import CASES, Case, call_signer, signed_tx


@pytest.mark.parametrize("case", [c for c in CASES if not c.server_only], ids=lambda c: c.id)
def test_bad_input_is_refused_naming_the_field(signer: KmsSigner, case: Case) -> None:
    with pytest.raises(VaultError) as caught:
        call_signer(signer, case.tool, case.arguments)
    text = str(caught.value)
    assert text.startswith(f"{case.code}: "), text
    assert case.field in text, text
    assert CONTROL.calls["Sign"] == 0


def test_inputs_are_checked_before_kms_is_asked(signing_key: dict[str, Any]) -> None:
    # A signer whose KMS cannot be reached still reports the caller's mistake first.
    unreachable = KmsSigner(
        SignerConfig(
            key_id=signing_key["KeyId"],
            region="us-east-1",
            kms_timeout=1,
            connect_timeout=0.2,
            read_timeout=0.5,
        ),
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")
        with pytest.raises(InvalidInput, match=r"transaction\.nonce"):
            unreachable.sign_transaction(signed_tx(nonce=-1)["transaction"])


def test_the_same_transaction_in_three_spellings_has_one_digest() -> None:
    from agentic_vault._signer import prepare_transaction

    spellings = [
        {"chainId": 1, "nonce": 7, "gas": 21000, "gasPrice": 10**9, "to": "0x" + "ab" * 20},
        {
            "chainId": "1",
            "nonce": "7",
            "gas": "21000",
            "gasPrice": "1000000000",
            "to": "0x" + "AB" * 20,
            "type": "0x0",
        },
        {
            "chainId": "0x1",
            "nonce": "0x7",
            "gas": "0x5208",
            "gasPrice": "0x3b9aca00",
            "to": "0xaBaBaBaBabaBABabaBabaBaBaBaBabaBaBabAbAB"[:2] + "ab" * 20,
            "input": "0x",
        },
    ]
    digests = {prepare_transaction(s).digest for s in spellings}
    assert len(digests) == 1


@pytest.mark.parametrize(
    ("fields", "expected_type"),
    [
        ({"gasPrice": 1}, 0),
        ({"gasPrice": 1, "accessList": []}, 1),
        ({"maxFeePerGas": 2, "maxPriorityFeePerGas": 1}, 2),
        (
            {
                "maxFeePerGas": 2,
                "maxPriorityFeePerGas": 1,
                "maxFeePerBlobGas": 1,
                "blobVersionedHashes": ["0x01" + "00" * 31],
                "to": "0x" + "11" * 20,
            },
            3,
        ),
        (
            {
                "maxFeePerGas": 2,
                "maxPriorityFeePerGas": 1,
                "to": "0x" + "11" * 20,
                "authorizationList": [
                    {
                        "chainId": 0,
                        "address": "0x" + "11" * 20,
                        "nonce": 0,
                        "yParity": 1,
                        "r": 1,
                        "s": 1,
                    }
                ],
            },
            4,
        ),
    ],
)
def test_type_is_inferred_from_the_fields(fields: dict[str, Any], expected_type: int) -> None:
    request = TransactionRequest.parse({"chainId": 1, "nonce": 0, "gas": 21000, **fields})
    assert request.tx_type == expected_type
