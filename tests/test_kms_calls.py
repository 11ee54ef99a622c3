"""What each signature costs in KMS calls, counted at the botocore boundary."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
import pytest

from agentic_vault import KmsKeyInvalid
from agentic_vault._local_kms import CONTROL

from .conftest import SignerFactory
from .faults import RequestCounter


def test_100_signatures_cost_100_sign_calls_and_1_get_public_key(
    signing_key: dict[str, Any], make_signer: SignerFactory
) -> None:
    session = boto3.session.Session()
    sent = RequestCounter(session)
    signer = make_signer(signing_key["KeyId"], session=session)
    for i in range(100):
        if i % 3 == 0:
            signer.sign_digest(os.urandom(32))
        elif i % 3 == 1:
            signer.sign_message(f"message {i}")
        else:
            signer.sign_transaction(
                {"chainId": 1, "nonce": i, "gas": 21000, "gasPrice": 1, "to": "0x" + "11" * 20}
            )
    assert sent.sent == {"Sign": 100, "GetPublicKey": 1}
    assert CONTROL.calls == {"Sign": 100, "GetPublicKey": 1}  # and the emulator agrees


def test_sixteen_threads_asking_at_once_cause_one_get_public_key(
    signing_key: dict[str, Any], make_signer: SignerFactory
) -> None:
    CONTROL.latency["GetPublicKey"] = 0.2  # keep the first fetch in flight while others ask
    session = boto3.session.Session()
    sent = RequestCounter(session)
    signer = make_signer(signing_key["KeyId"], session=session)
    start = threading.Barrier(16)
    addresses: list[str] = []

    def ask() -> None:
        start.wait()
        addresses.append(signer.address)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(addresses) == 16
    assert len(set(addresses)) == 1
    assert sent.sent == {"GetPublicKey": 1}


def test_a_failed_public_key_fetch_is_not_cached(
    signing_key: dict[str, Any], make_signer: SignerFactory, emulator: Any
) -> None:
    emulator.client().disable_key(KeyId=signing_key["KeyId"])
    signer = make_signer(signing_key["KeyId"])
    with pytest.raises(KmsKeyInvalid):
        signer.key_info()
    emulator.client().enable_key(KeyId=signing_key["KeyId"])
    assert signer.address.startswith("0x")
    assert CONTROL.calls["GetPublicKey"] == 2
