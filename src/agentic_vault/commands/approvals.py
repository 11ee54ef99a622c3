"""``agentic-vault approvals list | approve ID | deny ID``: the out-of-band channel.

Whoever can run these against the store decides what the policy sends to a
person, so the store's permissions are this channel's strength (the SQLite
file is 0600 in a 0700 directory; a PostgreSQL store is as strong as its
roles). ``approve`` shows what exactly will be signed before it says yes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .._errors import StateUnavailable
from ..store import approvals as approval_table
from ._state import add_state_options, store_from


def add_commands(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "approvals",
        help="list, approve or deny requests waiting for a person",
        description="Requests the policy sends to a person (approve_above) wait in the store "
        "until approved or denied here, or until they expire (--approval-ttl).",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="requests waiting (--all: every recent one)")
    listing.add_argument("--all", action="store_true", help="also decided, used and expired ones")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    add_state_options(listing)
    listing.set_defaults(run=_list)
    for action, verb in (("approve", "approve"), ("deny", "deny")):
        parser = actions.add_parser(action, help=f"{verb} the request with this id")
        parser.add_argument("id", metavar="ID", help="the id from approval_required or `list`")
        add_state_options(parser)
        parser.set_defaults(run=_decide)


def _list(args: argparse.Namespace) -> int:
    store = store_from(args)
    now = time.time()
    try:
        found = store.read(lambda c: approval_table.listing(c, since=now - 7 * 24 * 3600))
    except StateUnavailable as exc:
        print(f"agentic-vault approvals: error: {exc.message}", file=sys.stderr)
        return 2
    shown = [a for a in found if args.all or a.state_at(now) == "pending"]
    for approval in shown:
        state = approval.state_at(now)
        if args.json:
            print(json.dumps({**approval.__dict__, "state": state}))
            continue
        left = max(0, round((approval.expires - now) / 60))
        when = f"expires in {left} min" if state == "pending" else state
        print(f"{approval.id}  {approval.tool}  from {approval.client}  {when}")
        print("    " + approval.summary.replace("\n", "\n    "))
    if not shown and not args.json:
        print("no requests waiting for approval" + ("" if args.all else " (--all for others)"))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from ..approval import decide
    from .sign import _user

    approve = args.action == "approve"
    store = store_from(args)
    now = time.time()
    try:
        found = store.read(lambda c: approval_table.get(c, args.id))
        if found is None:
            return _refuse(f"no approval request has the id {args.id!r} (see `approvals list`).")
        state = found.state_at(now)
        if state != "pending":
            return _refuse(
                f"{args.id} is {state}, not pending; nothing changed. The agent can send the "
                "request again to file a new one."
            )
        decided = decide(
            store, args.id, approve=approve, channel="out-of-band", by=f"cli:{_user()}", now=now
        )
    except StateUnavailable as exc:
        print(f"agentic-vault approvals: error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if decided is None:
        return _refuse(f"{args.id} was decided or expired meanwhile; nothing changed.")
    print(found.summary)
    if approve:
        print(
            f"approved {args.id}: the same request, sent again before it expires, is signed once."
        )
    else:
        print(f"denied {args.id}: it will not be signed.")
    return 0


def _refuse(message: str) -> int:
    print(f"agentic-vault approvals: error: {message}", file=sys.stderr)
    return 1
