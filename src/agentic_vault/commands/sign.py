"""The tools from a shell: ``address``, ``sign-transaction``, ``sign-typed-data``,
``sign-message``, ``health``.

Same flags, environment fallbacks, policy, store and audit trail as the server:
each command builds the vault from the same settings and walks the same
pipeline (prepare → execute), so a signature made here passes the same guard
and leaves the same record. The tool's JSON goes to stdout; an error is its
``code: sentence`` on stderr and exit status 1. A request that needs a person
gets ``approval_required: ID: …``: approve it from another shell with
``agentic-vault approvals approve ID``, then run the same command again.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .._errors import InvalidInput, VaultError

PROG = "agentic-vault"


def add_commands(subparsers: Any) -> None:
    from .._cli import add_log_option, add_signer_options, add_vault_options

    def command(name: str, help_text: str, run: Callable[[argparse.Namespace], int]) -> Any:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_signer_options(parser)
        add_vault_options(parser)
        add_log_option(parser)
        parser.set_defaults(run=run)
        return parser

    command("address", "print the key's address (get_address)", _address)
    command("health", "check the key, credentials, policy and store (health_check)", _health)
    for name, what in (
        ("sign-transaction", "an eth_signTransaction object"),
        ("sign-typed-data", "an eth_signTypedData_v4 payload"),
    ):
        parser = command(name, f"sign {what} read as JSON from FILE or stdin", _sign_json)
        parser.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    parser = command("sign-message", "sign a message the personal_sign way", _sign_message)
    parser.add_argument("text", metavar="TEXT", help="the message (0x hex with --hex)")
    parser.add_argument("--hex", action="store_true", help="TEXT is 0x hex bytes, not text")


def _address(args: argparse.Namespace) -> int:
    return _run(args, "get_address", lambda vault, call: vault.address(call))


def _health(args: argparse.Namespace) -> int:
    return _run(args, "health_check", lambda vault, call: vault.health())


def _sign_json(args: argparse.Namespace) -> int:
    from .._vault import Subject

    kind = "transaction" if args.command == "sign-transaction" else "typed_data"
    text = _read(args.file, kind)
    if kind == "transaction":
        return _sign(args, "sign_transaction", lambda: Subject.of_transaction(_json(text, kind)))
    return _sign(args, "sign_typed_data", lambda: Subject.of_typed_data(text))


def _sign_message(args: argparse.Namespace) -> int:
    from .._message import MessageEncoding
    from .._vault import Subject

    encoding: MessageEncoding = "hex" if args.hex else "utf8"
    return _sign(args, "sign_message", lambda: Subject.of_message(args.text, encoding))


def _sign(args: argparse.Namespace, tool: str, subject: Callable[[], Any]) -> int:
    def sign(vault: Any, call: Any) -> BaseModel:
        prepared = vault.prepare(subject(), call)
        return vault.execute(prepared, call)  # type: ignore[no-any-return]

    return _run(args, tool, sign)


def _run(args: argparse.Namespace, tool: str, work: Callable[[Any, Any], BaseModel]) -> int:
    from .._cli import log_level_from, settings_from
    from .._logging import audit, configure_logging
    from .._settings import open_vault
    from .._vault import Call

    settings = settings_from(args, os.environ, PROG)
    # The durable trail has every record; stderr stays quiet unless asked.
    configure_logging(log_level_from(args, os.environ, PROG) if args.log_level else "warning")
    vault = open_vault(settings)
    call = Call(tool, f"cli:{_user()}")
    try:
        result = work(vault, call)
    except VaultError as error:
        audit("tool call", tool=tool, client=call.client, outcome="error", error_code=error.code)
        print(str(error), file=sys.stderr)
        return 1
    finally:
        vault.store.close()
    print(json.dumps(result.model_dump(mode="json", by_alias=True), indent=2))
    return 0


def _read(path: str, what: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as source:
            return source.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"invalid_input: {what}: cannot read {path}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _json(text: str, what: str) -> Any:
    from .._json import InvalidJson, loads

    try:
        return loads(text)
    except InvalidJson as exc:
        raise InvalidInput(f"{what}: is not valid JSON ({exc}).") from None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
