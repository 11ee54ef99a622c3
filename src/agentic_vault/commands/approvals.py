"""``agentic-vault approvals list | approve ID | deny ID``: the out-of-band channel.

Whoever can run these against the store decides what the policy sends to a
person, so the store's permissions are this channel's strength (the SQLite
file is 0600 in a 0700 directory; a PostgreSQL store is as strong as its
roles). The id comes from the agent, which may lie about what it stands for:
``approve`` shows what exactly will be signed, and on a terminal asks before
it says yes (``--yes`` skips the question, for scripts). ``deny`` also revokes
an approval that has not been used yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .._errors import StateUnavailable
from ..store import Store
from ..store import approvals as approval_table
from ..store.approvals import Approval
from ._state import add_state_options, store_from

RECENT = 7 * 24 * 3600.0


def add_commands(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "approvals",
        help="list, approve or deny requests waiting for a person",
        description="Requests the policy sends to a person (approve_above) wait in the store "
        "until approved or denied here, or until they expire (--approval-ttl of the server). "
        "An approval lets exactly that request be signed, once, under the same policy.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="requests waiting (--all: every recent one)")
    listing.add_argument(
        "--all", action="store_true", help="also approved, denied, used and expired ones (7 days)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    add_state_options(listing)
    listing.set_defaults(run=_list)
    approve = actions.add_parser(
        "approve", help="approve the request with this id (it is then signed once)"
    )
    approve.add_argument("id", metavar="ID", help="the id from approval_required or `list`")
    approve.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation on a terminal"
    )
    add_state_options(approve)
    approve.set_defaults(run=_decide)
    deny = actions.add_parser("deny", help="deny the request with this id, or revoke its approval")
    deny.add_argument("id", metavar="ID", help="the id from approval_required or `list`")
    add_state_options(deny)
    deny.set_defaults(run=_decide)


def _list(args: argparse.Namespace) -> int:
    from .._vault import timestamp

    store = store_from(args)
    now = time.time()
    try:
        found = store.read(lambda c: approval_table.listing(c, since=now - RECENT))
    except StateUnavailable as exc:
        return _unavailable(exc)
    finally:
        store.close()
    shown = [a for a in found if args.all or a.state_at(now) == "pending"]
    for approval in shown:
        state = approval.state_at(now)
        if args.json:
            print(json.dumps({**approval.__dict__, "state": state}))
            continue
        when = {
            "pending": f"waiting, expires {timestamp(approval.expires)}",
            "approved": f"approved, usable once until {timestamp(approval.expires)}",
        }.get(state, state)
        print(f"{approval.id}  {approval.tool}  from {approval.client}  {when}")
        print("    " + approval.summary.replace("\n", "\n    "))
    if not shown and not args.json:
        print("no requests waiting for approval" + ("" if args.all else " (--all for others)"))
    return 0


def _decide(args: argparse.Namespace) -> int:
    approve = args.action == "approve"
    store = store_from(args)
    try:
        return _decide_in(store, args.id, approve, yes=getattr(args, "yes", False))
    except StateUnavailable as exc:
        return _unavailable(exc)
    finally:
        store.close()


def _decide_in(store: Store, approval_id: str, approve: bool, *, yes: bool) -> int:
    from .._vault import timestamp
    from ..approval import decide
    from .sign import _user

    found = store.read(lambda c: approval_table.get(c, approval_id))
    if found is None:
        return _refuse(f"no approval request has the id {approval_id!r} (see `approvals list`).")
    state = found.state_at(time.time())
    decidable = ("pending",) if approve else ("pending", "approved")
    if state not in decidable:
        return _refuse(
            f"{approval_id} is {state}, not {' or '.join(decidable)}; nothing changed. The agent "
            "can send the request again to file a new one."
        )
    print(found.summary)
    if approve and not yes and not _confirmed(found):
        return _refuse(f"{approval_id} was not approved; nothing changed.")
    decided = decide(
        store,
        approval_id,
        approve=approve,
        channel="out-of-band",
        by=f"cli:{_user()}",
        now=time.time(),
    )
    if decided is None:
        return _refuse(f"{approval_id} was decided or expired meanwhile; nothing changed.")
    if approve:
        print(
            f"approved {approval_id}: exactly this request, sent again before "
            f"{timestamp(decided.expires)}, is signed once."
        )
    else:
        print(f"denied {approval_id}: it will not be signed.")
    return 0


def _confirmed(approval: Approval) -> bool:
    """On a terminal, the person says yes to what they just read; elsewhere, yes."""
    if not sys.stdin.isatty():
        return True
    try:
        answer = input(f"Approve {approval.id} and let it be signed once? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _unavailable(exc: StateUnavailable) -> int:
    print(f"agentic-vault approvals: error: {exc.message}", file=sys.stderr)
    return 2


def _refuse(message: str) -> int:
    print(f"agentic-vault approvals: error: {message}", file=sys.stderr)
    return 1
