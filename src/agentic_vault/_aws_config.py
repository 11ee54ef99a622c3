"""The AWS shared config file as the SDK reads it, and the ``credential_process`` helper it names.

Operators write ``~/.aws/config`` by hand from guides, and its mistakes surface far
from their cause, at the first KMS call. This module reads the same file the SDK
reads and names the mistake:

    AWS_CONFIG_FILE or ~/.aws/config ──read_config──▶ ConfigFile (sections, duplicates, parse error)
        └─ the profile in effect ──▶ region (a region name?), credential_process
    credential_process ──parse_credential_process──▶ argv (shlex, as botocore splits it)
        ├─ argv[0] ──inspect_program──▶ ELF for this machine? a script? an XML error page?
        └─ the helper's stderr ──explain_helper_error──▶ the Roles Anywhere failure and its fix

It serves ``agentic-vault doctor``, start-up (a region that is not a region is
refused) and ``_kms_errors`` (a helper that cannot be run). It reads files and
nothing else: it runs no program, imports no boto3, and never reads a credential
value (of the shared credentials file it reads only the section names).
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import os
import platform
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._config import _REGION_RE

GUIDE = "docs/iam-roles-anywhere.md"


def is_region_name(value: str) -> bool:
    """Whether ``value`` is shaped like an AWS region (``us-east-1``), as --region must be."""
    return _REGION_RE.fullmatch(value) is not None


# -- the file ----------------------------------------------------------------------------


def config_path(environ: Mapping[str, str]) -> Path:
    """The file the SDK reads: ``AWS_CONFIG_FILE``, else ``~/.aws/config``."""
    raw = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    return Path(os.path.expanduser(os.path.expandvars(raw)))


def credentials_path(environ: Mapping[str, str]) -> Path:
    raw = environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    return Path(os.path.expanduser(os.path.expandvars(raw)))


def profile_in_effect(explicit: str | None, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """``(profile name, where it came from)``; ``(default, None)`` when none is named.

    botocore reads ``AWS_DEFAULT_PROFILE`` before ``AWS_PROFILE``.
    """
    if explicit:
        return explicit, "--profile"
    for name in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE"):
        value = environ.get(name, "").strip()
        if value:
            return value, name
    return "default", None


@dataclass(frozen=True)
class ConfigFile:
    """What the config file holds, and what keeps the SDK from reading it."""

    path: Path
    exists: bool
    # profile name → its settings, as botocore maps sections ([default], [profile NAME]).
    profiles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Other section headers ([NAME] without "profile ", [sso-session ...], ...).
    other_sections: tuple[str, ...] = ()
    # A section header that appears more than once → the line numbers it is on.
    duplicates: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # Why the SDK cannot parse the file (duplicates included), or None.
    error: str | None = None


_SECTION = re.compile(r"\[(?P<header>.+)\]")


def read_config(path: Path) -> ConfigFile:
    """Parse ``path`` as botocore does (strict configparser), and leniently to see past errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigFile(path=path, exists=False)
    except IsADirectoryError:
        return ConfigFile(path=path, exists=True, error=f"{path} is a directory, not a file")
    except PermissionError:
        return ConfigFile(path=path, exists=True, error=f"{path} is not readable by this user")
    except UnicodeDecodeError as exc:
        return ConfigFile(path=path, exists=True, error=f"{path} is not UTF-8 text ({exc.reason})")
    duplicates = _duplicate_sections(text)
    error = _strict_parse_error(text)
    lenient = configparser.RawConfigParser(strict=False)
    with contextlib.suppress(configparser.Error):
        # A bad line is reported after the whole file is read: the rest stays usable.
        lenient.read_string(text, source=str(path))
    profiles: dict[str, dict[str, str]] = {}
    others: list[str] = []
    for section in lenient.sections():
        name = _profile_of(section)
        if name is None:
            others.append(section)
        else:
            profiles[name] = dict(lenient.items(section))
    return ConfigFile(
        path=path,
        exists=True,
        profiles=profiles,
        other_sections=tuple(others),
        duplicates=duplicates,
        error=error,
    )


def _profile_of(section: str) -> str | None:
    # botocore: [default], or [profile NAME] split like a shell word list.
    if section == "default":
        return "default"
    if not section.startswith("profile"):
        return None
    try:
        parts = shlex.split(section)
    except ValueError:
        return None
    return parts[1] if len(parts) == 2 and parts[0] == "profile" else None


