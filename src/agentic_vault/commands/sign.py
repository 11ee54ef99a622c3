"""The tools from a shell: ``address``, ``sign-transaction``, ``sign-typed-data``,
``sign-message``, ``health``.

    flags + env ─settings_from─▶ VaultSettings                  (a bad one: exit 2)
    FILE | stdin ─read_json────▶ the tool's argument ─▶ Subject  (bounded, strict JSON)
    open_vault ─▶ prepare (policy; a denial is recorded) ─▶ execute (records, kms:Sign)
    result ─▶ stdout, the tool's JSON         error ─▶ stderr ``code: sentence``, exit 1

Same flags, environment fallbacks, policy, store and audit trail as the server:
each command builds the vault from the same settings and walks the same
pipeline, so a signature made here passes the same guard and leaves the same
records, with client ``cli:USER``. A request that needs a person gets
``approval_required: ID: …``: approve it from another shell with
``agentic-vault approvals approve ID``, then run the same command again.

stderr is for the person at the shell: one ``code: sentence`` line on an error,
nothing on success. The server's JSON audit line goes there too only when a log
level is asked for (``--log-level`` / ``VAULT_LOG_LEVEL``); the durable trail has
its records either way. ``health`` exits 1 when the report is unhealthy, so that
``agentic-vault health || …`` works in a script; the report is printed all the same.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import InvalidInput, VaultError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .._settings import VaultSettings
    from .._vault import Call, Subject, Vault

PROG = "agentic-vault"
EXIT_OK, EXIT_ERROR = 0, 1
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# What the server reads of one request (transports.stdio.MAX_REQUEST_BYTES, not imported:
# that module loads the MCP SDK). The tools' own limits, checked by their parsers, are less.
MAX_INPUT_BYTES = 2 * 1024 * 1024

EXIT_STATUS = """\
exit status:
  0  the tool's JSON on stdout
  1  the tool refused or failed: `code: sentence` on stderr, nothing on stdout
     (approval_required: ID: … — once a person has run `agentic-vault approvals
     approve ID`, the same command signs, once)
  2  a usage or configuration error: one line on stderr
"""
HEALTH_EXIT_STATUS = """\
exit status:
  0  the report on stdout, status ok
  1  the report on stdout, status unhealthy: each problem (`code: sentence`) on stderr;
     or the check itself failed: `code: sentence` on stderr, nothing on stdout
  2  a usage or configuration error: one line on stderr
