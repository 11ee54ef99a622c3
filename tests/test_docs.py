"""The documentation is true: its commands run, its AWS commands exist, its examples verify.

Shell blocks in docs/ carry a marker in the Markdown source: ``<!-- test: NAME -->``
blocks are run here, in order, in a scratch home directory; ``<!-- needs: WHAT -->``
blocks need AWS, sudo, the network or the VM, and their ``aws`` commands are checked
against botocore's models of the AWS APIs (the CLI is generated from them).
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak

from agentic_vault import PersonalMessage, parse_typed_data
from agentic_vault._local_kms import LocalKms
from agentic_vault._server import TOOLS

from .mcp_helpers import mcp_client, server_env, structured

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"(?:<!-- (\w+): ([^>]*?) -->\n)?```(\w*)\n(.*?)```", re.DOTALL)


def blocks(path: Path) -> list[tuple[str | None, str, str, str]]:
    """``(marker kind, marker value, language, body)`` of every fenced block."""
    return [(m[1], m[2] or "", m[3], m[4]) for m in BLOCK.finditer(path.read_text())]


# -- shell blocks ------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_shell_block_is_run_here_or_says_what_it_needs(doc: Path) -> None:
    for kind, value, language, body in blocks(doc):
        if language in ("bash", "sh", "shell"):
            assert kind in ("test", "needs"), f"{doc.name}: unmarked shell block:\n{body}"
            assert value.strip(), f"{doc.name}: empty marker"


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "README.md"], ids=lambda p: p.name)
def test_pasted_blocks_never_close_the_shell(doc: Path) -> None:
    # Pasted into an SSH session, an `exit` (or `set -e`) ends it.
    for _, _, language, body in blocks(doc):
        if language in ("bash", "sh", "shell"):
            assert not re.search(r"\bexit\b|\bset -e", body), f"{doc.name}:\n{body}"


ROLES_ANYWHERE = ROOT / "docs" / "iam-roles-anywhere.md"


def _run_block(name: str, home: Path) -> str:
    script = next(body for kind, value, _, body in blocks(ROLES_ANYWHERE) if value == name)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{name}: {result.stderr}"
    return result.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_roles_anywhere_guide_commands_produce_what_it_claims(tmp_path: Path) -> None:
    tested = [value for kind, value, _, _ in blocks(ROLES_ANYWHERE) if kind == "test"]
    assert tested == [
        "ca",
        "client-certificate",
        "ca-key-offline",
        "trust-anchor-request",
        "role-policies",
        "aws-profile",
        "renewal",
    ]
    ca_dir = tmp_path / "rolesanywhere-ca"

    _run_block("ca", tmp_path)
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert oct((ca_dir / "ca.key").stat().st_mode & 0o777) == "0o600"

    output = _run_block("client-certificate", tmp_path)
    assert "CA:FALSE" in output
    assert "Digital Signature" in output
    assert "TLS Web Client Authentication" in output
    _check_client_certificate(ca_dir, ca)

    saved_ca_key = (ca_dir / "ca.key").read_bytes()  # "stored in a password manager"
    _run_block("ca-key-offline", tmp_path)
    assert not (ca_dir / "ca.key").exists()

    _run_block("trust-anchor-request", tmp_path)
    request = json.loads((ca_dir / "trust-anchor.json").read_text())
    assert request["source"]["sourceType"] == "CERTIFICATE_BUNDLE"
    assert request["source"]["sourceData"]["x509CertificateData"] == (ca_dir / "ca.pem").read_text()
    _check_against_botocore("rolesanywhere", "CreateTrustAnchor", request)

    _run_block("role-policies", tmp_path)
    trust = json.loads((ca_dir / "trust-policy.json").read_text())["Statement"][0]
    assert trust["Principal"] == {"Service": "rolesanywhere.amazonaws.com"}
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"].startswith("arn:aws:rolesanywhere:")
    assert trust["Condition"]["StringEquals"]["aws:PrincipalTag/x509Subject/CN"] == (
        "agentic-vault-vm"
    )
    kms = json.loads((ca_dir / "kms-signer-policy.json").read_text())["Statement"]
    assert kms == [
        {
            "Effect": "Allow",
            "Action": ["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"],
            "Resource": "arn:aws:kms:REGION:ACCOUNT:key/KEY_ID",
        }
    ]

    _run_block("aws-profile", tmp_path)
    _check_profile(tmp_path / ".aws" / "config")

    (ca_dir / "ca.key").write_bytes(saved_ca_key)  # "restored from the password manager"
    old_serial = x509.load_pem_x509_certificate((ca_dir / "client.crt").read_bytes()).serial_number
    _run_block("renewal", tmp_path)
    renewed = _check_client_certificate(ca_dir, ca)
    assert renewed.serial_number != old_serial
    assert not (ca_dir / "ca.key").exists()


def _check_client_certificate(ca_dir: Path, ca: x509.Certificate) -> x509.Certificate:
    client = x509.load_pem_x509_certificate((ca_dir / "client.crt").read_bytes())
    client.verify_directly_issued_by(ca)
    constraints = client.extensions.get_extension_for_class(x509.BasicConstraints)
    assert not constraints.value.ca
    usage = client.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert client.subject.rfc4514_string() == "O=YourOrg,CN=agentic-vault-vm"
    lifetime = client.not_valid_after_utc - client.not_valid_before_utc
    assert 364 <= lifetime.days <= 366
    return client


def _check_profile(config_file: Path) -> None:
    # botocore's own parser: a multi-line credential_process would not survive it.
    session = botocore.session.Session()
    session.set_config_variable("config_file", str(config_file))
    profile = session.full_config["profiles"]["rolesanywhere-kms"]
    command = profile["credential_process"]
    assert "\n" not in command
    argv = shlex.split(command)
    assert argv[:2] == ["/usr/local/bin/aws_signing_helper", "credential-process"]
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options == {
        "--certificate": "/etc/pki/rolesanywhere/client.crt",
        "--private-key": "/etc/pki/rolesanywhere/client.key",
        "--trust-anchor-arn": "arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/TA_ID",
        "--profile-arn": "arn:aws:rolesanywhere:REGION:ACCOUNT:profile/PROFILE_ID",
        "--role-arn": "arn:aws:iam::ACCOUNT:role/agentic-vault-signer",
    }
    parser = configparser.ConfigParser()
    parser.read(config_file)
    assert parser.sections() == ["profile rolesanywhere-kms"]


# -- AWS commands ------------------------------------------------------------------------

GLOBAL_OPTIONS = {
    "--region",
    "--profile",
    "--output",
    "--query",
    "--cli-input-json",
    "--endpoint-url",
    "--no-cli-pager",
}
CLI_ONLY = {("sso", "login"), ("configure", "sso"), ("configure", "list-profiles")}


def aws_commands(text: str) -> list[list[str]]:
    """Every ``aws ...`` command of a Markdown text, as argv."""
    commands = []
    for match in BLOCK.finditer(text):
        if match[3] not in ("bash", "sh", "shell"):
            continue
        joined = re.sub(r"\\\n\s*", " ", match[4])
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("aws "):
                commands.append(shlex.split(line))
    # ... and those quoted inline, as in the troubleshooting tables.
    commands += [shlex.split(span) for span in re.findall(r"`(aws [^`]+)`", text)]
    return commands


def _check_against_botocore(service: str, operation: str, params: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model(service)
    members = model.operation_model(operation).input_shape.members
    assert set(params) <= set(members), f"{operation}: {set(params) - set(members)}"


DOC_FILES = [*DOCS, ROOT / "README.md"]


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_aws_commands_exist_with_those_options(doc: Path) -> None:
    session = botocore.session.get_session()
    for argv in aws_commands(doc.read_text()):
        service, operation = argv[1], argv[2]
        if (service, operation) in CLI_ONLY:
            continue
        model = session.get_service_model(service)
        by_cli_name = {xform_name(name, "-"): name for name in model.operation_names}
        assert operation in by_cli_name, f"{doc.name}: aws {service} {operation}"
        members = model.operation_model(by_cli_name[operation]).input_shape.members
        options = {xform_name(name, "-") for name in members}
        for token in argv[3:]:
            if token.startswith("--"):
                name = token.split("=")[0]
                bare = name[len("--no-") :] if name.startswith("--no-") else name[2:]
                assert name in GLOBAL_OPTIONS or bare in options, (
                    f"{doc.name}: aws {service} {operation} has no option {name}"
                )


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_docs_use_placeholders_not_real_account_ids(doc: Path) -> None:
    for number in re.findall(r"(?<![\w-])\d{12}(?![\w-])", doc.read_text()):
        assert number == "123456789012", f"{doc.name}: a real-looking account id {number}"
    for argv in aws_commands(doc.read_text()):
        if "--region" in argv:
            assert argv[argv.index("--region") + 1] == "REGION", " ".join(argv)


def test_readme_client_configurations_are_valid_json() -> None:
    found = [
        json.loads(body)
        for _, _, language, body in blocks(ROOT / "README.md")
        if language == "json"
    ]
    assert len(found) == 3
    for config in found:
        servers = config.get("mcpServers") or config["servers"]
        assert set(servers) == {"agentic-vault"}


def test_env_example_lists_every_variable_the_code_reads() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))
    read = set(re.findall(r'_env\(environ, "(\w+)"\)', source))
    read |= set(re.findall(r'environ\.get\("(\w+)"', source))
    assert {"VAULT_KEY_ID", "VAULT_REGION", "AWS_REGION"} <= read
    documented = set(re.findall(r"^#? ?(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - {"HOME", "PATH"} <= documented, read - documented
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_KMS"):
        assert name in documented


# -- tool examples -----------------------------------------------------------------------

TOOLS_DOC = ROOT / "docs" / "tools.md"


def _examples(kind: str) -> list[tuple[str, Any]]:
    return [(value, json.loads(body)) for k, value, _, body in blocks(TOOLS_DOC) if k == kind]


def test_every_tool_has_a_request_and_a_response_example() -> None:
    names = {spec.name for spec in TOOLS}
    assert {name for name, _ in _examples("request")} == names
    assert {name for name, _ in _examples("response")} == names


@pytest.mark.parametrize("example", _examples("response"), ids=lambda e: e[0])
def test_response_examples_have_exactly_the_output_fields(example: tuple[str, Any]) -> None:
    name, response = example
    spec = next(spec for spec in TOOLS if spec.name == name)
    assert spec.result.model_validate(response).model_dump(mode="json", by_alias=True) == response


def test_signatures_in_the_examples_verify() -> None:
    requests = dict(_examples("request"))
    responses = dict(_examples("response"))
    address = responses["get_address"]["address"]

    signed = responses["sign_transaction"]
    assert Account.recover_transaction(signed["raw_transaction"]) == address == signed["from"]
    assert signed["hash"] == "0x" + keccak(hexstr=signed["raw_transaction"]).hex()

    message = requests["sign_message"]["message"]
    signed = responses["sign_message"]
    assert signed["digest"] == "0x" + PersonalMessage.parse(message).digest.hex()
    assert Account.recover_message(encode_defunct(text=message), signature=signed["signature"]) == (
        address
    )

    payload = parse_typed_data(requests["sign_typed_data"]["typed_data"])
    signed = responses["sign_typed_data"]
    assert signed["digest"] == "0x" + payload.digest.hex()
    signable = encode_typed_data(full_message=payload.full_message)
    assert Account.recover_message(signable, signature=signed["signature"]) == address


@pytest.mark.anyio
async def test_request_examples_are_accepted_by_the_server(
    emulator: LocalKms, tmp_path: Path
) -> None:
    emulator.create_key(alias="alias/docs-examples")
    env = server_env(emulator, tmp_path, VAULT_KEY_ID="alias/docs-examples")
    async with mcp_client(env) as client:
        for name, arguments in _examples("request"):
            structured(await client.call_tool(name, arguments))
        refused = await client.call_tool(
            "sign_transaction",
            {"transaction": {"chainId": 0, "nonce": 7, "gas": 21000, "gasPrice": 1}},
        )
        documented_error = next(body.strip() for k, _, _, body in blocks(TOOLS_DOC) if k == "error")
        assert refused.content[0].text == documented_error  # type: ignore[union-attr]

        key = emulator.client().describe_key(KeyId="alias/docs-examples")["KeyMetadata"]
        emulator.client().disable_key(KeyId=key["KeyId"])
        fresh_env = server_env(emulator, tmp_path, VAULT_KEY_ID="alias/docs-examples")
    async with mcp_client(fresh_env) as client:
        unhealthy = structured(await client.call_tool("health_check", {}))
    documented = [r for n, r in _examples("response") if n == "health_check"][1]
    assert unhealthy["problems"] == [
        p.replace("alias/agentic-vault-signer", "alias/docs-examples")
        for p in documented["problems"]
    ]
    assert {k: v for k, v in unhealthy.items() if k in ("status", "address", "key_state")} == {
        "status": "unhealthy",
        "address": None,
        "key_state": "Disabled",
    }
