"""Command lines: ``agentic-vault-mcp`` (the MCP server) and ``agentic-vault`` (tools).

Start-up stays light: the MCP SDK loads only once the configuration is known
to be good, boto3 and eth-account on the first tool call. A configuration
mistake is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from ._logging import LOG_LEVELS
from ._version import __version__

EXIT_USAGE = 2

MCP_DESCRIPTION = """\
The agentic-vault MCP server: Ethereum signatures for AI agents from a key that never
leaves AWS KMS. Speaks MCP over stdio (stdout carries protocol frames only; logs are JSON
lines on stderr). Credentials come from the AWS SDK's default chain (environment,
AWS_PROFILE/--profile, SSO, credential_process such as IAM Roles Anywhere, instance and
container roles); AWS_ENDPOINT_URL_KMS points it at another KMS endpoint."""


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)", prog=self.prog)


def fail(message: str, prog: str = "agentic-vault-mcp") -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USAGE)


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` set to a non-empty value."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def mcp_parser() -> argparse.ArgumentParser:
    from ._config import DEFAULT_KMS_TIMEOUT

    parser = _OneLineParser(
        prog="agentic-vault-mcp",
        description=MCP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--key-id",
        metavar="ID",
        help="KMS key id, key ARN, alias name (alias/x) or alias ARN [env: VAULT_KEY_ID]",
    )
    parser.add_argument(
        "--region",
        metavar="R",
        help="KMS region [env: VAULT_REGION, then AWS_REGION, AWS_DEFAULT_REGION, the "
        "profile's region]",
    )
    parser.add_argument(
        "--profile", metavar="P", help="named profile from ~/.aws/config [env: AWS_PROFILE]"
    )
    parser.add_argument(
        "--expected-address",
        metavar="0x…",
        help="refuse to sign unless the key's address is exactly this "
        "[env: VAULT_EXPECTED_ADDRESS]",
    )
    parser.add_argument(
        "--kms-timeout",
        metavar="SECONDS",
        type=float,
        help="longest time one KMS operation may take, retries included "
        f"(default {DEFAULT_KMS_TIMEOUT:g}) [env: VAULT_KMS_TIMEOUT]",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="diagnostic log level (default info; the per-call audit lines are always "
        "written) [env: VAULT_LOG_LEVEL]",
    )
    parser.add_argument("--version", action="version", version=f"agentic-vault {__version__}")
    return parser


_FLAG_OF = {
    "key_id": "--key-id/VAULT_KEY_ID",
    "region": "--region/VAULT_REGION",
    "profile": "--profile/AWS_PROFILE",
    "expected_address": "--expected-address/VAULT_EXPECTED_ADDRESS",
    "kms_timeout": "--kms-timeout/VAULT_KMS_TIMEOUT",
}


class ConfigProblem(ValueError):
    """A configuration mistake, worded as one line that names the flag and the fix."""


def signer_config_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    """Flags first, then the environment; a bad value ends the program (exit 2)."""
    from ._aws_config import region_problem

    try:
        config = resolve_signer_config(args, environ)
        # A region the SDK would take from AWS_DEFAULT_REGION or the profile is refused
        # like a bad --region, not discovered at the first KMS call.
        problem = region_problem(config.region, config.profile, environ)
    except ConfigProblem as exc:
        fail(str(exc))
    if problem:
        fail(problem)
    return config


def resolve_signer_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    """The ``SignerConfig`` of the flags and environment, or ``ConfigProblem`` (doctor uses it)."""
    from pydantic import ValidationError

    from ._config import SignerConfig

    key_id = args.key_id or _env(environ, "VAULT_KEY_ID")
    if not key_id:
        raise ConfigProblem(
            "no KMS key given: pass --key-id ID or set VAULT_KEY_ID (a key id, key ARN, "
            "alias/NAME or alias ARN)"
        )
    fields: dict[str, Any] = {"key_id": key_id}
    explicit_region = args.region or _env(environ, "VAULT_REGION")
    if explicit_region:
        fields["region"] = explicit_region
    if args.profile:
        fields["profile"] = args.profile
    expected = args.expected_address or _env(environ, "VAULT_EXPECTED_ADDRESS")
    if expected:
        fields["expected_address"] = expected
    timeout = (
        args.kms_timeout if args.kms_timeout is not None else _env(environ, "VAULT_KMS_TIMEOUT")
    )
    if timeout is not None:
        fields["kms_timeout"] = timeout
    try:
        config = SignerConfig(**fields)
        if config.region is None:
            # A key ARN names its region; otherwise AWS_REGION, which boto3 ignores.
            region = config.key_arn_region or _env(environ, "AWS_REGION")
            if region:
                config = SignerConfig(**fields, region=region)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        name = str(problem["loc"][0]) if problem["loc"] else ""
        message = problem["msg"].removeprefix("Value error, ")
        flag = _FLAG_OF.get(name, "configuration")
        raise ConfigProblem(f"{flag}: {message}") from None
    return config


def mcp_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``agentic-vault-mcp``."""
    # Until the server's own handlers are installed, a stop request just ends the process.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_quietly)
    args = mcp_parser().parse_args(argv)
    environ = os.environ
    config = signer_config_from(args, environ)
    level = args.log_level or _env(environ, "VAULT_LOG_LEVEL") or "info"
    if level not in LOG_LEVELS:
        fail(f"VAULT_LOG_LEVEL: {level!r} is not one of debug, info, warning, error")

    from ._logging import configure_logging
    from ._serve import serve_stdio

    configure_logging(level)
    raise SystemExit(serve_stdio(config))


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``agentic-vault``: operator and development tools."""
    parser = _OneLineParser(
        prog="agentic-vault",
        description="agentic-vault operator and development tools. The MCP server is "
        "agentic-vault-mcp.",
    )
    parser.add_argument("--version", action="version", version=f"agentic-vault {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    local = commands.add_parser(
        "local-kms",
        help="run a local KMS emulator with a signing key (development only)",
        description="Serve a KMS-compatible endpoint on 127.0.0.1 with an ECC_SECG_P256K1 "
        "key (alias/agentic-vault-dev) and print the lines that point agentic-vault-mcp at "
        "it. FOR DEVELOPMENT ONLY: keys live unprotected in memory and vanish on exit. "
        "Needs the `local` extra: pip install 'agentic-vault[local]'.",
    )
    from ._local_kms import DEFAULT_PORT

    local.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    local.add_argument(
        "--sign-latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="add this much latency to every Sign, to imitate a remote KMS (default 0)",
    )
    from . import doctor

    doctor.add_arguments(
        commands.add_parser(
            "doctor",
            help="check the AWS setup: config, profile, credential helper, certificates, key",
            description="Check everything agentic-vault-mcp needs, with the same flags and "
            "environment: exit 0 when nothing failed, 1 otherwise. Every problem comes "
            "with its fix.",
        )
    )
    args = parser.parse_args(argv)
    if args.command == "doctor":
        raise SystemExit(doctor.main(args))
    if args.command != "local-kms":
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    from ._local_kms import run_local_kms

    raise SystemExit(run_local_kms(args.port, args.sign_latency_ms / 1000))
