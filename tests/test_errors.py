"""Each KMS failure gets the contract's error code and a message that says what to fix.

Key problems come from the emulator itself (a P-256 key, a disabled key, an
unknown alias); IAM and credential failures, which moto cannot produce, are
injected at the botocore boundary or produced by a real ``credential_process``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import TokenRetrievalError

from agentic_vault import (
    KmsAccessDenied,
    KmsKeyInvalid,
    KmsSigner,
    KmsUnavailable,
    SignerConfig,
    VaultError,
)
from agentic_vault._local_kms import LocalKms

from .conftest import SignerFactory
from .faults import Injector, fail_with, raise_

DIGEST = bytes(range(32))


def _error_of(signer: KmsSigner) -> VaultError:
    with pytest.raises(VaultError) as caught:
        signer.sign_digest(DIGEST)
    return caught.value


def test_p256_key_is_kms_key_invalid(emulator: LocalKms, make_signer: SignerFactory) -> None:
    key = emulator.create_key(key_spec="ECC_NIST_P256")
    error = _error_of(make_signer(key["KeyId"]))
    assert isinstance(error, KmsKeyInvalid)
    assert str(error).startswith("kms_key_invalid: ")
    assert "ECC_NIST_P256" in str(error)
    assert "ECC_SECG_P256K1" in str(error)


def test_key_without_sign_verify_usage_is_kms_key_invalid(
    emulator: LocalKms, make_signer: SignerFactory
) -> None:
    key = emulator.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT")
    error = _error_of(make_signer(key["KeyId"]))
    assert isinstance(error, KmsKeyInvalid)
    assert "ENCRYPT_DECRYPT" in str(error)
    assert "SIGN_VERIFY" in str(error)


def test_disabled_key_is_kms_key_invalid_and_recovers_when_enabled(
    emulator: LocalKms, make_signer: SignerFactory
) -> None:
    key = emulator.create_key(alias="alias/disabled-then-enabled")
    emulator.client().disable_key(KeyId=key["KeyId"])
    signer = make_signer("alias/disabled-then-enabled")
    error = _error_of(signer)
    assert isinstance(error, KmsKeyInvalid)
    assert "is disabled" in str(error)
    assert "aws kms enable-key --key-id KEY_ID" in str(error)  # enable-key takes no alias

    emulator.client().enable_key(KeyId=key["KeyId"])
    assert signer.sign_digest(DIGEST).s > 0  # same signer, no restart


def test_unknown_alias_is_kms_key_invalid(make_signer: SignerFactory) -> None:
    error = _error_of(make_signer("alias/no-such-key"))
    assert isinstance(error, KmsKeyInvalid)
    assert "alias/no-such-key was not found in region us-east-1" in str(error)
    assert "--key-id" in str(error)
    assert "--region" in str(error)


def test_access_denied_names_the_three_actions_and_the_key_arn(
    signing_key: dict[str, Any], make_signer: SignerFactory
) -> None:
    session = boto3.session.Session()
    signer = make_signer(signing_key["KeyId"], session=session)
    aws_says = (
        "User: arn:aws:sts::123456789012:assumed-role/agent/vm is not authorized to perform: "
        f"kms:Sign on resource: {signing_key['Arn']}"
    )
    # GetPublicKey allowed, Sign denied: the key ARN is known when Sign fails.
    Injector(session, "Sign", fail_with("AccessDeniedException", aws_says))
    error = _error_of(signer)
    assert isinstance(error, KmsAccessDenied)
    text = str(error)
    assert text.startswith("kms_access_denied: KMS denied Sign")
    for action in ("kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"):
        assert action in text
    assert f"on {signing_key['Arn']}" in text
    assert aws_says in text


def test_access_denied_before_the_arn_is_known_gives_the_arn_pattern(
    signing_key: dict[str, Any], make_signer: SignerFactory
) -> None:
    session = boto3.session.Session()
    signer = make_signer(signing_key["KeyId"], session=session)
    Injector(session, "GetPublicKey", fail_with("AccessDeniedException"))
    error = _error_of(signer)
    assert isinstance(error, KmsAccessDenied)
    assert "arn:aws:kms:REGION:ACCOUNT:key/KEY_ID" in str(error)


def test_expired_session_token_is_kms_unavailable_with_the_ways_to_fix_it(
    signing_key: dict[str, Any], make_signer: SignerFactory
) -> None:
    session = boto3.session.Session()
    signer = make_signer(signing_key["KeyId"], session=session)
    injector = Injector(
        session,
        "GetPublicKey",
        fail_with("ExpiredTokenException", "The security token included in the request is expired"),
    )
    error = _error_of(signer)
    assert isinstance(error, KmsUnavailable)
    assert "ExpiredTokenException" in str(error)
    for way in ("aws sso login", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "credential_process"):
        assert way in str(error)
    assert injector.injected == 1  # not retried: waiting does not renew a token


def test_expired_sso_session_says_to_log_in_again(
    signing_key: dict[str, Any], make_signer: SignerFactory
) -> None:
    session = boto3.session.Session()
    signer = make_signer(signing_key["KeyId"], session=session, profile=None)
    Injector(
        session, "GetPublicKey", raise_(TokenRetrievalError(provider="sso", error_msg="expired"))
    )
    error = _error_of(signer)
    assert isinstance(error, KmsUnavailable)
    assert "aws sso login --profile NAME" in str(error)


@pytest.fixture
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")


@pytest.mark.usefixtures("no_env_credentials")
def test_no_credentials_lists_every_way_to_provide_them(
    signing_key: dict[str, Any], make_signer: SignerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = make_signer(signing_key["KeyId"])
    error = _error_of(signer)
    assert isinstance(error, KmsUnavailable)
    text = str(error)
    assert "Unable to locate credentials" in text
    for way in ("aws sso login", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "credential_process", "role"):
        assert way in text

    # Credentials that appear later are used by the same signer, without a restart.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "now-present")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "now-present")
    assert signer.sign_digest(DIGEST).r > 0


def _profile_with_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, name: str = "roles-anywhere"
) -> Path:
    helper = tmp_path / "aws_signing_helper"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    config = tmp_path / "config"
    config.write_text(f"[profile {name}]\nregion = us-east-1\ncredential_process = {helper}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return helper


@pytest.mark.usefixtures("no_env_credentials")
def test_failing_credential_process_points_at_the_helper(
    signing_key: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _profile_with_process(
        tmp_path,
        monkeypatch,
        'echo "unable to parse private key" >&2\nexit 1\n',
    )
    signer = KmsSigner(SignerConfig(key_id=signing_key["KeyId"], profile="roles-anywhere"))
    error = _error_of(signer)
    assert isinstance(error, KmsUnavailable)
    text = str(error)
    assert "credential_process" in text
    assert "unable to parse private key" in text
    for hint in ("--certificate", "--private-key", "ARNs", "expired", "--profile roles-anywhere"):
        assert hint in text


@pytest.mark.usefixtures("no_env_credentials")
def test_credential_process_returning_expired_credentials_is_kms_unavailable(
    signing_key: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expired = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = json.dumps(
        {
            "Version": 1,
            "AccessKeyId": "stale",
            "SecretAccessKey": "stale",
            "SessionToken": "stale",
            "Expiration": expired,
        }
    )
    _profile_with_process(tmp_path, monkeypatch, f"echo '{answer}'\n")
    signer = KmsSigner(SignerConfig(key_id=signing_key["KeyId"], profile="roles-anywhere"))
    error = _error_of(signer)
    assert isinstance(error, KmsUnavailable)
    assert "already expired" in str(error)
    assert "clock" in str(error)


def test_unknown_profile_is_kms_unavailable_naming_it(signing_key: dict[str, Any]) -> None:
    signer = KmsSigner(SignerConfig(key_id=signing_key["KeyId"], profile="nope"))
    error = _error_of(signer)
    assert isinstance(error, KmsUnavailable)
    assert "nope" in str(error)
    assert "~/.aws/config" in str(error)


def test_no_secret_ever_appears_in_an_error(
    signing_key: dict[str, Any], make_signer: SignerFactory
) -> None:
    session = boto3.session.Session()
    signer = make_signer(signing_key["KeyId"], session=session)
    Injector(session, "GetPublicKey", fail_with("UnrecognizedClientException", "bad token"))
    text = str(_error_of(signer))
    for secret in (os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]):
        assert secret not in text