def _duplicate_sections(text: str) -> dict[str, tuple[int, ...]]:
    seen: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line[:1].isspace():
            continue  # a continuation line, never a header
        match = _SECTION.match(line.strip())
        if match:
            seen.setdefault(match["header"], []).append(number)
    return {header: tuple(lines) for header, lines in seen.items() if len(lines) > 1}


def _strict_parse_error(text: str) -> str | None:
    try:
        configparser.RawConfigParser().read_string(text)
    except configparser.DuplicateSectionError as exc:
        return f"the section [{exc.section}] appears twice (again on line {exc.lineno})"
    except configparser.DuplicateOptionError as exc:
        return (
            f"{exc.option} is set twice in the section [{exc.section}] (again on line {exc.lineno})"
        )
    except configparser.MissingSectionHeaderError as exc:
        return f"line {exc.lineno} comes before any [section] header: {exc.line.strip()!r}"
    except configparser.ParsingError as exc:
        number, quoted = exc.errors[0]
        line = _unquote(quoted)
        hint = (
            " (a credential_process continued on the next line?)"
            if line.strip().startswith("-")
            else ""
        )
        return (
            f"line {number} is neither a [section], a `name = value` nor a comment: "
            f"{line.strip()!r}{hint}"
        )
    except configparser.Error as exc:
        return str(exc).splitlines()[0]
    return None


def _unquote(quoted: str) -> str:
    # configparser keeps each bad line as its repr().
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        return quoted
    return value if isinstance(value, str) else quoted


def credential_profiles(path: Path) -> tuple[str, ...]:
    """The section names of the shared credentials file (its values are never read)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple(m["header"] for line in lines if (m := _SECTION.fullmatch(line.strip())))


# -- the region ------------------------------------------------------------------------


def region_problem(
    explicit_region: str | None, profile: str | None, environ: Mapping[str, str]
) -> str | None:
    """Why the region the SDK would pick is not a region, or None.

    Only asked when no region was given explicitly (flag, VAULT_REGION, AWS_REGION or
    a key ARN): boto3 then takes ``AWS_DEFAULT_REGION``, else the profile's ``region``.
    A file that cannot be read is left to the tools and to doctor.
    """
    if explicit_region:
        return None
    default_region = environ.get("AWS_DEFAULT_REGION", "").strip()
    if default_region:
        if is_region_name(default_region):
            return None
        return (
            f"AWS_DEFAULT_REGION: {default_region!r} is not an AWS region name; set it to the "
            "region of your KMS key (e.g. us-east-1), or pass --region"
        )
    name, _ = profile_in_effect(profile, environ)
    path = config_path(environ)
    config = read_config(path)
    region = config.profiles.get(name, {}).get("region", "").strip()
    if not region or is_region_name(region):
        return None
    return profile_region_problem(name, path, region)


def profile_region_problem(name: str, path: Path, region: str) -> str:
    """The start-up error line for a profile region that is not a region."""
    return (
        f"{profile_region_mistake(name, path, region)}; set it to the region of your KMS key, "
        "e.g. `region = us-east-1`, or pass --region"
    )


def profile_region_mistake(name: str, path: Path, region: str) -> str:
    return (
        f"profile {name} in {path}: region {region!r} is not an AWS region name (a placeholder "
        "left from a guide?)"
    )


# -- credential_process --------------------------------------------------------------------

SIGNING_HELPER = "aws_signing_helper"
# aws_signing_helper flags that take a value; every other flag is a switch.
_VALUED_FLAGS = frozenset(
    {
        "--certificate",
        "--private-key",
        "--trust-anchor-arn",
        "--profile-arn",
        "--role-arn",
        "--intermediates",
        "--session-duration",
        "--endpoint",
        "--region",
        "--cert-selector",
        "--system-store-name",
        "--role-session-name",
        "--pkcs11-pin",
        "--tpm-key-password",
        "--pkcs8-password",
    }
)


@dataclass(frozen=True)
class CredentialProcess:
    """A profile's ``credential_process`` line, split as botocore splits it."""

    raw: str
    argv: tuple[str, ...] = ()
    # flag → value, for aws_signing_helper's valued flags (``--x v`` or ``--x=v``).
    options: Mapping[str, str] = field(default_factory=dict)
    # Arguments the helper would not take as flags (e.g. "\n--certificate" after a
    # backslash continuation).
    stray: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def program(self) -> str | None:
        return self.argv[0] if self.argv else None

    @property
    def is_signing_helper(self) -> bool:
        """Whether this runs IAM Roles Anywhere's ``aws_signing_helper credential-process``."""
        if not self.argv:
            return False
        return "credential-process" in self.argv[1:2] or Path(self.argv[0]).name.startswith(
            SIGNING_HELPER
        )

    @property
    def continued_lines(self) -> bool:
        """Backslash continuations: botocore passes the backslash-newline on to the helper."""
        return "\\\n" in self.raw


