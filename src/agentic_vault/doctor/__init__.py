"""``agentic-vault doctor``: check an operator's AWS setup, name each mistake and its fix.

    flags + env ──settings──────▶ SignerConfig, resolved as agentic-vault-mcp resolves it
    AWS config  ──aws_config────▶ config-file, profile, region, credential-process
    credential_process ─helper──▶ helper (the program file)
                 ──certificates─▶ certificate, extensions, expiry, key, CA, ARNs
                 ──helper───────▶ helper-run (one run, its error classified)
    the AWS SDK ──live──────────▶ credentials, caller-identity, kms-key, address,
                                  expected-address, sign-test
    Report ──output─────────────▶ a checklist or --json; exit 0 when nothing failed

Every check is always reported, in this order: one that does not apply, or whose
input an earlier failure took away, says ``skipped:`` and why. Nothing the
credential helper returns is printed or kept.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .report import Check, Report

__all__ = [
    "Check",
    "DoctorOptions",
    "Report",
    "add_arguments",
    "add_command",
    "main",
    "run_doctor",
]


class DoctorOptions(BaseModel):
    """The command line: the server's flags (validated by the settings check), and doctor's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str | None = None
    region: str | None = None
    profile: str | None = None
    expected_address: str | None = None
    kms_timeout: float | None = None
    ca: Path | None = None
    sign_test: bool = False
    # Where --sign-test's signature is judged and recorded, as the server would.
    policy: Path | None = None
    state_dir: str | None = None
    state_url: str | None = None


def run_doctor(options: DoctorOptions, environ: Mapping[str, str]) -> Report:
    """Every check, top to bottom. The live checks use boto3, which reads ``os.environ``."""
    from .aws_config import check_aws_config
    from .certificates import check_certificates
    from .helper import check_helper_program, check_helper_run
    from .live import SignTest, check_live
    from .settings import check_settings

    settings_check, settings = check_settings(options, environ)
    config_checks, setup = check_aws_config(options, settings, environ)
    program_check, program = check_helper_program(setup.process, environ)
    certificate_checks = check_certificates(setup.process, options.ca, setup.profile_region)
    run_check = check_helper_run(setup.process, program, environ)
    blocker = setup.blocker
    if blocker is None and "fail" in (program_check.status, run_check.status):
        blocker = "the credential helper fails (see helper and helper-run)"
    sign_test = None
    if options.sign_test:
        sign_test = SignTest.resolve(options.policy, options.state_dir, options.state_url, environ)
    live_checks = check_live(
        settings, options.profile, setup.region, setup.process, blocker, sign_test
    )
    return Report.of(
        [
            settings_check,
            *config_checks,
            program_check,
            *certificate_checks,
            run_check,
            *live_checks,
        ]
    )


def add_command(subparsers: Any) -> None:
    """``agentic-vault doctor`` on the command line."""
    parser = subparsers.add_parser(
        "doctor",
        help="check the AWS setup: config, profile, credential helper, certificates, key",
        description="Check everything agentic-vault-mcp needs, with the same flags and "
        "environment: exit 0 when nothing failed, 1 otherwise. Every problem comes with its "
        "fix.",
    )
    add_arguments(parser)
    parser.set_defaults(run=main)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``agentic-vault doctor``'s flags: the server's, with the same environment fallbacks."""
    from .._cli import add_signer_options
    from ..commands._state import add_state_options

    add_signer_options(parser)
    parser.add_argument(
        "--ca",
        metavar="FILE",
        type=Path,
        help="the CA certificate of the Roles Anywhere trust anchor: check it and that it "
        "signed the client certificate",
    )
    parser.add_argument(
        "--sign-test",
        action="store_true",
        help="also sign a test message the way the server signs (through the policy, on the "
        "audit trail as doctor:USER) and verify the signature",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="the server's policy, which --sign-test's message must pass [env: VAULT_POLICY]",
    )
    add_state_options(parser)
    parser.add_argument(
        "--json", action="store_true", help='print {"ok", "checks": [...]} instead of a checklist'
    )


def main(args: argparse.Namespace) -> int:
    """Run doctor for parsed ``args``; the exit status: 0 when nothing failed, else 1."""
    from .output import render_checklist, render_json

    options = DoctorOptions(
        key_id=args.key_id,
        region=args.region,
        profile=args.profile,
        expected_address=args.expected_address,
        kms_timeout=args.kms_timeout,
        ca=args.ca,
        sign_test=args.sign_test,
        policy=args.policy,
        state_dir=args.state_dir,
        state_url=args.state_url,
    )
    # The report says everything; log lines from the SDK or the signer would only repeat it.
    logging.disable(logging.CRITICAL)
    report = run_doctor(options, os.environ)
    print(render_json(report) if args.json else render_checklist(report), flush=True)
    return 0 if report.ok else 1
