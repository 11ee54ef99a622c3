"""Every row of the Roles Anywhere guide's troubleshooting tables, found by doctor.

Each row names the doctor check that finds its mistake. Here each row gets a scenario:
the mistake made for real in a working setup (files, modes, helper stand-ins that
print the helper's own errors), then the installed ``agentic-vault doctor``, whose
check must have that name, that status, and a message that names the fix. A row added
to the guide without a scenario, or a scenario whose row is gone, fails the test.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agentic_vault._local_kms import LocalKms

from .roles_anywhere import (
    PROFILE_ID,
    TA_ID,
    DenyingKms,
    Doctor,
    Setup,
    credential_process,
    fake_helper,
    foreign_architecture,
    foreign_elf_helper,
    good_setup,
    make_ca,
    make_client,
    non_executable_helper,
    xml_helper,
)

pytestmark = pytest.mark.e2e

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "iam-roles-anywhere.md"
CREATE_SESSION = "operation error RolesAnywhere: CreateSession, https response error StatusCode: 403, RequestID: 5f0e, "  # noqa: E501


def guide_rows() -> dict[str, list[str]]:
    """``problem`` cell → the doctor checks its row names."""
    section = GUIDE.read_text().split("## Troubleshooting", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("problem", "---"):
            rows[cells[0]] = re.findall(r"`([a-z][a-z-]*)`", cells[2])
    return rows


def unreadable_by_this_user(setup: Setup, path: Path) -> list[str]:
    """Make ``path`` unreadable for doctor, as a root-owned 0400 key is for the service user.

    Root reads every file, so as root the file goes to another owner (mode 0400) and
    doctor runs without the capabilities that bypass file permissions.
    """
    if os.geteuid() != 0:
        path.chmod(0)
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the read override")
    os.chown(path, 12345, 12345)
    path.chmod(0o400)
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}"]


Scenario = Callable[[Setup, LocalKms], Doctor]


def incorrect_basic_constraints(setup: Setup, emulator: LocalKms) -> Doctor:
    ca = make_ca(setup.root, "not-a-ca.pem", ca_true=False)
    setup.client = make_client(setup.root, ca, prefix="client-of-not-a-ca")
    setup.profile()
    doctor = setup.doctor("--ca", str(ca.certificate))
    doctor.says(
        "ca-certificate",
        "fail",
        "critical basicConstraints CA:TRUE",
        "Incorrect basic constraints for CA certificate",
        '-addext "basicConstraints=critical,CA:TRUE"',
    )
    doctor.says("certificate-chain", "ok")
    return doctor


def insufficient_certificate(setup: Setup, emulator: LocalKms) -> Doctor:
    setup.client = make_client(setup.root, setup.ca, digital_signature=False, client_auth=False)
    fake_helper(
        setup.helper,
        CREATE_SESSION + "AccessDeniedException: Untrusted certificate. Insufficient certificate",
    )
    doctor = setup.doctor()
    doctor.says(
        "certificate-extensions",
        "fail",
        "keyUsage digitalSignature",
        "extendedKeyUsage clientAuth",
        "Fix: reissue it with the extension file of step 2",
    )
    doctor.says("helper-run", "fail", "Insufficient certificate", "extension file of step 2")
    return doctor


def untrusted_certificate(setup: Setup, emulator: LocalKms) -> Doctor:
    other_ca = make_ca(setup.root, "other-ca.pem")
    setup.client = make_client(setup.root, other_ca, prefix="client-of-other-ca")
    setup.profile()
    fake_helper(
        setup.helper, CREATE_SESSION + "AccessDeniedException: Untrusted signing certificate"
    )
    doctor = setup.doctor("--ca", str(setup.ca.certificate))
    doctor.says(
        "certificate-chain",
        "fail",
        f"was not signed by {setup.ca.certificate}",
        "Fix: issue the client certificate with this CA",
    )
    doctor.says("ca-certificate", "ok")
    doctor.says("helper-run", "fail", "cannot chain", "--ca")
    return doctor


def unable_to_parse_private_key(setup: Setup, emulator: LocalKms) -> Doctor:
    prefix = unreadable_by_this_user(setup, setup.client.key)
    fake_helper(setup.helper, "unable to parse private key")
    doctor = setup.doctor(prefix=prefix)
    doctor.says(
        "private-key",
        "fail",
        "is not readable by",
        "unable to parse private key",
        f"`sudo chown root:GROUP {setup.client.key}`",
        f"`sudo chmod 440 {setup.client.key}`",
    )
    doctor.says("key-pair", "ok", "skipped")
    doctor.says("helper-run", "fail", "unable to parse private key", "sudo chmod 440")
    return doctor


def certificate_has_expired(setup: Setup, emulator: LocalKms) -> Doctor:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    setup.client = make_client(
        setup.root, setup.ca, not_before=long_ago, not_after=long_ago + dt.timedelta(days=365)
    )
    doctor = setup.doctor()
    doctor.says(
        "certificate-expiry",
        "fail",
        "expired on",
        "35 days ago",
        "Fix: issue a new one (Yearly renewal in docs/iam-roles-anywhere.md)",
    )
    return doctor


def trust_anchor_disabled(setup: Setup, emulator: LocalKms) -> Doctor:
    fake_helper(setup.helper, CREATE_SESSION + "AccessDeniedException: Trust anchor is disabled")
    doctor = setup.doctor()
    doctor.says(
        "helper-run",
        "fail",
        "Trust anchor is disabled",
        f"Fix: `aws rolesanywhere enable-trust-anchor --trust-anchor-id {TA_ID} "
        "--region us-east-1`",
    )
    doctor.says("credentials", "ok", "skipped", "the credential helper fails")
    return doctor


def profile_disabled(setup: Setup, emulator: LocalKms) -> Doctor:
    fake_helper(setup.helper, CREATE_SESSION + "AccessDeniedException: Profile is disabled")
    doctor = setup.doctor()
    doctor.says(
        "helper-run",
        "fail",
        "Profile is disabled",
        f"Fix: `aws rolesanywhere enable-profile --profile-id {PROFILE_ID} --region us-east-1`",
    )
    return doctor


def assume_role_denied(setup: Setup, emulator: LocalKms) -> Doctor:
    fake_helper(
        setup.helper,
        CREATE_SESSION + "AccessDeniedException: Unable to assume role for "
        "arn:aws:iam::123456789012:role/agentic-vault-signer",
    )
    doctor = setup.doctor()
    doctor.says(
        "helper-run",
        "fail",
        "trust policy does not match",
        "Fix: compare the role's trust policy and the profile's role ARNs with step 4",
    )
    return doctor


def kms_access_denied(setup: Setup, emulator: LocalKms) -> Doctor:
    proxy = DenyingKms(emulator.endpoint, {"DescribeKey", "GetPublicKey", "Sign"})
    try:
        setup.env["AWS_ENDPOINT_URL_KMS"] = proxy.endpoint
        doctor = setup.doctor()
    finally:
        proxy.close()
    doctor.says(
        "kms-key",
        "fail",
        "kms_access_denied: KMS denied DescribeKey",
        "Allow kms:Sign, kms:GetPublicKey and kms:DescribeKey on",
        "not authorized to perform: kms:DescribeKey",
    )
    doctor.says("caller-identity", "ok", "account 123456789012")
    return doctor


def wrong_path_or_arn(setup: Setup, emulator: LocalKms) -> Doctor:
    # The guide's placeholders left in place, and a certificate path that does not exist.
    setup.profile(
        credential_process(
            setup.helper,
            certificate=setup.root / "pki" / "client.crt",
            private_key=setup.client.key,
            ta_arn="arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/TA_ID",
            profile_arn="arn:aws:rolesanywhere:REGION:ACCOUNT:profile/PROFILE_ID",
            role_arn="arn:aws:iam::ACCOUNT:role/agentic-vault-signer",
        )
    )
    doctor = setup.doctor()
    doctor.says(
        "certificate",
        "fail",
        f"{setup.root / 'pki' / 'client.crt'} (--certificate in credential_process) does not exist",
        "Fix: install client.crt there (step 6",
    )
    doctor.says(
        "roles-anywhere-arns",
        "fail",
        "--trust-anchor-arn still holds the guide's placeholders ACCOUNT, REGION, TA_ID",
        "--profile-arn still holds the guide's placeholders ACCOUNT, PROFILE_ID, REGION",
        "--role-arn still holds",
        "Fix: copy the three ARNs written down in step 4",
    )
    return doctor


def xml_instead_of_binary(setup: Setup, emulator: LocalKms) -> Doctor:
    xml_helper(setup.helper)
    doctor = setup.doctor()
    doctor.says(
        "helper",
        "fail",
        "it is not an ELF executable but an XML document",
        "NoSuchKey",
        "running it fails with Exec format error",
        "Fix: download aws_signing_helper again with the exact case of the path",
        "check it with `file` (it must say ELF)",
    )
    doctor.says("helper-run", "ok", "skipped: the helper cannot be run")
    return doctor


def exec_format_error(setup: Setup, emulator: LocalKms) -> Doctor:
    foreign_elf_helper(setup.helper)
    foreign, _ = foreign_architecture()
    doctor = setup.doctor()
    doctor.says(
        "helper",
        "fail",
        f"it is built for {foreign}, but this machine is",
        "(`uname -m`)",
        "Exec format error",
        "Fix: download the",
    )
    return doctor


def helper_cannot_be_run(setup: Setup, emulator: LocalKms) -> Doctor:
    non_executable_helper(setup.helper)
    doctor = setup.doctor()
    doctor.says(
        "helper",
        "fail",
        "it is not executable (mode 0644)",
        "Permission denied",
        f"Fix: `sudo chmod 755 {setup.helper}`",
    )
    return doctor


def cert_store_signer(setup: Setup, emulator: LocalKms) -> Doctor:
    # The seed guide's form: backslash continuations, indented.
    command = credential_process(setup.helper, setup.client).replace(" --", " \\\n  --")
    setup.profile(command)
    doctor = setup.doctor()
    doctor.says(
        "credential-process",
        "fail",
        "spans 6 lines joined with backslashes",
        "unable to use cert store signer on linux",
        "Fix: write the whole command on one line, without backslashes",
    )
    doctor.says("credentials", "ok", "skipped", "credential_process is broken")
    return doctor


def unable_to_parse_config_file(setup: Setup, emulator: LocalKms) -> Doctor:
    setup.profile(append=True)  # the guide's `cat >>` block, run a second time
    doctor = setup.doctor()
    doctor.says(
        "config-file",
        "fail",
        "Unable to parse config file",
        "[profile rolesanywhere-kms] on lines 2, 6",
        "Fix: delete the repeated sections",
    )
    doctor.says("kms-key", "ok", "skipped", "the SDK cannot read")
    return doctor


def region_placeholder(setup: Setup, emulator: LocalKms) -> Doctor:
    setup.profile(region="REGION")
    del setup.env["VAULT_REGION"], setup.env["AWS_REGION"]
    doctor = setup.doctor()
    doctor.says(
        "region",
        "fail",
        "region 'REGION' is not an AWS region name",
        "agentic-vault-mcp refuses to start",
        "Fix: write the region of your KMS key in profile rolesanywhere-kms, e.g. "
        "`region = us-east-1`",
    )
    return doctor


def profile_not_found(setup: Setup, emulator: LocalKms) -> Doctor:
    setup.env["AWS_PROFILE"] = "rolesanywhere"
    doctor = setup.doctor()
    doctor.says(
        "profile",
        "fail",
        "profile rolesanywhere (from AWS_PROFILE) does not exist",
        "the profiles in",
        "rolesanywhere-kms",
        "Fix: correct AWS_PROFILE, or add a [profile rolesanywhere] section",
    )
    return doctor


def aws_cli_not_installed(setup: Setup, emulator: LocalKms) -> Doctor:
    setup.env["PATH"] = str(Path(sys.executable).parent)
    assert shutil.which("aws", path=setup.env["PATH"]) is None
    doctor = setup.doctor()
    doctor.says("caller-identity", "ok", "account 123456789012, arn:aws:sts::123456789012:")
    return doctor


SCENARIOS: dict[str, tuple[list[str], Scenario]] = {
    "`Incorrect basic constraints for CA certificate` when creating the trust anchor": (
        ["ca-certificate"],
        incorrect_basic_constraints,
    ),
    "`Untrusted certificate. Insufficient certificate`": (
        ["certificate-extensions"],
        insufficient_certificate,
    ),
    "`Untrusted certificate` (or `Untrusted signing certificate`)": (
        ["certificate-chain"],
        untrusted_certificate,
    ),
    "`unable to parse private key`": (["private-key"], unable_to_parse_private_key),
    "`certificate has expired`": (["certificate-expiry"], certificate_has_expired),
    "`Trust anchor is disabled`": (["helper-run"], trust_anchor_disabled),
    "`Profile is disabled`": (["helper-run"], profile_disabled),
    "`AccessDeniedException` on `sts:AssumeRole` from the helper": (
        ["helper-run"],
        assume_role_denied,
    ),
    "tools answer `kms_access_denied`": (["kms-key"], kms_access_denied),
    "tools answer `kms_unavailable ... credential_process ... failed`": (
        ["certificate", "roles-anywhere-arns"],
        wrong_path_or_arn,
    ),
    "the downloaded file is XML, not a binary": (["helper"], xml_instead_of_binary),
    "`Exec format error`": (["helper"], exec_format_error),
    "tools answer `kms_unavailable: the credential_process helper ... cannot be run`": (
        ["helper"],
        helper_cannot_be_run,
    ),
    "`unable to use cert store signer on linux`": (["credential-process"], cert_store_signer),
    "`Unable to parse config file`": (["config-file"], unable_to_parse_config_file),
    "`agentic-vault-mcp: error: profile ...: region 'REGION' is not an AWS region name`": (
        ["region"],
        region_placeholder,
    ),
    "`The config profile (...) could not be found`": (["profile"], profile_not_found),
    "`aws: command not found`": (["caller-identity"], aws_cli_not_installed),
}


def test_every_row_of_the_guide_has_a_scenario_and_names_its_check() -> None:
    rows = guide_rows()
    assert set(rows) == set(SCENARIOS)
    for problem, (checks, _) in SCENARIOS.items():
        assert rows[problem] == checks, problem


@pytest.mark.parametrize("problem", SCENARIOS, ids=lambda p: re.sub(r"\W+", "-", p)[:60])
def test_doctor_finds_the_mistake_of_the_row(
    emulator: LocalKms, tmp_path: Path, problem: str
) -> None:
    checks, scenario = SCENARIOS[problem]
    doctor = scenario(good_setup(emulator, tmp_path), emulator)
    for name in checks:
        status = doctor.check(name)["status"]
        if problem == "`aws: command not found`":
            assert status == "ok"  # nothing to fix: doctor needs no AWS CLI
        else:
            assert status == "fail", doctor.check(name)
            assert doctor.status == 1