def profile_credential_process(
    profile: str | None, environ: Mapping[str, str]
) -> CredentialProcess | None:
    """The ``credential_process`` of the profile in effect, if it has one."""
    name, _ = profile_in_effect(profile, environ)
    raw = read_config(config_path(environ)).profiles.get(name, {}).get("credential_process")
    return parse_credential_process(raw) if raw else None


def parse_credential_process(raw: str) -> CredentialProcess:
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:
        return CredentialProcess(raw=raw, problem=f"it cannot be split into words ({exc})")
    if not argv:
        return CredentialProcess(raw=raw, problem="it is empty")
    options: dict[str, str] = {}
    stray: list[str] = []
    # The flags as meant, so that the files they name can be checked all the same.
    meant = tuple(shlex.split(raw.replace("\\\n", " "))) if "\\\n" in raw else argv
    words = iter(meant[2:] if meant[1:2] == ("credential-process",) else meant[1:])
    for word in words:
        flag, equals, value = word.partition("=")
        if not flag.startswith("--"):
            stray.append(word)
        elif equals:
            options[flag] = value
        elif flag in _VALUED_FLAGS:
            options[flag] = next(words, "")
    return CredentialProcess(raw=raw, argv=argv, options=options, stray=tuple(stray))


# -- the program it runs ---------------------------------------------------------------------

# ELF e_machine → the name `uname -m` prints for it.
_ELF_MACHINES = {
    3: "i386",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390x",
    40: "arm",
    62: "x86_64",
    183: "aarch64",
    243: "riscv64",
}
_SAME_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "i686": "i386", "armv7l": "arm"}
# The download path of aws_signing_helper per architecture (its case matters).
_DOWNLOAD_ARCH = {"x86_64": "X86_64", "aarch64": "Aarch64"}


def host_machine() -> str:
    """``uname -m``, in the names ELF headers are compared with."""
    machine = platform.machine().lower()
    return _SAME_MACHINE.get(machine, machine)


@dataclass(frozen=True)
class ProgramFinding:
    """What a ``credential_process`` program file is; if it cannot run: why, and the fix."""

    path: str
    description: str
    problem: str | None = None
    fix: str = ""
    # What the system answers when asked to run it (the strerror botocore passes on).
    error: str = ""

    @property
    def runnable(self) -> bool:
        return self.problem is None


_ENOENT = "No such file or directory"
_EACCES = "Permission denied"
_ENOEXEC = "Exec format error"


def resolve_program(program: str, environ: Mapping[str, str]) -> str:
    """Where the OS finds ``program``: a path as given, a bare name on ``PATH``."""
    if "/" in program:
        return program
    for directory in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate):
            return candidate
    return program


