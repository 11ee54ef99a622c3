"""Doctor's checks one by one, for the mistakes the guide's tables do not list.

Same method as the troubleshooting tests: a working setup with one thing broken,
the installed ``agentic-vault doctor --json``, and the check's name, status and fix.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from agentic_vault._local_kms import LocalKms

from .roles_anywhere import (
    PROFILE_ARN,
    TA_ARN,
    DenyingKms,
    Setup,
    credential_process,
    fake_helper,
    good_setup,
    make_ca,
    make_client,
    write_profile,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def setup(emulator: LocalKms, tmp_path: Path) -> Setup:
    return good_setup(emulator, tmp_path)


# -- the config file and the profile ---------------------------------------------------------


def test_a_line_the_parser_cannot_read_is_named_with_its_number(setup: Setup) -> None:
    # The end of a pasted here-document, written into the file.
    setup.config.write_text(setup.config.read_text() + "EOF\n")
    setup.doctor().says(
        "config-file",
        "fail",
        "Unable to parse config file",
        "line 5 is neither a [section], a `name = value` nor a comment: 'EOF'",
        f"Fix: correct that line (`cat -n {setup.config}`",
    )


def test_a_continuation_without_indentation_is_pointed_out(setup: Setup) -> None:
    command = credential_process(setup.helper, setup.client).replace(" --", " \\\n--")
    setup.profile(command)
    setup.doctor().says(
        "config-file",
        "fail",
        "line 5 is neither a [section]",
        "(a credential_process continued on the next line?)",
        "Fix: correct that line",
    )


def test_the_default_config_file_is_read_when_aws_config_file_is_unset(setup: Setup) -> None:
    del setup.env["AWS_CONFIG_FILE"]
    home_config = Path(setup.env["HOME"]) / ".aws" / "config"
    home_config.parent.mkdir()
    shutil.move(setup.config, home_config)
    doctor = setup.doctor()
    doctor.says("config-file", "ok", f"{home_config} (the default location) parses")
    doctor.says("helper-run", "ok")


def test_a_profile_section_without_the_profile_word(setup: Setup) -> None:
    setup.config.write_text(setup.config.read_text().replace("[profile ", "["))
    setup.doctor().says(
        "profile",
        "fail",
        "has a section [rolesanywhere-kms], but in the config file a profile section is "
        "written [profile rolesanywhere-kms]",
        "Fix: rename the section to [profile rolesanywhere-kms]",
    )


def test_a_bad_profile_region_that_is_overridden_is_a_warning(setup: Setup) -> None:
    setup.profile(region="REGION")
    doctor = setup.doctor()
    doctor.says(
        "region",
        "warn",
        "us-east-1 (from VAULT_REGION) is used",
        "region 'REGION' is not an AWS region name",
        "Fix: set `region = ` in the profile",
    )
    assert doctor.status == 0


# -- the helper ------------------------------------------------------------------------------


def test_a_missing_helper(setup: Setup) -> None:
    setup.helper.unlink()
    setup.doctor().says(
        "helper",
        "fail",
        f"{setup.helper} cannot be run: there is no such file (not found)",
        "Fix: install it there: download aws_signing_helper again",
        "or correct the path in credential_process",
    )


def test_a_helper_path_with_a_tilde(setup: Setup) -> None:
    setup.profile(credential_process("~/bin/aws_signing_helper", setup.client))
    setup.doctor().says(
        "helper",
        "fail",
        "the SDK runs credential_process without a shell, so ~ is not expanded",
        "Fix: write the absolute path",
    )


def test_the_cert_store_error_from_the_helper_is_explained(setup: Setup) -> None:
    fake_helper(setup.helper, "unable to use cert store signer on linux")
    setup.doctor().says(
        "helper-run",
        "fail",
        "no --certificate reached the helper",
        "Fix: write credential_process on one line, without backslashes",
    )


def test_a_helper_that_prints_no_json(setup: Setup) -> None:
    setup.helper.write_text("#!/bin/sh\necho 'usage: aws_signing_helper [command]'\n")
    setup.doctor().says(
        "helper-run",
        "fail",
        "exited 0 but did not print JSON",
        "Fix: point credential_process at the helper's credential-process command",
    )


def test_a_helper_that_returns_expired_credentials(setup: Setup) -> None:
    script = setup.helper.read_text().replace("+ dt.timedelta(hours=1)", "- dt.timedelta(hours=1)")
    setup.helper.write_text(script)
    setup.doctor().says(
        "helper-run",
        "fail",
        "the helper returned credentials that expired at",
        "Fix: check the system clock (`timedatectl`)",
    )


# -- certificate and key files ------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o444, 0o460, 0o644])
def test_a_key_others_may_read_or_the_group_may_write(setup: Setup, mode: int) -> None:
    setup.client.key.chmod(mode)
    setup.doctor().says(
        "private-key",
        "fail",
        f"has mode {mode:04o}: more than its owner and group may read or write it",
        f"Fix: `sudo chmod 440 {setup.client.key}`",
    )


def test_owner_only_modes_are_fine(setup: Setup) -> None:
    setup.client.key.chmod(0o600)
    setup.doctor().says("private-key", "ok", "a private key, mode 0600")


def test_certificate_and_key_swapped(setup: Setup) -> None:
    setup.profile(
        credential_process(
            setup.helper, certificate=setup.client.key, private_key=setup.client.certificate
        )
    )
    doctor = setup.doctor()
    doctor.says(
        "certificate",
        "fail",
        "is not a certificate: it holds a private key",
        "Fix: swap --certificate and --private-key",
    )
    doctor.says(
        "private-key",
        "fail",
        "is not a private key: it holds a certificate",
        "Fix: swap --certificate and --private-key",
    )


def test_a_file_that_is_neither(setup: Setup) -> None:
    setup.client.certificate.unlink()
    setup.client.certificate.write_text("hello\n")
    setup.doctor().says(
        "certificate", "fail", "holds neither PEM nor DER", "Fix: name the client.crt file"
    )


def test_a_key_of_another_certificate(setup: Setup) -> None:
    other = make_client(setup.root, setup.ca, prefix="other")
    setup.profile(
        credential_process(
            setup.helper, certificate=setup.client.certificate, private_key=other.key
        )
    )
    setup.doctor().says(
        "key-pair",
        "fail",
        "the private key does not belong to the certificate",
        "Fix: install the client.key generated together with this client.crt",
    )


@pytest.mark.parametrize(
    ("change", "lacking"),
    [
        ({"client_auth": False}, "extendedKeyUsage clientAuth"),
        ({"ca_true": True}, "CA:FALSE (it says CA:TRUE"),
    ],
)
def test_client_certificate_extensions(setup: Setup, change: dict[str, bool], lacking: str) -> None:
    setup.client = make_client(setup.root, setup.ca, **change)
    setup.doctor().says(
        "certificate-extensions",
        "fail",
        f"the client certificate lacks {lacking}",
        "Untrusted certificate. Insufficient certificate",
        "Fix: reissue it with the extension file of step 2",
    )


def test_a_certificate_expiring_within_30_days_warns_about_renewal(setup: Setup) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=12, hours=1)
    setup.client = make_client(setup.root, setup.ca, not_after=soon)
    doctor = setup.doctor()
    doctor.says(
        "certificate-expiry",
        "warn",
        "expires on",
        "in 12 days",
        "Fix: renew it now: issue a new one (Yearly renewal in docs/iam-roles-anywhere.md)",
    )
    assert doctor.status == 0


def test_a_certificate_not_yet_valid(setup: Setup) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    setup.client = make_client(setup.root, setup.ca, not_before=later)
    setup.doctor().says(
        "certificate-expiry", "fail", "not valid before", "Fix: check the system clock"
    )


@pytest.mark.parametrize(
    ("ca_change", "lacking"),
    [
        ({"critical": False}, "critical basicConstraints CA:TRUE"),
        ({"key_cert_sign": False}, "keyUsage keyCertSign"),
    ],
)
def test_a_ca_roles_anywhere_refuses(
    setup: Setup, ca_change: dict[str, bool], lacking: str
) -> None:
    ca = make_ca(setup.root, "weak-ca.pem", **ca_change)
    setup.client = make_client(setup.root, ca)
    setup.doctor("--ca", str(ca.certificate)).says(
        "ca-certificate",
        "fail",
        f"lacks {lacking}",
        'Fix: recreate the CA with -addext "basicConstraints=critical,CA:TRUE" -addext '
        '"keyUsage=critical,keyCertSign,cRLSign"',
    )


def test_the_ca_option_with_a_missing_file(setup: Setup) -> None:
    doctor = setup.doctor("--ca", str(setup.root / "nope.pem"))
    doctor.says("ca-certificate", "fail", "does not exist", "Fix: install ca.pem there")
    doctor.says("certificate-chain", "ok", "skipped")


# -- the ARNs --------------------------------------------------------------------------------


def test_arns_in_another_region_than_the_profile(setup: Setup) -> None:
    setup.profile(
        credential_process(
            setup.helper,
            setup.client,
            ta_arn=TA_ARN.replace("us-east-1", "eu-west-1"),
            profile_arn=PROFILE_ARN.replace("us-east-1", "eu-west-1"),
        )
    )
    doctor = setup.doctor()
    doctor.says(
        "roles-anywhere-arns",
        "warn",
        "the trust anchor and profile are in eu-west-1, the AWS profile's region is us-east-1",
        "Fix: check that these ARNs are the ones of your setup",
    )
    assert doctor.status == 0


def test_a_trust_anchor_and_a_profile_in_different_regions(setup: Setup) -> None:
    setup.profile(
        credential_process(
            setup.helper, setup.client, profile_arn=PROFILE_ARN.replace("us-east-1", "eu-west-1")
        )
    )
    setup.doctor().says(
        "roles-anywhere-arns",
        "fail",
        "the trust anchor is in us-east-1 but the profile in eu-west-1",
        "Fix: use a trust anchor and a profile of the same region",
    )


def test_malformed_arns(setup: Setup) -> None:
    setup.profile(
        credential_process(
            setup.helper,
            setup.client,
            ta_arn=TA_ARN[:-4],
            profile_arn=TA_ARN,
            role_arn="agentic-vault-signer",
        )
    )
    setup.doctor().says(
        "roles-anywhere-arns",
        "fail",
        "--trust-anchor-arn ends in",
        "not an id (a UUID)",
        "--profile-arn",
        "is not a Roles Anywhere profile ARN",
        "--role-arn 'agentic-vault-signer' is not an IAM role ARN",
        "Fix: copy the three ARNs",
    )


def test_a_profile_without_credential_process_skips_the_helper_checks(setup: Setup) -> None:
    write_profile(setup.config, "/bin/true")
    setup.config.write_text(
        setup.config.read_text().replace("credential_process = /bin/true\n", "")
    )
    setup.env["AWS_ACCESS_KEY_ID"] = "local-dev-placeholder"
    setup.env["AWS_SECRET_ACCESS_KEY"] = "local-dev-placeholder"
    doctor = setup.doctor()
    for name in (
        "credential-process",
        "helper",
        "certificate",
        "roles-anywhere-arns",
        "helper-run",
    ):
        doctor.says(name, "ok", "skipped")
    doctor.says("credentials", "ok", "env: environment variables")
    assert doctor.status == 0


# -- live ------------------------------------------------------------------------------------


def test_no_credentials_at_all(setup: Setup) -> None:
    del setup.env["AWS_PROFILE"]
    doctor = setup.doctor()
    doctor.says(
        "credentials",
        "fail",
        "the AWS SDK found no credentials",
        "Fix: Provide credentials in one of these ways: `aws sso login",
    )
    doctor.says("caller-identity", "ok", "skipped: no credentials")


def test_environment_keys_shadow_the_credential_process(setup: Setup) -> None:
    setup.env["AWS_ACCESS_KEY_ID"] = "local-dev-placeholder"
    setup.env["AWS_SECRET_ACCESS_KEY"] = "local-dev-placeholder"
    doctor = setup.doctor()
    doctor.says(
        "credentials",
        "warn",
        "env: the SDK uses environment variables",
        "not the profile's credential_process",
        "Fix: unset AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )
    # With --profile, the SDK leaves the environment keys aside, as the server would.
    doctor = setup.doctor("--profile", "rolesanywhere-kms")
    doctor.says("credentials", "ok", "custom-process")


def test_a_disabled_key(emulator: LocalKms, setup: Setup) -> None:
    kms = emulator.client()
    kms.disable_key(KeyId=kms.describe_key(KeyId=setup.key_id)["KeyMetadata"]["KeyId"])
    doctor = setup.doctor()
    doctor.says("kms-key", "fail", "kms_key_invalid", "is Disabled", "aws kms enable-key")
    doctor.says("address", "ok", "skipped: the key cannot be used")


def test_a_key_of_the_wrong_spec(emulator: LocalKms, setup: Setup) -> None:
    emulator.create_key(alias="alias/doctor-p256", key_spec="ECC_NIST_P256")
    setup.env["VAULT_KEY_ID"] = "alias/doctor-p256"
    setup.doctor().says(
        "kms-key", "fail", "has key spec ECC_NIST_P256", "create an ECC_SECG_P256K1 key"
    )


def test_an_unknown_key(setup: Setup) -> None:
    setup.env["VAULT_KEY_ID"] = "alias/doctor-no-such-key"
    setup.doctor().says(
        "kms-key",
        "fail",
        "kms_key_invalid: KMS key alias/doctor-no-such-key was not found",
        "Check --key-id",
    )


def test_no_key_id_still_checks_the_credentials(setup: Setup) -> None:
    del setup.env["VAULT_KEY_ID"]
    doctor = setup.doctor()
    doctor.says(
        "settings",
        "fail",
        "agentic-vault-mcp would refuse to start: no KMS key given",
        "Fix: pass the key the server will use, as --key-id or VAULT_KEY_ID",
    )
    doctor.says("caller-identity", "ok", "account 123456789012")
    doctor.says("kms-key", "ok", "skipped: no usable KMS key id")


def test_the_wrong_expected_address(setup: Setup) -> None:
    wrong = "0x52908400098527886E0F7030069857D2E4169EE7"
    doctor = setup.doctor("--expected-address", wrong, "--sign-test")
    doctor.says(
        "expected-address",
        "fail",
        f"not the expected {wrong}",
        "Fix: point --key-id (and --region, --profile) at the right key",
    )
    doctor.says("sign-test", "ok", "skipped: the key is not the expected one")


def test_the_sign_test_when_kms_sign_is_denied(emulator: LocalKms, setup: Setup) -> None:
    proxy = DenyingKms(emulator.endpoint, {"Sign"})
    try:
        setup.env["AWS_ENDPOINT_URL_KMS"] = proxy.endpoint
        doctor = setup.doctor("--sign-test")
    finally:
        proxy.close()
    doctor.says("address", "ok")
    doctor.says(
        "sign-test",
        "fail",
        "kms_access_denied: KMS denied Sign",
        "Allow kms:Sign, kms:GetPublicKey and kms:DescribeKey",
    )
