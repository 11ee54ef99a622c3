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
lines on stderr), or with --transport http over Streamable HTTP at /mcp, every request
carrying a bearer token from `agentic-vault token create`. Credentials come from the AWS
SDK's default chain (environment, AWS_PROFILE/--profile, SSO, credential_process such as
IAM Roles Anywhere, instance and container roles); AWS_ENDPOINT_URL_KMS points it at
another KMS endpoint."""


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
    parser = _OneLineParser(
        prog="agentic-vault-mcp",
        description=MCP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_signer_options(parser)
    add_vault_options(parser)
    add_http_options(parser)
    add_log_option(parser)
    parser.add_argument("--version", action="version", version=f"agentic-vault {__version__}")
    return parser


def add_http_options(parser: argparse.ArgumentParser) -> None:
    """The transport, and where and how the HTTP one listens (see docs/deployment.md)."""
    from .transports.listen import DEFAULT_LISTEN

    parser.add_argument(
        "--transport",
        choices=("stdio", "http"),
        help="stdio (default): the MCP client starts this server; http: serve Streamable "
        "HTTP at /mcp for clients with a token [env: VAULT_TRANSPORT]",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on with --transport http (default {DEFAULT_LISTEN}); "
        "anything but loopback needs --tls-cert and --tls-key [env: VAULT_LISTEN]",
    )
    parser.add_argument(
        "--tls-cert", metavar="FILE", help="PEM certificate chain for HTTPS [env: VAULT_TLS_CERT]"
    )
    parser.add_argument(
        "--tls-key", metavar="FILE", help="PEM private key for HTTPS [env: VAULT_TLS_KEY]"
    )
    parser.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        help="a name clients reach this server by, accepted in the Host header (repeat for "
        "several; the listen address and loopback names are always accepted) "
        "[env: VAULT_ALLOWED_HOSTS, comma-separated]",
    )
    parser.add_argument(
        "--allowed-origin",
        metavar="ORIGIN",
        action="append",
        help="a browser origin allowed to call this server, e.g. https://app.example.org "
        "(repeat for several) [env: VAULT_ALLOWED_ORIGINS, comma-separated]",
    )
    parser.add_argument(
        "--stateless",
        action="store_true",
        default=None,
        help="no MCP sessions: every request stands alone, so replicas behind a load "
        "balancer need no session affinity (elicitation then needs 2026-07-28 clients) "
        "[env: VAULT_HTTP_STATELESS=1]",
    )


def add_signer_options(parser: argparse.ArgumentParser) -> None:
    """Which key, where, and how long KMS may take: the server's and the shell's flags."""
    from ._config import DEFAULT_KMS_TIMEOUT

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


def add_vault_options(parser: argparse.ArgumentParser) -> None:
    """The policy, the store and approvals: everything around the signer."""
    from .commands._state import add_state_options

    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="the policy every signature must pass (TOML; see docs/policy.md). Without "
        "one, every well-formed request is signed [env: VAULT_POLICY]",
    )
    add_state_options(parser)
    parser.add_argument(
        "--approval-ttl",
        metavar="SECONDS",
        type=float,
        help="how long a request waits for a person's approval (default 900) "
        "[env: VAULT_APPROVAL_TTL]",
    )


def add_log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="diagnostic log level (default info; the per-call audit lines are always "
        "written) [env: VAULT_LOG_LEVEL]",
    )


_FLAG_OF = {
    "key_id": "--key-id/VAULT_KEY_ID",
    "region": "--region/VAULT_REGION",
    "profile": "--profile/AWS_PROFILE",
    "expected_address": "--expected-address/VAULT_EXPECTED_ADDRESS",
    "kms_timeout": "--kms-timeout/VAULT_KMS_TIMEOUT",
}


class ConfigProblem(ValueError):
    """A configuration mistake, worded as one line that names the flag and the fix."""


def signer_config_from(
    args: argparse.Namespace, environ: Mapping[str, str], prog: str = "agentic-vault-mcp"
) -> Any:
    """Flags first, then the environment; a bad value ends the program (exit 2)."""
    from ._aws_config import region_problem

    try:
        config = resolve_signer_config(args, environ)
        # A region the SDK would take from AWS_DEFAULT_REGION or the profile is refused
        # like a bad --region, not discovered at the first KMS call.
        problem = region_problem(config.region, config.profile, environ)
    except ConfigProblem as exc:
        fail(str(exc), prog)
    if problem:
        fail(problem, prog)
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


def settings_from(
    args: argparse.Namespace, environ: Mapping[str, str], prog: str = "agentic-vault-mcp"
) -> Any:
    """The vault's settings from flags, then the environment; bad ones end the program (exit 2).

    The policy file is loaded here too, so that a bad one is one line and exit 2.
    """
    from pydantic import ValidationError

    from ._settings import VaultSettings
    from .commands._state import state_location

    fields: dict[str, Any] = {"signer": signer_config_from(args, environ, prog)}
    policy = args.policy or _env(environ, "VAULT_POLICY")
    if policy:
        fields["policy"] = policy
    fields["state_dir"], fields["state_url"] = state_location(args, environ)
    ttl = (
        args.approval_ttl if args.approval_ttl is not None else _env(environ, "VAULT_APPROVAL_TTL")
    )
    if ttl is not None:
        fields["approval_ttl"] = ttl
    try:
        settings = VaultSettings(**fields)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        name = str(problem["loc"][0]) if problem["loc"] else "configuration"
        flag = {"approval_ttl": "--approval-ttl/VAULT_APPROVAL_TTL"}.get(name, name)
        fail(f"{flag}: {problem['msg'].removeprefix('Value error, ')}", prog)
    if settings.policy is not None:
        from .policy import PolicyFileError, load_policy_file

        try:
            load_policy_file(settings.policy)
        except PolicyFileError as exc:
            fail(f"--policy/VAULT_POLICY: {exc}", prog)
    return settings


_HTTP_FLAGS = ("listen", "tls_cert", "tls_key", "allowed_host", "allowed_origin", "stateless")
_HTTP_FLAG_OF = {
    "host": "--listen/VAULT_LISTEN",
    "port": "--listen/VAULT_LISTEN",
    "listen": "--listen/VAULT_LISTEN",
    "tls": "--tls-cert/--tls-key",
    "tls_cert": "--tls-cert/VAULT_TLS_CERT",
    "tls_key": "--tls-key/VAULT_TLS_KEY",
    "allowed_hosts": "--allowed-host/VAULT_ALLOWED_HOSTS",
    "allowed_origins": "--allowed-origin/VAULT_ALLOWED_ORIGINS",
}


def http_settings_from(
    args: argparse.Namespace, environ: Mapping[str, str], prog: str = "agentic-vault-mcp"
) -> Any:
    """The HTTP transport's settings, or None for stdio; a bad value ends the program (exit 2)."""
    from pydantic import ValidationError

    from .transports.listen import DEFAULT_LISTEN, HttpSettings, parse_listen

    transport = args.transport or _env(environ, "VAULT_TRANSPORT") or "stdio"
    if transport not in ("stdio", "http"):
        fail(f"VAULT_TRANSPORT: {transport!r} is not stdio or http", prog)
    if transport == "stdio":
        given = [name for name in _HTTP_FLAGS if getattr(args, name, None)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            fail(f"{flag} is for the HTTP transport: add --transport http", prog)
        return None
    listen = args.listen or _env(environ, "VAULT_LISTEN") or DEFAULT_LISTEN
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        fail(f"--listen/VAULT_LISTEN: {exc}", prog)
    stateless = args.stateless
    if stateless is None:
        flag = (_env(environ, "VAULT_HTTP_STATELESS") or "0").lower()
        if flag not in ("0", "1", "true", "false", "yes", "no"):
            fail(f"VAULT_HTTP_STATELESS: {flag!r} is not 1 or 0", prog)
        stateless = flag in ("1", "true", "yes")
    try:
        return HttpSettings(
            host=host,
            port=port,
            tls_cert=args.tls_cert or _env(environ, "VAULT_TLS_CERT"),
            tls_key=args.tls_key or _env(environ, "VAULT_TLS_KEY"),
            allowed_hosts=tuple(args.allowed_host or _env_list(environ, "VAULT_ALLOWED_HOSTS")),
            allowed_origins=tuple(
                args.allowed_origin or _env_list(environ, "VAULT_ALLOWED_ORIGINS")
            ),
            stateless=stateless,
        )
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        message = problem["msg"].removeprefix("Value error, ")
        if problem["loc"]:
            name = str(problem["loc"][0])
        else:  # a rule across fields: its message starts with the field it is about
            name, _, message = message.partition(": ")
        fail(f"{_HTTP_FLAG_OF.get(name, name)}: {message}", prog)


def _env_list(environ: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in (_env(environ, name) or "").split(",") if item.strip()]


def log_level_from(args: argparse.Namespace, environ: Mapping[str, str], prog: str) -> str:
    level = getattr(args, "log_level", None) or _env(environ, "VAULT_LOG_LEVEL") or "info"
    if level not in LOG_LEVELS:
        fail(f"VAULT_LOG_LEVEL: {level!r} is not one of debug, info, warning, error", prog)
    return str(level)


def mcp_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``agentic-vault-mcp``."""
    # Until the server's own handlers are installed, a stop request just ends the process.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_quietly)
    args = mcp_parser().parse_args(argv)
    environ = os.environ
    settings = settings_from(args, environ)
    http = http_settings_from(args, environ)
    level = log_level_from(args, environ, "agentic-vault-mcp")

    from ._logging import configure_logging

    configure_logging(level)
    if http is not None:
        from .transports.http import serve_http

        raise SystemExit(serve_http(settings, http))
    from ._serve import serve_stdio

    raise SystemExit(serve_stdio(settings))


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``agentic-vault``: the operator's and developer's commands."""
    parser = _OneLineParser(
        prog="agentic-vault",
        description="agentic-vault's commands for operators: the tools from a shell, the "
        "audit trail, approvals, and a local KMS for development. The MCP server is "
        "agentic-vault-mcp.",
    )
    parser.add_argument("--version", action="version", version=f"agentic-vault {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import doctor, policy
    from .commands import approvals, audit, sign, tokens

    doctor.add_command(commands)
    sign.add_commands(commands)
    policy.add_commands(commands)
    audit.add_commands(commands)
    approvals.add_commands(commands)
    tokens.add_commands(commands)
    _add_local_kms(commands)
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    raise SystemExit(run(args))


def _add_local_kms(commands: Any) -> None:
    from ._local_kms import DEFAULT_PORT

    local = commands.add_parser(
        "local-kms",
        help="run a local KMS emulator with a signing key (development only)",
        description="Serve a KMS-compatible endpoint on 127.0.0.1 with an ECC_SECG_P256K1 "
        "key (alias/agentic-vault-dev) and print the lines that point agentic-vault-mcp at "
        "it. FOR DEVELOPMENT ONLY: keys live unprotected in memory and vanish on exit. "
        "Needs the `local` extra: pip install 'agentic-vault[local]'.",
    )
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

    def run(args: argparse.Namespace) -> int:
        from ._local_kms import run_local_kms

        return run_local_kms(args.port, args.sign_latency_ms / 1000)

    local.set_defaults(run=run)