def inspect_program(program: str, environ: Mapping[str, str]) -> ProgramFinding:
    """Whether ``program`` can be executed here, read from the file itself (never run)."""
    path = resolve_program(program, environ)
    reinstall = _reinstall_fix(path) if Path(path).name.startswith(SIGNING_HELPER) else ""
    if program.startswith("~") or "$" in program:
        return ProgramFinding(
            path,
            "a path the SDK does not expand",
            f"the SDK runs credential_process without a shell, so {program.split('/')[0]} "
            "is not expanded and the file is not found",
            "write the absolute path (e.g. /usr/local/bin/aws_signing_helper) in "
            "credential_process",
            _ENOENT,
        )
    if "/" not in path:
        return ProgramFinding(
            path,
            "not found",
            f"no file named {path} is in any PATH directory (not found)",
            "write the absolute path of the helper in credential_process"
            + (f", or install it: {reinstall}" if reinstall else ""),
            _ENOENT,
        )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return ProgramFinding(
            path,
            "not found",
            "there is no such file (not found)",
            (f"install it there: {reinstall}" if reinstall else "install the helper there")
            + "; or correct the path in credential_process",
            _ENOENT,
        )
    except OSError as exc:
        return ProgramFinding(
            path,
            "unreachable",
            f"it cannot be examined ({exc.strerror})",
            "check the permissions of the directories above it",
            exc.strerror or "",
        )
    if stat.S_ISDIR(info.st_mode):
        return ProgramFinding(
            path,
            "a directory",
            "it is a directory, not a program",
            "point credential_process at the helper file itself",
            _EACCES,
        )
    head: bytes | None
    try:
        with open(path, "rb") as file:
            head = file.read(512)
    except OSError as exc:
        # Executing needs only the x bit: what an unreadable file is, we cannot tell.
        head, description = None, f"a file this user cannot read ({exc.strerror})"
    else:
        description = _describe(head)
    if not info.st_mode & 0o111 or not os.access(path, os.X_OK):
        return ProgramFinding(
            path,
            description,
            f"it is not executable (mode {stat.S_IMODE(info.st_mode):04o})",
            f"`sudo chmod 755 {path}`",
            _EACCES,
        )
    if head is None:
        return ProgramFinding(path, description)
    return _judge_content(path, head, description, reinstall)


def _judge_content(path: str, head: bytes, description: str, reinstall: str) -> ProgramFinding:
    fix = reinstall or "replace it with the real helper program"
    if head.startswith(b"\x7fELF"):
        machine = _elf_machine(head)
        here = host_machine()
        if machine is not None and machine != here:
            return ProgramFinding(
                path,
                description,
                f"it is built for {machine}, but this machine is {here} (`uname -m`)",
                f"download the {here} build: {reinstall}" if reinstall else f"get the {here} build",
                _ENOEXEC,
            )
        return ProgramFinding(path, description)
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        interpreter = words[0].decode(errors="replace") if words else ""
        if not interpreter or not os.path.exists(interpreter):
            return ProgramFinding(
                path,
                description,
                f"its interpreter {interpreter or '(none)'} does not exist (not found)",
                f"install {interpreter}, or correct the #! line of {path}",
                _ENOENT if interpreter else _ENOEXEC,
            )
        return ProgramFinding(path, description)
    return ProgramFinding(
        path,
        description,
        f"it is not an ELF executable but {description}",
        fix,
        _ENOEXEC,
    )


def _elf_machine(head: bytes) -> str | None:
    if len(head) < 20:
        return None
    number = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _ELF_MACHINES.get(number, f"e_machine {number}")


_S3_CODE = re.compile(rb"<Code>([A-Za-z]+)</Code>")


def _describe(head: bytes) -> str:
    if head.startswith(b"\x7fELF"):
        return f"an ELF executable for {_elf_machine(head) or 'an unknown machine'}"
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip().decode(errors="replace")
        return f"a script run by {line}"
    text = head.lstrip()
    if text.startswith(b"<?xml") or text.startswith(b"<Error"):
        code = _S3_CODE.search(head)
        said = f", {code[1].decode()}" if code else ""
        return f"an XML document (an error page from the download server{said})"
    if text[:15].lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page (an error page from the download server)"
    if not head:
        return "an empty file (an interrupted download?)"
    if head.startswith((b"PK\x03\x04", b"\x1f\x8b")):
        return "an archive (zip or gzip), not the program inside it"
    return "a file of unknown content"


def _reinstall_fix(path: str) -> str:
    arch = _DOWNLOAD_ARCH.get(host_machine(), "X86_64 or Aarch64")
    return (
        f"download aws_signing_helper again with the exact case of the path "
        f"(…/releases/VERSION/{arch}/Linux/Amzn2023/aws_signing_helper, step 6 of {GUIDE}), "
        f"check it with `file` (it must say ELF), and `sudo install -m 755` it as {path}"
    )


# -- the helper's own errors -------------------------------------------------------------------


