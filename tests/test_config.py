"""The signer's configuration refuses what cannot work, before anything connects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentic_vault import SignerConfig

KEY_UUID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    "key_id",
    [
        KEY_UUID,
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "alias/agentic-vault",
        "alias/team/signer_1",
        f"arn:aws:kms:eu-west-1:123456789012:key/{KEY_UUID}",
        "arn:aws:kms:eu-west-1:123456789012:alias/agentic-vault",
        f"arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/{KEY_UUID}",
    ],
)
def test_every_key_id_form_is_accepted(key_id: str) -> None:
    assert SignerConfig(key_id=key_id).key_id == key_id


@pytest.mark.parametrize(
    "key_id",
    ["", "my-key", "alias/", "alias/has space", "arn:aws:kms:eu-west-1:1234:key/x", "1234abcd"],
)
def test_malformed_key_ids_are_refused(key_id: str) -> None:
    with pytest.raises(ValidationError, match="not a KMS key id"):
        SignerConfig(key_id=key_id)


def test_the_region_of_a_key_arn_is_used_and_a_conflicting_one_refused() -> None:
    arn = f"arn:aws:kms:eu-west-1:123456789012:key/{KEY_UUID}"
    assert SignerConfig(key_id=arn).key_arn_region == "eu-west-1"
    with pytest.raises(ValidationError, match="key ARN is in eu-west-1 but the region is"):
        SignerConfig(key_id=arn, region="us-east-1")


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1"])
def test_regions(region: str) -> None:
    assert SignerConfig(key_id=KEY_UUID, region=region).region == region


@pytest.mark.parametrize("region", ["useast1", "US-EAST-1", "us-east", "mars"])
def test_malformed_regions_are_refused(region: str) -> None:
    with pytest.raises(ValidationError, match="not an AWS region"):
        SignerConfig(key_id=KEY_UUID, region=region)


def test_expected_address_is_checksummed_and_checked() -> None:
    lower = "0x52908400098527886e0f7030069857d2e4169ee7"
    config = SignerConfig(key_id=KEY_UUID, expected_address=lower)
    assert config.expected_address == "0x52908400098527886E0F7030069857D2E4169EE7"
    with pytest.raises(ValidationError, match="EIP-55"):
        SignerConfig(key_id=KEY_UUID, expected_address="0x52908400098527886e0F7030069857D2E4169EE7")


def test_one_attempt_must_fit_in_the_kms_timeout() -> None:
    with pytest.raises(ValidationError, match="exceed the KMS timeout"):
        SignerConfig(key_id=KEY_UUID, kms_timeout=3, connect_timeout=2, read_timeout=2)


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SignerConfig(key_id=KEY_UUID, retries=3)  # type: ignore[call-arg]
