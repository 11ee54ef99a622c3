"""The files and ARNs ``aws_signing_helper credential-process`` is given.

    certificate             --certificate exists and holds an X.509 certificate
    certificate-extensions  digitalSignature, clientAuth, CA:FALSE (else "Insufficient certificate")
    certificate-expiry      not expired, not expiring within 30 days, already valid
    private-key             --private-key readable by this user, by no one else, a private key
    key-pair                the key belongs to the certificate
    ca-certificate          with --ca: critical CA:TRUE and keyCertSign (else no trust anchor)
    certificate-chain       with --ca: the CA signed the client certificate (else "Untrusted")
    roles-anywhere-arns     trust anchor, profile and role ARNs well formed, regions agree

Everything is read with ``cryptography``; the private key is loaded only to compare
its public half with the certificate's.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._aws_config import GUIDE, CredentialProcess, is_region_name
from .report import Check, fail, ok, skipped, warn

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

RENEW_AHEAD = dt.timedelta(days=30)
RENEWAL = f"issue a new one (Yearly renewal in {GUIDE}) and install it with the same modes"
EXTENSION_FILE = (
    f"reissue it with the extension file of step 2 of {GUIDE} (basicConstraints = critical, "
    "CA:FALSE; keyUsage = critical, digitalSignature; extendedKeyUsage = clientAuth)"
)
NAMES = (
    "certificate",
    "certificate-extensions",
    "certificate-expiry",
    "private-key",
    "key-pair",
    "ca-certificate",
    "certificate-chain",
    "roles-anywhere-arns",
)


@dataclass
class _Loaded:
    certificate: x509.Certificate | None = None
    key: PrivateKeyTypes | None = None


def check_certificates(
    process: CredentialProcess | None, ca: Path | None, profile_region: str | None
) -> list[Check]:
    if process is None or not process.is_signing_helper:
        why = (
            "no credential_process"
            if process is None
            else "credential_process is not aws_signing_helper credential-process"
        )
        return [skipped(name, f"{why}: no certificate to check") for name in NAMES]
    if process.problem:
        return [skipped(name, "the credential_process line is broken") for name in NAMES]
    return list(_checks(process, ca, profile_region))


def _checks(process: CredentialProcess, ca: Path | None, region: str | None) -> Iterator[Check]:
    loaded = _Loaded()
    cert_path = process.options.get("--certificate", "")
    if not cert_path or cert_path.startswith("pkcs11:"):
        why = (
            "the certificate comes from a PKCS#11 token"
            if cert_path
            else "credential_process names no --certificate file"
        )
        for name in ("certificate", "certificate-extensions", "certificate-expiry"):
            yield skipped(name, why)
    else:
        certificate_check, loaded.certificate = _load_certificate(Path(cert_path))
        yield certificate_check
        if loaded.certificate is None:
            why = "the certificate could not be read (see certificate)"
            yield skipped("certificate-extensions", why)
            yield skipped("certificate-expiry", why)
        else:
            yield _extensions(loaded.certificate)
            yield _expiry(loaded.certificate)
    key_path = process.options.get("--private-key", "")
    if not key_path or key_path.startswith("pkcs11:"):
        yield skipped(
            "private-key",
            "the key is in a PKCS#11 token"
            if key_path
            else "credential_process names no --private-key file",
        )
    else:
        key_check, loaded.key = _load_key(Path(key_path), process)
        yield key_check
    yield _key_pair(loaded)
    yield from _ca(ca, loaded.certificate)
    yield _arns(process, region)


# -- the certificate ---------------------------------------------------------------------


def _load_certificate(path: Path) -> tuple[Check, x509.Certificate | None]:
    from cryptography import x509

    data, problem = _read(path, "--certificate", "client.crt")
    if problem is not None:
        return problem, None
    assert data is not None
    if b"-----BEGIN" in data:
        kind = _pem_kind(data)
        if kind != "CERTIFICATE":
            return _not_a(path, kind, "certificate"), None
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            return fail(
                "certificate",
                f"{path} holds a damaged PEM certificate ({exc})",
                "copy client.crt again from the machine that issued it",
            ), None
    else:
        try:
            certificate = x509.load_der_x509_certificate(data)
        except ValueError:
            return _not_a(path, None, "certificate"), None
    return ok(
        "certificate",
        f"{path}: {certificate.subject.rfc4514_string()}, issued by "
        f"{certificate.issuer.rfc4514_string()}, serial {certificate.serial_number:x}",
    ), certificate


def _extensions(certificate: x509.Certificate) -> Check:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    lacking: list[str] = []
    try:
        if not certificate.extensions.get_extension_for_class(
            x509.KeyUsage
        ).value.digital_signature:
            lacking.append("keyUsage digitalSignature")
    except x509.ExtensionNotFound:
        lacking.append("keyUsage digitalSignature")
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            lacking.append("extendedKeyUsage clientAuth")
    except x509.ExtensionNotFound:
        lacking.append("extendedKeyUsage clientAuth")
    try:
        if certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            lacking.append("CA:FALSE (it says CA:TRUE: a CA certificate, not a client one)")
    except x509.ExtensionNotFound:
        pass
    if lacking:
        return fail(
            "certificate-extensions",
            f"the client certificate lacks {', '.join(lacking)}; Roles Anywhere answers "
            "'Untrusted certificate. Insufficient certificate'",
            EXTENSION_FILE,
        )
    return ok("certificate-extensions", "digitalSignature, clientAuth, CA:FALSE")


def _expiry(certificate: x509.Certificate) -> Check:
    now = dt.datetime.now(dt.UTC)
    until = certificate.not_valid_after_utc
    since = certificate.not_valid_before_utc
    if since > now:
        return fail(
            "certificate-expiry",
            f"the client certificate is not valid before {since:%Y-%m-%d %H:%M} UTC",
            "check the system clock (`timedatectl`); otherwise wait, or reissue it",
        )
    if until <= now:
        return fail(
            "certificate-expiry",
            f"the client certificate expired on {until:%Y-%m-%d} ({(now - until).days} days "
            "ago); Roles Anywhere refuses it",
            RENEWAL,
        )
    days = (until - now).days
    if until - now <= RENEW_AHEAD:
        return warn(
            "certificate-expiry",
            f"the client certificate expires on {until:%Y-%m-%d}, in {days} days; then every "
            "signature fails",
            "renew it now: " + RENEWAL,
        )
    return ok("certificate-expiry", f"valid until {until:%Y-%m-%d} ({days} days)")


# -- the private key -----------------------------------------------------------------------


def _load_key(path: Path, process: CredentialProcess) -> tuple[Check, PrivateKeyTypes | None]:
    from cryptography.hazmat.primitives.serialization import (
        load_der_private_key,
        load_pem_private_key,
    )

    data, problem = _read(path, "--private-key", "client.key")
    if problem is not None:
        return problem, None
    assert data is not None
    kind = _pem_kind(data) if b"-----BEGIN" in data else None
    if kind is not None and "PRIVATE KEY" not in kind:
        return _not_a(path, kind, "private key"), None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o037:
        return fail(
            "private-key",
            f"{path} has mode {mode:04o}: more than its owner and group may read or write it, "
            "and anyone who copies it can get the role's credentials",
            f"`sudo chmod 440 {path}`",
        ), None
    if kind == "TSS2 PRIVATE KEY":
        return ok("private-key", f"{path}: a TPM-wrapped key (mode {mode:04o})"), None
    password = process.options.get("--pkcs8-password")
    try:
        if kind is not None:
            key = load_pem_private_key(data, password=password.encode() if password else None)
        else:
            key = load_der_private_key(data, password=password.encode() if password else None)
    except TypeError:
        return fail(
            "private-key",
            f"{path} is encrypted and credential_process gives no --pkcs8-password; the "
            "helper answers 'unable to parse private key'",
            "add --pkcs8-password to credential_process, or install the key unencrypted (mode 440)",
        ), None
    except ValueError:
        if kind is None:
            return _not_a(path, None, "private key"), None
        return fail(
            "private-key",
            f"{path} holds a private key that cannot be read (damaged, or a wrong "
            "--pkcs8-password)",
            "copy client.key again from the machine that generated it",
        ), None
    as_root = (
        "; checked as root, who reads any file: run doctor as the service user to check "
        "that it can read the key"
        if os.geteuid() == 0
        else ""
    )
    return ok(
        "private-key", f"{path}: a private key, mode {mode:04o}, {_owner(path)}{as_root}"
    ), key


def _key_pair(loaded: _Loaded) -> Check:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if loaded.certificate is None or loaded.key is None:
        return skipped("key-pair", "needs both the certificate and the key read")

    def spki(key: object) -> bytes:
        return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined,no-any-return]

    if spki(loaded.key.public_key()) != spki(loaded.certificate.public_key()):
        return fail(
            "key-pair",
            "the private key does not belong to the certificate (their public keys differ)",
            "install the client.key generated together with this client.crt, or issue a new "
            "certificate for this key",
        )
    return ok("key-pair", "the private key belongs to the certificate")


# -- the CA --------------------------------------------------------------------------------


def _ca(path: Path | None, client: x509.Certificate | None) -> Iterator[Check]:
    from cryptography import x509

    if path is None:
        why = "pass --ca FILE (the CA certificate of the trust anchor) to check the CA"
        yield skipped("ca-certificate", why)
        yield skipped("certificate-chain", why)
        return
    data, problem = _read(path, "--ca", "ca.pem", name="ca-certificate", owner="doctor")
    ca = None
    if problem is None and data is not None:
        try:
            ca = (
                x509.load_pem_x509_certificate(data)
                if b"-----BEGIN" in data
                else x509.load_der_x509_certificate(data)
            )
        except ValueError:
            problem = _not_a(path, _pem_kind(data), "certificate", name="ca-certificate")
    if ca is None:
        yield problem or _not_a(path, None, "certificate", name="ca-certificate")
        yield skipped("certificate-chain", "the CA certificate could not be read")
        return
    yield _ca_constraints(path, ca)
    if client is None:
        yield skipped("certificate-chain", "the client certificate could not be read")
        return
    try:
        client.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - any failure means: not signed by this CA
        yield fail(
            "certificate-chain",
            f"the client certificate (issuer {client.issuer.rfc4514_string()}) was not "
            f"signed by {path} ({ca.subject.rfc4514_string()}); Roles Anywhere answers "
            "'Untrusted certificate'",
            "issue the client certificate with this CA (step 2), or pass the CA the trust "
            "anchor was created from",
        )
        return
    yield ok("certificate-chain", f"the client certificate was signed by {path}")


def _ca_constraints(path: Path, ca: x509.Certificate) -> Check:
    from cryptography import x509

    lacking = []
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        if not (constraints.value.ca and constraints.critical):
            lacking.append("critical basicConstraints CA:TRUE")
    except x509.ExtensionNotFound:
        lacking.append("critical basicConstraints CA:TRUE")
    try:
        if not ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
            lacking.append("keyUsage keyCertSign")
    except x509.ExtensionNotFound:
        lacking.append("keyUsage keyCertSign")
    if lacking:
        return fail(
            "ca-certificate",
            f"{path} lacks {' and '.join(lacking)}; creating the trust anchor fails with "
            "'Incorrect basic constraints for CA certificate'",
            'recreate the CA with -addext "basicConstraints=critical,CA:TRUE" -addext '
            f'"keyUsage=critical,keyCertSign,cRLSign" (step 2 of {GUIDE}), create the trust '
            "anchor from it, and issue the client certificate again",
        )
    return ok("ca-certificate", f"{path}: {ca.subject.rfc4514_string()}, CA:TRUE, keyCertSign")


# -- the ARNs ------------------------------------------------------------------------------

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ROLES_ANYWHERE_ARN = re.compile(
    r"arn:aws[a-z-]*:rolesanywhere:(?P<region>[^:]*):(?P<account>[^:]*):"
    r"(?P<kind>trust-anchor|profile)/(?P<id>.*)"
)
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(?P<account>[^:]*):role/(?P<name>[\w+=,.@/-]+)")
_PLACEHOLDERS = re.compile(r"\b(REGION|ACCOUNT|TA_ID|PROFILE_ID|ROLE_NAME|YOUR_ROLE_NAME)\b")


def _arns(process: CredentialProcess, profile_region: str | None) -> Check:
    problems: list[str] = []
    regions: dict[str, str] = {}
    accounts: dict[str, str] = {}
    for flag, kind in (("--trust-anchor-arn", "trust-anchor"), ("--profile-arn", "profile")):
        arn = process.options.get(flag, "")
        match = _ROLES_ANYWHERE_ARN.fullmatch(arn)
        placeholders = sorted(set(_PLACEHOLDERS.findall(arn)))
        if placeholders:
            problems.append(
                f"{flag} still holds the guide's placeholders {', '.join(placeholders)}"
            )
        elif not match or match["kind"] != kind:
            problems.append(
                f"{flag} {arn!r} is not a Roles Anywhere {kind} ARN "
                f"(arn:aws:rolesanywhere:REGION:ACCOUNT:{kind}/ID)"
            )
        else:
            if not is_region_name(match["region"]):
                problems.append(f"{flag} names {match['region']!r}, not a region")
            if not re.fullmatch(r"\d{12}", match["account"]):
                problems.append(f"{flag} names account {match['account']!r}, not 12 digits")
            if not re.fullmatch(_UUID, match["id"]):
                problems.append(f"{flag} ends in {match['id']!r}, not an id (a UUID)")
            regions[flag] = match["region"]
            accounts[flag] = match["account"]
    role = process.options.get("--role-arn", "")
    role_match = _ROLE_ARN.fullmatch(role)
    if _PLACEHOLDERS.search(role):
        problems.append("--role-arn still holds the guide's placeholders")
    elif not role_match or not re.fullmatch(r"\d{12}", role_match["account"]):
        problems.append(
            f"--role-arn {role!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )
    else:
        accounts["--role-arn"] = role_match["account"]
    if problems:
        return fail(
            "roles-anywhere-arns",
            "; ".join(problems),
            "copy the three ARNs written down in step 4 (`aws rolesanywhere "
            "list-trust-anchors`, `aws rolesanywhere list-profiles`, `aws iam get-role`)",
        )
    if len(set(regions.values())) > 1:
        return fail(
            "roles-anywhere-arns",
            f"the trust anchor is in {regions['--trust-anchor-arn']} but the profile in "
            f"{regions['--profile-arn']}; the helper calls one region",
            "use a trust anchor and a profile of the same region",
        )
    if len(set(accounts.values())) > 1:
        return warn(
            "roles-anywhere-arns",
            "the trust anchor, profile and role ARNs name different accounts: "
            + ", ".join(f"{flag} {account}" for flag, account in accounts.items()),
            "use the trust anchor, profile and role of one account",
        )
    region = regions["--trust-anchor-arn"]
    if profile_region and region != profile_region:
        return warn(
            "roles-anywhere-arns",
            f"the trust anchor and profile are in {region}, the AWS profile's region is "
            f"{profile_region}; that works only if you really created them in another region "
            "than the key",
            "check that these ARNs are the ones of your setup (a copy from another one?)",
        )
    return ok(
        "roles-anywhere-arns",
        f"trust anchor and profile in {region}, account {accounts['--trust-anchor-arn']}, "
        f"role {role_match['name'] if role_match else role}",
    )


# -- files ---------------------------------------------------------------------------------


def _read(
    path: Path, flag: str, usual: str, name: str | None = None, owner: str = "credential_process"
) -> tuple[bytes | None, Check | None]:
    check = name or ("certificate" if flag == "--certificate" else "private-key")
    where = f"{flag} in {owner}" if owner == "credential_process" else flag
    if str(path).startswith("~") or "$" in str(path):
        return None, fail(
            check,
            f"{where} is {path}: the SDK runs the helper without a shell, so ~ and $VARIABLES "
            "are not expanded",
            "write the absolute path",
        )
    try:
        return path.read_bytes(), None
    except FileNotFoundError:
        return None, fail(
            check,
            f"{path} ({where}) does not exist",
            f"install {usual} there (step 6 of {GUIDE}), or correct the path",
        )
    except IsADirectoryError:
        return None, fail(check, f"{path} ({where}) is a directory", f"name the {usual} file")
    except PermissionError:
        then = (
            "; the helper then fails with 'unable to parse private key'"
            if check == "private-key"
            else ""
        )
        return None, fail(
            check,
            f"{path} ({where}) is not readable by {_user()}: {_mode_and_owner(path)}{then}",
            f"`sudo chown root:GROUP {path}` and `sudo chmod 440 {path}`, GROUP being the "
            "group of the user that runs agentic-vault (`id -gn`)",
        )


def _pem_kind(data: bytes) -> str | None:
    match = re.search(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
    return match[1].decode() if match else None


def _not_a(path: Path, kind: str | None, wanted: str, name: str | None = None) -> Check:
    check = name or ("private-key" if wanted == "private key" else "certificate")
    if kind and "PRIVATE KEY" in kind:
        what, fix = "a private key", "swap --certificate and --private-key"
    elif kind == "CERTIFICATE REQUEST":
        what, fix = "a certificate request (the .csr)", "name client.crt, the signed certificate"
    elif kind == "CERTIFICATE":
        what, fix = "a certificate", "swap --certificate and --private-key"
    else:
        what = f"PEM of type {kind}" if kind else "neither PEM nor DER"
        fix = f"name the {'client.key' if wanted == 'private key' else 'client.crt'} file"
    return fail(check, f"{path} is not a {wanted}: it holds {what}", fix)


def _user() -> str:
    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"uid {os.geteuid()}"


def _owner(path: Path) -> str:
    info = path.stat()
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"owner {user}:{group}"


def _mode_and_owner(path: Path) -> str:
    try:
        return f"mode {stat.S_IMODE(path.stat().st_mode):04o}, {_owner(path)}"
    except OSError:
        return "its directory cannot be searched"
