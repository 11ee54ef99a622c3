"""``agentic-vault doctor`` as a whole: a correct setup passes everything, output and exit codes.

Every test runs the installed console script against real files (certificates made
with ``cryptography``, a fake ``aws_signing_helper`` printing credential JSON) and
the local KMS, which also answers STS (``AWS_ENDPOINT_URL_STS``).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from eth_utils import keccak, to_checksum_address

from agentic_vault._local_kms import LocalKms

from .roles_anywhere import SECRETS, Setup, good_setup

pytestmark = pytest.mark.e2e

EVERY_CHECK = [
    "settings",
    "config-file",
    "profile",
    "region",
    "credential-process",
    "helper",
    "certificate",
    "certificate-extensions",
    "certificate-expiry",
    "private-key",
    "key-pair",
    "ca-certificate",
    "certificate-chain",
    "roles-anywhere-arns",
    "helper-run",
    "credentials",
    "caller-identity",
    "kms-key",
    "address",
    "expected-address",
    "sign-test",
]


@pytest.fixture
def setup(emulator: LocalKms, tmp_path: Path) -> Setup:
    return good_setup(emulator, tmp_path)


def _address_of(emulator: LocalKms, key_id: str) -> str:
    """The key's address, computed here with cryptography and eth-utils, not by doctor."""
    der = emulator.client().get_public_key(KeyId=key_id)["PublicKey"]
    public = load_der_public_key(der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    numbers = public.public_numbers()
    point = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    return str(to_checksum_address(keccak(point)[12:]))


def test_a_correct_setup_passes_every_check_and_signs(emulator: LocalKms, setup: Setup) -> None:
    address = _address_of(emulator, setup.key_id)
    setup.env["VAULT_EXPECTED_ADDRESS"] = address
    doctor = setup.doctor("--sign-test", "--ca", str(setup.ca.certificate))
    assert doctor.status == 0, doctor.stdout
    assert doctor.report["ok"] is True
    assert [check["name"] for check in doctor.report["checks"]] == EVERY_CHECK
    for check in doctor.report["checks"]:
        assert check["status"] == "ok", check
        assert not check["message"].startswith("skipped"), check  # every check applied
    assert doctor.says("credentials", "ok").startswith("custom-process: the profile's")
    doctor.says("caller-identity", "ok", "account 123456789012", "arn:aws:")
    doctor.says("kms-key", "ok", "ECC_SECG_P256K1", "SIGN_VERIFY", "Enabled")
    doctor.says("address", "ok", address)
    doctor.says("expected-address", "ok", address)
    doctor.says("sign-test", "ok", f"recovers {address}")
    doctor.says("helper-run", "ok", "temporary credentials valid until")
    doctor.says("region", "ok", "us-east-1 (from VAULT_REGION)")
    assert doctor.stderr == ""


def test_the_checklist_for_people(emulator: LocalKms, setup: Setup) -> None:
    doctor = setup.doctor(json_output=False)
    assert doctor.status == 0
    lines = doctor.stdout.splitlines()
    assert lines[0] == "agentic-vault doctor"
    marks = {
        line.split()[1]: line.split()[0]
        for line in lines[2:]
        if line.startswith("  ") and line[2] != " "
    }
    assert list(marks) == EVERY_CHECK
    assert marks["sign-test"] == "skip"  # not asked for
    assert marks["ca-certificate"] == "skip"
    assert marks["address"] == "ok"
    assert lines[-1].startswith("0 failed, 0 warnings, ")
    assert SECRETS.isdisjoint(doctor.stdout.split())


def test_a_failure_is_exit_1_and_marked_fail(setup: Setup) -> None:
    setup.client.certificate.unlink()
    doctor = setup.doctor(json_output=False)
    assert doctor.status == 1
    line = next(line for line in doctor.stdout.splitlines() if " certificate " in line)
    assert line.split()[:2] == ["FAIL", "certificate"]
    assert "1 failed" in doctor.stdout.splitlines()[-1]


def test_json_is_the_contract_shape(setup: Setup) -> None:
    setup.client.key.chmod(0o644)
    doctor = setup.doctor()
    assert doctor.status == 1
    assert set(doctor.report) == {"ok", "checks"}
    assert doctor.report["ok"] is False
    for check in doctor.report["checks"]:
        assert set(check) == {"name", "status", "message"}
        assert check["status"] in ("ok", "warn", "fail")
        assert check["message"]


def test_usage_errors_are_exit_2(setup: Setup) -> None:
    doctor = setup.doctor("--bogus")
    assert doctor.status == 2
    assert "--bogus" in doctor.stderr
    assert doctor.stdout == ""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_sts_endpoint_variable_is_honoured(setup: Setup) -> None:
    setup.env["AWS_ENDPOINT_URL_STS"] = f"http://127.0.0.1:{_closed_port()}"
    doctor = setup.doctor()
    doctor.says(
        "caller-identity",
        "fail",
        "kms_unavailable: cannot reach STS",
        setup.env["AWS_ENDPOINT_URL_STS"],
        "AWS_ENDPOINT_URL_STS",
    )


def test_a_password_in_an_endpoint_is_masked(setup: Setup) -> None:
    setup.env["AWS_ENDPOINT_URL_KMS"] = f"http://ops:hunter2-s3cret@127.0.0.1:{_closed_port()}"
    doctor = setup.doctor()
    doctor.says("kms-key", "fail", "cannot reach KMS", "ops:***@127.0.0.1")
    assert "hunter2" not in doctor.stdout + doctor.stderr
