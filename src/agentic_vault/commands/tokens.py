"""``agentic-vault token create NAME [--policy FILE] | list | revoke NAME``: HTTP clients' tokens.

A token is what ``agentic-vault-mcp --transport http`` asks of every request
(``Authorization: Bearer …``); its name is the audit records' client. ``create``
prints the token once, on stdout alone (``TOKEN=$(agentic-vault token create
ci)`` works), and the store keeps only its SHA-256: lost means revoke and
create again. ``revoke`` takes effect at once on every server sharing the store.
A token made with ``--policy FILE`` is judged by that policy instead of the
server's ``--policy``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._errors import StateUnavailable
from ..store import tokens as token_table
from ._state import add_state_options, store_from

PROG = "agentic-vault token"
EXIT_REFUSED = 1
EXIT_USAGE = 2


class NewToken(BaseModel):
    """What ``token create`` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
    )
    policy: Path | None = None


def add_commands(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "token",
        help="create, list or revoke the bearer tokens of HTTP clients",
        description="Bearer tokens for agentic-vault-mcp --transport http. The store keeps "
        "only their SHA-256; a token's name is the client in the audit trail.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="make a token for NAME and print it (once)",
        description="Make a token for NAME and print it on stdout; it is never shown again. "
        "A revoked name may be given a new token; a live one may not.",
    )
    create.add_argument("name", metavar="NAME", help="who the token is for, e.g. ci-agent")
    create.add_argument(
        "--policy",
        metavar="FILE",
        help="judge this token's calls by this policy file instead of the server's --policy",
    )
    add_state_options(create)
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="every token's name, dates and policy")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    add_state_options(listing)
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="refuse NAME's token from now on")
    revoke.add_argument("name", metavar="NAME")
    add_state_options(revoke)
    revoke.set_defaults(run=_revoke)


def _quiet_store_log() -> None:
    # The store logs its failures for a server's operator; here the one line we print
    # already says the same, so Python's last-resort handler must not repeat it.
    logging.getLogger().addHandler(logging.NullHandler())


def _create(args: argparse.Namespace) -> int:
    try:
        request = NewToken(name=args.name, policy=args.policy)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        field = str(problem["loc"][0]) if problem["loc"] else "NAME"
        if field == "name":
            return _usage(f"NAME: {args.name!r} is not a token name: use 1-64 letters, digits, "
                          "'.', '_', '-' or '@', starting with a letter or digit")  # fmt: skip
        return _usage(f"--{field}: {problem['msg']}")
    policy = None
    if request.policy is not None:
        from ..policy import PolicyFileError, load_policy_file

        policy = str(request.policy.resolve())
        try:
            load_policy_file(policy)
        except PolicyFileError as exc:
            return _usage(f"--policy: {exc}")
    _quiet_store_log()
    store = store_from(args)
    try:
        token = store.write(
            lambda c: token_table.create(c, request.name, time.time(), policy=policy)
        )
    except token_table.TokenExists:
        return _refuse(
            f"{request.name!r} already has a live token; revoke it first "
            f"(`agentic-vault token revoke {request.name}`) or choose another name."
        )
    except StateUnavailable as exc:
        return _unavailable(exc)
    finally:
        store.close()
    print(token, flush=True)
    print(
        f"token for {request.name!r} created"
        + (f", judged by {policy}" if policy else "")
        + ". It is shown only this once: give it to the client as the header "
        "`Authorization: Bearer <token>`.",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    _quiet_store_log()
    store = store_from(args)
    try:
        found = store.read(token_table.listing)
    except StateUnavailable as exc:
        return _unavailable(exc)
    for info in found:
        if args.json:
            print(
                json.dumps(
                    {
                        "name": info.name,
                        "created": _iso(info.created),
                        "revoked": None if info.revoked is None else _iso(info.revoked),
                        "policy": info.policy,
                    }
                )
            )
            continue
        state = "active" if info.revoked is None else f"revoked {_iso(info.revoked)}"
        policy = info.policy or "the server's policy"
        print(f"{info.name}  created {_iso(info.created)}  {state}  judged by {policy}")
    if not found and not args.json:
        print("no tokens (make one with `agentic-vault token create NAME`)")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    _quiet_store_log()
    store = store_from(args)
    try:
        revoked = store.write(lambda c: token_table.revoke(c, args.name, time.time()))
    except StateUnavailable as exc:
        return _unavailable(exc)
    finally:
        store.close()
    if not revoked:
        return _refuse(f"{args.name!r} has no live token (see `agentic-vault token list`).")
    print(f"revoked {args.name!r}: every server on this store refuses its token from now on.")
    return 0


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _usage(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _refuse(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _unavailable(exc: StateUnavailable) -> int:
    print(f"{PROG}: error: {exc}", file=sys.stderr)
    return EXIT_USAGE
