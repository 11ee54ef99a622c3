"""The server's own settings, resolved exactly as ``agentic-vault-mcp`` resolves them.

Flags first, then ``VAULT_KEY_ID``, ``VAULT_REGION``/``AWS_REGION``, ``AWS_PROFILE``
and ``VAULT_EXPECTED_ADDRESS``, through the CLI's own ``resolve_signer_config``. Where
the server would exit 2, doctor reports a failed check and goes on with the rest.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .report import Check, fail, ok

if TYPE_CHECKING:
    from .._config import SignerConfig
    from . import DoctorOptions


def check_settings(
    options: DoctorOptions, environ: Mapping[str, str]
) -> tuple[Check, SignerConfig | None]:
    from .._cli import ConfigProblem, resolve_signer_config

    flags = argparse.Namespace(
        key_id=options.key_id,
        region=options.region,
        profile=options.profile,
        expected_address=options.expected_address,
        kms_timeout=options.kms_timeout,
    )
    try:
        config: SignerConfig = resolve_signer_config(flags, environ)
    except ConfigProblem as exc:
        problem = f"agentic-vault-mcp would refuse to start: {exc}"
        return fail("settings", problem, _fix_for(str(exc))), None
    parts = [f"key {config.key_id} (from {_source(options.key_id, '--key-id', 'VAULT_KEY_ID')})"]
    if config.profile:
        parts.append(f"profile {config.profile} (from --profile)")
    if config.expected_address:
        parts.append(
            f"expected address {config.expected_address} (from "
            f"{_source(options.expected_address, '--expected-address', 'VAULT_EXPECTED_ADDRESS')})"
        )
    return ok("settings", ", ".join(parts)), config


def _source(flag_value: str | None, flag: str, variable: str) -> str:
    return flag if flag_value else variable


def _fix_for(problem: str) -> str:
    if problem.startswith("no KMS key given"):
        return "pass the key the server will use, as --key-id or VAULT_KEY_ID"
    flag = problem.split(":", 1)[0]
    return f"correct {flag} (agentic-vault-mcp refuses to start with this value)"
