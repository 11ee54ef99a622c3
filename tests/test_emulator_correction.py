"""The emulator corrections are right, needed, and step aside once moto is right.

moto 5.2.5 hashes a ``MessageType=DIGEST`` message again before signing
(getmoto/moto#10202). Every signature test depends on the correction, so it is
checked here against ``cryptography``, independently of our own pipeline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from agentic_vault import _local_kms
from agentic_vault._local_kms import CONTROL, LocalKms

PREHASHED = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


def _public_key(kms: Any, key_id: str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _sign_digest(kms: Any, key_id: str, digest: bytes) -> bytes:
    response = kms.sign(
        KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )
    return bytes(response["Signature"])


def test_digest_signatures_are_over_the_digest_as_given(emulator: LocalKms) -> None:
    kms = emulator.client()
    key_id = emulator.create_key()["KeyId"]
    public_key = _public_key(kms, key_id)
    for _ in range(20):
        digest = os.urandom(32)
        signature = _sign_digest(kms, key_id, digest)
        public_key.verify(signature, digest, PREHASHED)  # raises if the correction is off
        with pytest.raises(InvalidSignature):  # and it is not moto's sha256(digest) signature
            public_key.verify(signature, hashlib.sha256(digest).digest(), PREHASHED)


def test_moto_still_needs_the_correction(emulator: LocalKms) -> None:
    """Fails once moto honours DIGEST: then delete the DIGEST part of the correction."""
    kms = emulator.client()
    key_id = emulator.create_key()["KeyId"]
    for _ in range(5):
        _sign_digest(kms, key_id, os.urandom(32))
    assert CONTROL.digest_corrections == 5, (
        "moto now signs MessageType=DIGEST as given; the correction in "
        "agentic_vault._local_kms is dead code and can go"
    )


def test_correction_steps_aside_when_moto_signs_digests_right(
    emulator: LocalKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_sign = _local_kms.MOTO_HANDLERS["Sign"]

    def fixed_moto_sign(response: Any) -> str:
        answer = json.loads(moto_sign(response))
        key = response.kms_backend.describe_key(response._get_param("KeyId"))
        digest = response._get_param("Message")
        answer["Signature"] = base64.b64encode(
            key.private_key.private_key.sign(digest, PREHASHED)
        ).decode()
        return json.dumps(answer)

    monkeypatch.setitem(_local_kms.MOTO_HANDLERS, "Sign", fixed_moto_sign)
    kms = emulator.client()
    key_id = emulator.create_key()["KeyId"]
    public_key = _public_key(kms, key_id)
    digest = os.urandom(32)
    public_key.verify(_sign_digest(kms, key_id, digest), digest, PREHASHED)
    assert CONTROL.digest_corrections == 0


def test_raw_messages_are_left_to_moto(emulator: LocalKms) -> None:
    kms = emulator.client()
    key_id = emulator.create_key()["KeyId"]
    signature = kms.sign(
        KeyId=key_id, Message=b"hello", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    _public_key(kms, key_id).verify(signature, b"hello", ec.ECDSA(hashes.SHA256()))
    assert CONTROL.digest_corrections == 0


def test_a_digest_of_the_wrong_length_is_refused_like_kms(emulator: LocalKms) -> None:
    kms = emulator.client()
    key_id = emulator.create_key()["KeyId"]
    with pytest.raises(ClientError) as caught:
        _sign_digest(kms, key_id, b"\x01" * 31)
    assert caught.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize(
    ("operation", "state", "code"),
    [
        ("sign", "disable", "DisabledException"),
        ("get_public_key", "disable", "DisabledException"),
        ("sign", "schedule_deletion", "KMSInvalidStateException"),
    ],
)
def test_unusable_keys_are_refused_like_kms(
    emulator: LocalKms, operation: str, state: str, code: str
) -> None:
    kms = emulator.client()
    key_id = emulator.create_key()["KeyId"]
    if state == "disable":
        kms.disable_key(KeyId=key_id)
    else:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    arguments: dict[str, Any] = {"KeyId": key_id}
    if operation == "sign":
        arguments |= {
            "Message": b"\x00" * 32,
            "MessageType": "DIGEST",
            "SigningAlgorithm": "ECDSA_SHA_256",
        }
    with pytest.raises(ClientError) as caught:
        getattr(kms, operation)(**arguments)
    assert caught.value.response["Error"]["Code"] == code


def test_get_public_key_reports_the_key_arn_like_kms(emulator: LocalKms) -> None:
    key = emulator.create_key(alias="alias/arn-check")
    answer = emulator.client().get_public_key(KeyId="alias/arn-check")
    assert answer["KeyId"] == key["Arn"]