@dataclass(frozen=True)
class HelperDiagnosis:
    """A known failure of ``aws_signing_helper``: what it means and how to fix it."""

    cause: str
    fix: str


def explain_helper_error(
    stderr: str, process: CredentialProcess | None = None
) -> HelperDiagnosis | None:
    """The cause and fix of a known Roles Anywhere / helper error message, or None."""
    said = stderr.lower()
    options = process.options if process else {}
    ta_id, ta_region = _arn_id_and_region(options.get("--trust-anchor-arn"), "TA_ID")
    profile_id, profile_region = _arn_id_and_region(options.get("--profile-arn"), "PROFILE_ID")
    if "trust anchor" in said and "disabled" in said:
        return HelperDiagnosis(
            "the trust anchor is disabled (a new one is created disabled)",
            f"`aws rolesanywhere enable-trust-anchor --trust-anchor-id {ta_id} "
            f"--region {ta_region}`",
        )
    if "profile" in said and "disabled" in said:
        return HelperDiagnosis(
            "the Roles Anywhere profile is disabled (a new one is created disabled)",
            f"`aws rolesanywhere enable-profile --profile-id {profile_id} "
            f"--region {profile_region}`",
        )
    if "insufficient certificate" in said:
        return HelperDiagnosis(
            "the client certificate lacks keyUsage digitalSignature or extendedKeyUsage "
            "clientAuth (or is a CA certificate)",
            f"reissue it with the extension file of step 2 of {GUIDE} (basicConstraints "
            "CA:FALSE, keyUsage digitalSignature, extendedKeyUsage clientAuth)",
        )
    if "untrusted" in said:
        return HelperDiagnosis(
            "Roles Anywhere cannot chain the client certificate to the trust anchor's CA",
            "issue the certificate with the CA the trust anchor was created from, and check "
            "that --trust-anchor-arn names that trust anchor (`agentic-vault doctor --ca "
            "ca.pem` checks the chain)",
        )
    if "expired" in said and "certificate" in said:
        return HelperDiagnosis(
            "the client certificate has expired",
            f"issue a new one (Yearly renewal in {GUIDE})",
        )
    if "unable to parse private key" in said:
        key = options.get("--private-key") or "KEY"
        return HelperDiagnosis(
            "the helper cannot read the --private-key file (unreadable by this user, e.g. "
            "root-owned with mode 400) or it is not a PEM private key",
            f"`sudo chmod 440 {key}` and `sudo chown root:GROUP {key}`, GROUP being the group "
            "of the user running agentic-vault; check that --private-key names client.key",
        )
    if "cert store signer" in said:
        return HelperDiagnosis(
            "no --certificate reached the helper: credential_process is split over several "
            "lines with backslashes, or lacks --certificate",
            "write credential_process on one line, without backslashes, with --certificate "
            "and --private-key",
        )
    if "accessdenied" in said or "access denied" in said:
        return HelperDiagnosis(
            "Roles Anywhere or STS refused the session: the role's trust policy does not "
            "match (trust anchor ARN, account, certificate CN), or the Roles Anywhere "
            "profile does not list the role",
            f"compare the role's trust policy and the profile's role ARNs with step 4 of {GUIDE}",
        )
    if "validationexception" in said:
        return HelperDiagnosis(
            "Roles Anywhere refused a malformed request, usually an ARN",
            "copy the trust anchor, profile and role ARNs again from step 4",
        )
    if any(word in said for word in ("no such host", "dial tcp", "i/o timeout", "tls:")):
        return HelperDiagnosis(
            "the helper cannot reach IAM Roles Anywhere",
            f"allow HTTPS to rolesanywhere.{ta_region}.amazonaws.com (and through any proxy)",
        )
    if "no such file or directory" in said:
        return HelperDiagnosis(
            "a file named in credential_process does not exist",
            "check the --certificate and --private-key paths",
        )
    return None


_ARN_PARTS = re.compile(r"arn:[^:]+:rolesanywhere:(?P<region>[^:]*):[^:]*:[a-z-]+/(?P<id>.+)")


def _arn_id_and_region(arn: str | None, placeholder: str) -> tuple[str, str]:
    match = _ARN_PARTS.fullmatch(arn or "")
    if not match:
        return placeholder, "REGION"
    region = match["region"] if is_region_name(match["region"]) else "REGION"
    return match["id"], region
