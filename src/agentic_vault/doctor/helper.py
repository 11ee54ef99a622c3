"""The ``credential_process`` helper: the program file, then one run of it.

    helper       the file exists, is executable, and is an ELF for this machine (or a
                 script whose interpreter exists), not an XML error page
    helper-run   run once, as the SDK runs it: credential JSON that is well formed and
                 not expired, or an error that is classified (trust anchor disabled,
                 Untrusted certificate, unable to parse private key, ...)

The credentials it prints are parsed to check their shape and expiry, then dropped:
no value is ever printed or stored.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Mapping
from typing import Any

from .._aws_config import (
    CredentialProcess,
    ProgramFinding,
    explain_helper_error,
    inspect_program,
)
from .report import Check, fail, ok, skipped

RUN_TIMEOUT = 30.0
# The SDK renews credentials that expire within 15 minutes before each use.
_REFRESH_WINDOW = dt.timedelta(minutes=15)


def check_helper_program(
    process: CredentialProcess | None, environ: Mapping[str, str]
) -> tuple[Check, ProgramFinding | None]:
    if process is None or process.program is None:
        return skipped("helper", "no credential_process helper to check"), None
    finding = inspect_program(process.program, environ)
    if finding.runnable:
        return ok("helper", f"{finding.path}: {finding.description}"), finding
    return program_failure("helper", finding), finding


def program_failure(name: str, finding: ProgramFinding) -> Check:
    fails_with = f"; running it fails with {finding.error}" if finding.error else ""
    return fail(name, f"{finding.path} cannot be run: {finding.problem}{fails_with}", finding.fix)


def check_helper_run(
    process: CredentialProcess | None,
    finding: ProgramFinding | None,
    environ: Mapping[str, str],
) -> Check:
    if process is None or finding is None:
        return skipped("helper-run", "no credential_process helper to run")
    if not finding.runnable:
        return skipped("helper-run", "the helper cannot be run (see helper)")
    try:
        done = subprocess.run(
            list(process.argv),
            capture_output=True,
            timeout=RUN_TIMEOUT,
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return fail(
            "helper-run",
            f"{finding.path} gave no answer within {RUN_TIMEOUT:g} s (the SDK would wait as "
            "long, and the server abandons the call)",
            "run the credential_process by hand with --debug added; check that HTTPS to "
            "rolesanywhere.REGION.amazonaws.com gets through (proxy, firewall, DNS)",
        )
    except OSError as exc:
        return fail(
            "helper-run",
            f"{finding.path} cannot be run ({exc.strerror})",
            "see the helper check; replace the file with a working helper",
        )
    stderr = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0:
        return _failed_run(process, finding, done.returncode, stderr)
    return _judge_output(finding, done.stdout)


def _failed_run(
    process: CredentialProcess, finding: ProgramFinding, status: int, stderr: str
) -> Check:
    said = _clip(stderr) or "(nothing on stderr)"
    diagnosis = explain_helper_error(stderr, process)
    if diagnosis is None:
        return fail(
            "helper-run",
            f"{finding.path} failed with exit status {status}: {said}",
            "run the profile's credential_process by hand with --debug added, and compare "
            "its paths and ARNs with the checks above",
        )
    return fail(
        "helper-run",
        f"{finding.path} failed with exit status {status}: {said}; that means {diagnosis.cause}",
        diagnosis.fix,
    )


def _judge_output(finding: ProgramFinding, stdout: bytes) -> Check:
    """Well-formed, unexpired credential JSON? Its values are never shown."""
    shape = (
        'one JSON object {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken", '
        '"Expiration"}'
    )
    try:
        parsed: Any = json.loads(stdout.decode())
    except (UnicodeDecodeError, ValueError):
        return fail(
            "helper-run",
            f"{finding.path} exited 0 but did not print JSON; the SDK needs {shape}",
            "point credential_process at the helper's credential-process command",
        )
    missing = [
        field
        for field in ("AccessKeyId", "SecretAccessKey")
        if not isinstance(parsed, dict) or not isinstance(parsed.get(field), str)
    ]
    if not isinstance(parsed, dict) or parsed.get("Version") != 1 or missing:
        return fail(
            "helper-run",
            f"{finding.path} printed JSON that is not credentials (Version 1 with "
            "AccessKeyId and SecretAccessKey)",
            f"make it print {shape}",
        )
    expiration = parsed.get("Expiration")
    if expiration is None:
        return ok("helper-run", "the helper returned credentials (without an expiry)")
    try:
        expires = dt.datetime.fromisoformat(str(expiration))
    except ValueError:
        return fail(
            "helper-run",
            "the helper's Expiration is not an ISO 8601 time",
            f"make it print {shape}",
        )
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    left = expires - dt.datetime.now(dt.UTC)
    if left <= dt.timedelta(0):
        return fail(
            "helper-run",
            f"the helper returned credentials that expired at {expires:%Y-%m-%d %H:%M} UTC",
            "check the system clock (`timedatectl`); Roles Anywhere issues credentials for "
            "the profile's session duration from now",
        )
    minutes = int(left.total_seconds() // 60)
    note = (
        "; the SDK renews them before every call (the session is shorter than its 15-minute "
        "refresh window)"
        if left < _REFRESH_WINDOW
        else ""
    )
    return ok(
        "helper-run",
        f"the helper returned temporary credentials valid until {expires:%Y-%m-%d %H:%M} UTC "
        f"({minutes} min){note}",
    )


def _clip(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