"""

Work = Callable[["Vault", "Call"], "BaseModel"]


# -- the command line ------------------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    from .._cli import add_signer_options, add_vault_options
    from .._logging import LOG_LEVELS

    def command(
        name: str,
        help_text: str,
        description: str,
        run: Callable[[argparse.Namespace], int],
        epilog: str = EXIT_STATUS,
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name,
            help=help_text,
            description=textwrap.fill(description, 80),
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_signer_options(parser)
        add_vault_options(parser)
        # Not the server's --log-level: here stderr is quiet unless a level is asked for.
        parser.add_argument(
            "--log-level",
            choices=LOG_LEVELS,
            help="write JSON log lines on stderr from this level, and the server's audit line "
            "for the call (default: none but warnings) [env: VAULT_LOG_LEVEL]",
        )
        parser.set_defaults(run=run)
        return parser

    command(
        "address",
        "print the key's address (get_address)",
        'Print the KMS key\'s address, as get_address does: {"address": "0x…"} (EIP-55).',
        _address,
    )
    command(
        "health",
        "check the key, credentials, policy and store (health_check)",
        "Check the key, the credentials, the policy in force and the store, as health_check "
        "does, and print its report; the exit status says whether it is healthy.",
        _health,
        HEALTH_EXIT_STATUS,
    )
    limit = f"At most {MAX_INPUT_BYTES // 2**20} MiB"
    parser = command(
        "sign-transaction",
        "sign an eth_signTransaction object (JSON from FILE or stdin)",
        "Sign an eth_signTransaction object through the policy, as sign_transaction does, "
        "and print raw_transaction, hash, from, type, v, r, s. The object is JSON in FILE or "
        f"on stdin (a JSON string holding one is taken too). {limit}. Nothing is broadcast: "
        "send raw_transaction with eth_sendRawTransaction.",
        _sign_transaction,
    )
    _add_file_argument(parser)
    parser = command(
        "sign-typed-data",
        "sign EIP-712 typed data (JSON from FILE or stdin)",
        "Sign an eth_signTypedData_v4 payload (types, primaryType, domain, message) through "
        "the policy, as sign_typed_data does, and print signature, digest, v, r, s. The "
        f"payload is JSON in FILE or on stdin (a JSON string holding one is taken too). {limit}.",
        _sign_typed_data,
    )
    _add_file_argument(parser)
    parser = command(
        "sign-message",
        "sign a message the personal_sign way (EIP-191)",
        "Sign TEXT the EIP-191 personal_sign way through the policy, as sign_message does, "
        "and print signature, digest, v, r, s. Put -- before a TEXT that starts with -.",
        _sign_message,
    )
    parser.add_argument("text", metavar="TEXT", help="the message (0x hex bytes with --hex)")
    parser.add_argument(
        "--hex", action="store_true", help="TEXT is 0x hex: sign those bytes, not the text"
    )


def _add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        metavar="FILE|-",
        help="the JSON file; - or none: stdin (none is refused when stdin is a terminal)",
    )


# -- the commands ------------------------------------------------------------------------


def _address(args: argparse.Namespace) -> int:
    return _run(args, "get_address", lambda vault, call: vault.address(call))


def _health(args: argparse.Namespace) -> int:
    problems: list[str] = []

    def check(vault: Vault, call: Call) -> BaseModel:
        report = vault.health()
        problems.extend(report.problems)
        return report

    status = _run(args, "health_check", check)
    if status != EXIT_OK or not problems:
        return status
    for problem in problems:
        print(problem, file=sys.stderr)
    return EXIT_ERROR


def _sign_transaction(args: argparse.Namespace) -> int:
    from .._vault import Subject

    return _sign(args, "sign_transaction", lambda: Subject.of_transaction(_input(args)))


def _sign_typed_data(args: argparse.Namespace) -> int:
    from .._vault import Subject

    return _sign(args, "sign_typed_data", lambda: Subject.of_typed_data(_input(args)))


def _sign_message(args: argparse.Namespace) -> int:
    from .._message import MessageEncoding
    from .._vault import Subject

    encoding: MessageEncoding = "hex" if args.hex else "utf8"
    return _sign(args, "sign_message", lambda: Subject.of_message(args.text, encoding))


def _sign(args: argparse.Namespace, tool: str, subject: Callable[[], Subject]) -> int:
    # The argument is validated before anything is asked of KMS or the store, as the
    # server validates before it prepares.
    return _run(args, tool, lambda vault, call: vault.execute(vault.prepare(subject(), call), call))


def _input(args: argparse.Namespace) -> Any:
    root = "transaction" if args.command == "sign-transaction" else "typed_data"
    if args.file is None and sys.stdin.isatty():
        from .._cli import fail

        fail(
            "give the JSON as FILE, or pipe it on stdin (- reads a terminal until Ctrl-D)",
            f"{PROG} {args.command}",
        )
    return read_json(args.file or "-", root)


# -- one call, as the server makes it ----------------------------------------------------


def _run(args: argparse.Namespace, tool: str, work: Work) -> int:
    """Settings, then ``work`` on a vault; the result on stdout or the error on stderr."""
    from .._cli import settings_from
    from .._vault import Call

    settings = settings_from(args, os.environ, PROG)
    logged = _configure_logging(args)
    call = Call(tool, f"cli:{_user()}")
    started = time.perf_counter()
    try:
        result = _with_vault(settings, call, work)
    except VaultError as error:
        if logged:
            call.write_audit_line(started, error)
        print(str(error), file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        # The vault recorded what became of the call (an interrupted signature: failed).
        print(f"{PROG}: interrupted; nothing was printed", file=sys.stderr)
        return EXIT_INTERRUPTED
    if logged:
        call.write_audit_line(started)
    return _print_json(result)


def _with_vault(settings: VaultSettings, call: Call, work: Work) -> BaseModel:
    from .._settings import open_vault

    vault = open_vault(settings)
    try:
        return work(vault, call)
    finally:
        vault.store.close()


def _configure_logging(args: argparse.Namespace) -> bool:
    """JSON log lines on stderr if a level is asked for (then with the audit line), else quiet."""
    from .._cli import log_level_from
    from .._logging import configure_logging

    asked = bool(args.log_level or os.environ.get("VAULT_LOG_LEVEL", "").strip())
    # Quiet: only warnings and errors from below reach the person at the shell.
    configure_logging(log_level_from(args, os.environ, PROG) if asked else "warning")
    return asked


def _print_json(result: BaseModel) -> int:
    text = json.dumps(result.model_dump(mode="json", by_alias=True), indent=2)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader is gone (`| head`, `| true`): end quietly, as a program SIGPIPE ends,
        # and keep the interpreter's last flush from failing again on the dead pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return EXIT_OK


# -- the input ---------------------------------------------------------------------------


def read_json(path: str, root: str) -> Any:
    """The JSON value in ``path`` (``-``: stdin), for the tool's parser to validate.

    At most ``MAX_INPUT_BYTES`` are read. A repeated key or hostile nesting comes back
    as the text itself: the tool's parser refuses it in the server's words, naming the
    path. A JSON string (a payload encoded twice, as agents send) is handed on as well.
    """
    from .._json import DuplicateKey, InvalidJson, TooDeep, loads

    source = "stdin" if path == "-" else path
    raw = _read_bounded(path, source, root)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{root}: {source} is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None
    if not text.strip():
        raise InvalidInput(f"{root}: {source} is empty; give the JSON there.")
    try:
        return loads(text)
    except (DuplicateKey, TooDeep):
        return text
    except InvalidJson as exc:
        raise InvalidInput(f"{root}: {source} is not valid JSON ({exc}).") from None


def _read_bounded(path: str, source: str, root: str) -> bytes:
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as file:
                raw = file.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"{root}: cannot read {source} ({exc.strerror or exc}).") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise InvalidInput(
            f"{root}: {source} holds more than {MAX_INPUT_BYTES // 2**20} MiB, the most the "
            "server reads of a request (the tools take a message up to 64 KiB, typed data "
            "up to 256 KiB of JSON, transaction data up to 128 KiB). Send less."
        )
    return raw


def _user() -> str:
    """Who runs the command, as the system knows them: the audit trail's ``cli:USER``.

    The account of the effective uid, not ``$USER`` or ``$LOGNAME``, which anyone can set.
    """
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):  # no such account, or not POSIX
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"
