"""Real files for an IAM Roles Anywhere setup, right and wrong, as operators get them.

Certificates and keys are made with ``cryptography`` (a CA and a client certificate
with exactly the extensions asked for); helper stand-ins are what people really end up
with instead of AWS's ``aws_signing_helper``: an XML error page, a file without its
execute bit, an ELF built for another architecture, and scripts that print the
credential JSON or one of the helper's error messages.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import platform
import re
import stat
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agentic_vault._local_kms import LocalKms

from .mcp_helpers import CLI, server_env

TA_ID = "3f1c8a2e-5b7d-4e9a-9c1f-2a6b8d4e0f13"
PROFILE_ID = "7d2e4f6a-1b3c-4d5e-8f9a-0b1c2d3e4f5a"
TA_ARN = f"arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/{TA_ID}"
PROFILE_ARN = f"arn:aws:rolesanywhere:us-east-1:123456789012:profile/{PROFILE_ID}"
ROLE_ARN = "arn:aws:iam::123456789012:role/agentic-vault-signer"

# The S3 answer to a download URL with the wrong case (what `curl -o` saves).
XML_ERROR_PAGE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    "<Message>The specified key does not exist.</Message></Error>\n"
)

_NOW = dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "YourOrg"),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.unlink(missing_ok=True)  # installed read-only by an earlier make_client
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o440)


@dataclass(frozen=True)
class Ca:
    certificate: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def make_ca(
    directory: Path,
    name: str = "ca.pem",
    *,
    ca_true: bool = True,
    critical: bool = True,
    key_cert_sign: bool = True,
) -> Ca:
    """A self-signed CA certificate, with the basic constraints and key usage asked for."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"agentic-vault test CA {name}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca_true, path_length=None), critical=critical)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    cert = builder.sign(key, hashes.SHA256())
    path = directory / name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(certificate=path, key=key, cert=cert)


@dataclass(frozen=True)
class Client:
    certificate: Path
    key: Path


def make_client(
    directory: Path,
    ca: Ca,
    *,
    digital_signature: bool = True,
    client_auth: bool = True,
    ca_true: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    prefix: str = "client",
) -> Client:
    """A client certificate issued by ``ca`` and its key (mode 0440, as the guide installs it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("agentic-vault-vm"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or _NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or _NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca_true, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=not digital_signature,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [
                    ExtendedKeyUsageOID.CLIENT_AUTH
                    if client_auth
                    else ExtendedKeyUsageOID.SERVER_AUTH
                ]
            ),
            critical=False,
        )
    )
    cert = builder.sign(ca.key, hashes.SHA256())
    certificate = directory / f"{prefix}.crt"
    certificate.unlink(missing_ok=True)
    certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certificate.chmod(0o444)
    key_path = directory / f"{prefix}.key"
    _write_key(key_path, key)
    return Client(certificate=certificate, key=key_path)


# -- helper stand-ins -----------------------------------------------------------------

CREDENTIALS_SCRIPT = """\
#!{python}
import datetime as dt, json, sys
error = {error!r}
if error:
    print(error, file=sys.stderr)
    sys.exit(1)
expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
print(json.dumps({{
    "Version": 1,
    "AccessKeyId": "ASIAFAKEHELPERKEY",
    "SecretAccessKey": {secret!r},
    "SessionToken": {token!r},
    "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
}}))
"""
# What a fake helper hands out: tests check that neither ever reaches doctor's output.
FAKE_SECRET = "fake-helper-secret-never-printed"
FAKE_TOKEN = "fake-helper-session-token-never-printed"


def fake_helper(path: Path, error: str = "") -> Path:
    """A script standing in for ``aws_signing_helper``: credential JSON, or ``error`` + exit 1."""
    path.write_text(
        CREDENTIALS_SCRIPT.format(
            python=sys.executable, error=error, secret=FAKE_SECRET, token=FAKE_TOKEN
        )
    )
    path.chmod(0o755)
    return path


def xml_helper(path: Path) -> Path:
    """The XML error page saved by a download with the wrong URL case, made executable."""
    path.write_text(XML_ERROR_PAGE)
    path.chmod(0o755)
    return path


def non_executable_helper(path: Path) -> Path:
    """A helper downloaded but never made executable."""
    fake_helper(path)
    path.chmod(0o644)
    return path


FOREIGN_MACHINE = {"x86_64": ("aarch64", 183), "aarch64": ("x86_64", 62)}


def foreign_architecture() -> tuple[str, int]:
    """``(uname -m name, ELF e_machine)`` of an architecture this machine cannot run."""
    return FOREIGN_MACHINE.get(platform.machine(), ("aarch64", 183))


def foreign_elf_helper(path: Path) -> Path:
    """A 64-bit little-endian ELF executable header for another architecture."""
    _, machine = foreign_architecture()
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    # e_type EXEC, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
    # e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
    header += struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0x400000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    path.write_bytes(header + bytes(64))
    path.chmod(0o755)
    return path


# -- the AWS profile ------------------------------------------------------------------


def credential_process(
    helper: Path | str,
    client: Client | None = None,
    *,
    certificate: Path | str | None = None,
    private_key: Path | str | None = None,
    ta_arn: str = TA_ARN,
    profile_arn: str = PROFILE_ARN,
    role_arn: str = ROLE_ARN,
) -> str:
    """The single-line ``aws_signing_helper credential-process ...`` of the guide."""
    cert = certificate if certificate is not None else (client.certificate if client else "")
    key = private_key if private_key is not None else (client.key if client else "")
    return (
        f"{helper} credential-process --certificate {cert} --private-key {key} "
        f"--trust-anchor-arn {ta_arn} --profile-arn {profile_arn} --role-arn {role_arn}"
    )


def write_profile(
    config: Path,
    command: str,
    *,
    name: str = "rolesanywhere-kms",
    region: str = "us-east-1",
    append: bool = False,
) -> Path:
    """``[profile NAME]`` with a region and a credential_process, written (or appended)."""
    section = f"\n[profile {name}]\nregion = {region}\ncredential_process = {command}\n"
    with config.open("a" if append else "w") as file:
        file.write(section)
    config.chmod(config.stat().st_mode & ~stat.S_IWOTH)
    return config


# -- a whole setup, and doctor run on it ------------------------------------------------


@dataclass
class Setup:
    """A working Roles Anywhere setup on this machine, pointed at the local KMS.

    Tests break one thing in it, then run the installed ``agentic-vault doctor``.
    """

    root: Path
    ca: Ca
    client: Client
    helper: Path
    config: Path
    key_id: str
    env: dict[str, str]

    def profile(self, command: str | None = None, **kwargs: Any) -> None:
        command = command or credential_process(self.helper, self.client)
        write_profile(self.config, command, **kwargs)

    def doctor(self, *args: str, json_output: bool = True, prefix: Sequence[str] = ()) -> Doctor:
        command = [*prefix, CLI, "doctor", *(["--json"] if json_output else []), *args]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=90, check=False
        )
        return Doctor(done.returncode, done.stdout, done.stderr, json_output)


@dataclass
class Doctor:
    status: int
    stdout: str
    stderr: str
    json_output: bool

    @property
    def report(self) -> dict[str, Any]:
        assert self.json_output
        report = json.loads(self.stdout)
        assert isinstance(report, dict), self.stdout
        return report

    @property
    def checks(self) -> dict[str, dict[str, str]]:
        return {check["name"]: check for check in self.report["checks"]}

    def check(self, name: str) -> dict[str, str]:
        return self.checks[name]

    def says(self, name: str, status: str, *phrases: str) -> str:
        """Assert the check's status and that its message holds every phrase; return it."""
        check = self.check(name)
        assert check["status"] == status, check
        for phrase in phrases:
            assert phrase in check["message"], (phrase, check)
        assert self.status == (1 if any(c["status"] == "fail" for c in self.checks.values()) else 0)
        assert SECRETS.isdisjoint(_words(self.stdout + self.stderr))
        return check["message"]


# What the fake helper returns: none of it may ever reach doctor's output.
SECRETS = frozenset({"ASIAFAKEHELPERKEY", FAKE_SECRET, FAKE_TOKEN})


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w-]+", text))


def good_setup(emulator: LocalKms, root: Path) -> Setup:
    """CA, client certificate and key, a fake helper, the profile, a key: all correct."""
    ca = make_ca(root)
    client = make_client(root, ca)
    helper = fake_helper(root / "aws_signing_helper")
    config = root / "aws-config"
    key_id = f"alias/doctor-{uuid.uuid4().hex[:10]}"
    emulator.create_key(alias=key_id)
    env = server_env(
        emulator,
        root,
        VAULT_KEY_ID=key_id,
        AWS_PROFILE="rolesanywhere-kms",
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_ENDPOINT_URL_STS=emulator.endpoint,
    )
    setup = Setup(root, ca, client, helper, config, key_id, env)
    setup.profile()
    return setup


class DenyingKms:
    """KMS behind IAM: forwards to the emulator, but answers AccessDeniedException for ``deny``.

    moto checks no IAM policy, so a role that lacks a KMS action is played at the
    network boundary, with the answer KMS gives.
    """

    def __init__(self, upstream: str, deny: set[str]) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.deny = deny
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                if operation in owner.deny:
                    status, payload = (
                        400,
                        json.dumps(
                            {
                                "__type": "AccessDeniedException",
                                "message": f"User: arn:aws:sts::123456789012:assumed-role/"
                                f"agentic-vault-signer/1 is not authorized to perform: "
                                f"kms:{operation} on this resource",
                            }
                        ).encode(),
                    )
                    headers = {"Content-Type": "application/x-amz-json-1.1"}
                else:
                    upstream = http.client.HTTPConnection(owner.upstream, timeout=30)
                    forwarded = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    upstream.request("POST", self.path, body=body, headers=forwarded)
                    answer = upstream.getresponse()
                    status, payload = answer.status, answer.read()
                    headers = {"Content-Type": answer.getheader("Content-Type", "")}
                    upstream.close()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
