"""``agentic-vault audit verify | export | tail``: read the trail, never write it.

    verify [--head SEQ:HASH]   recompute the chain ─▶ exit 0 "ok: N records" + "head SEQ:HASH"
                                                   └▶ exit 1 naming the first bad record
    export [--since] [--format jsonl|csv]   one record per line, in seq order
    tail [-n N] [--follow]     the last N records as text, then new ones as they arrive

These commands only read: no write lock, no migration, and no store created
where there is none (a path or database without a trail is an error), so an
auditor with read-only access can run them beside live servers. Each read is
one snapshot: a record appended meanwhile is either wholly in it or not.

An export line is the record's canonical JSON with its ``hash`` added: drop
``hash``, re-serialise canonically, and SHA-256 gives it back. The text of
``tail`` escapes control and formatting characters, because agents choose
some of the strings a record holds (a client's name) and an operator's
terminal must not run them; CSV cells a spreadsheet would run as a formula
start with ``'`` for the same reason.

Exit status: 0 ok, 1 a verification that failed, 2 a usage error, no trail,
or a store that cannot be read (the message says which and what to do).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from ..store import Backend, Connection, audit, open_backend
from ..store._schema import SCHEMA_VERSION
from ..store._sqlite import SqliteBackend
from ._state import add_state_options, state_location

T = TypeVar("T")

EXIT_OK, EXIT_TAMPERED, EXIT_USAGE = 0, 1, 2
DEFAULT_TAIL = 10
FOLLOW_INTERVAL = 1.0
PROG = "agentic-vault audit"

# Whether a table exists, asked of each database's own catalog (nothing is created).
_HAS_TABLE = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
    "postgresql": "SELECT CASE WHEN to_regclass(?) IS NULL THEN 0 ELSE 1 END",
}
_HEAD = re.compile(r"^(?:(?P<seq>\d+):)?(?:0x)?(?P<hash>[0-9a-fA-F]{64})$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class NoTrail(Exception):
    """The place named holds no audit trail (yet)."""


# -- the command line --------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``audit`` and its subcommands on ``agentic-vault``'s parser."""
    parser = subparsers.add_parser(
        "audit",
        help="verify, export or follow the audit trail",
        description="Read the hash-chained audit trail of a store (SQLite under --state-dir, "
        "or PostgreSQL at --state-url). Nothing is written.",
    )
    parser.set_defaults(audit_parser=parser, run=run)
    commands = parser.add_subparsers(dest="audit_command", metavar="COMMAND")

    verify = commands.add_parser(
        "verify",
        help="recompute the hash chain; exit 1 naming the first record that breaks it",
        description="Recompute every record's hash and link. Exit 0 printing the record count "
        "and the head (SEQ:HASH; keep it to check later that no tail was cut); exit 1 naming "
        "the first record altered, removed, reordered or inserted.",
    )
    verify.add_argument(
        "--head",
        metavar="SEQ:HASH",
        type=_head_argument,
        help="a head printed earlier by audit verify: it must still be in the trail, which "
        "catches a tail removed together with the store's own head",
    )
    add_state_options(verify)

    export = commands.add_parser(
        "export",
        help="print the records, one per line (JSON lines or CSV)",
        description="Print the records in seq order. jsonl: each record's canonical JSON with "
        "its hash; csv: the columns " + ", ".join(audit.EXPORT_FIELDS) + ".",
    )
    export.add_argument(
        "--since",
        metavar="ISO8601",
        type=_since_argument,
        help="only records whose time is at or after this (e.g. 2026-01-31 or "
        "2026-01-31T12:00:00Z; UTC when no zone is given)",
    )
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    add_state_options(export)

    tail = commands.add_parser(
        "tail",
        help="print the last records, and with --follow new ones as they arrive",
        description="Print the last N records as one line of text each; with --follow, keep "
        "polling and print new records as servers append them (Ctrl-C stops).",
    )
    tail.add_argument(
        "-n",
        "--lines",
        metavar="N",
        type=_count_argument,
        default=DEFAULT_TAIL,
        help=f"how many of the last records to print (default {DEFAULT_TAIL})",
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument(
        "--interval",
        metavar="SECONDS",
        type=_interval_argument,
        default=FOLLOW_INTERVAL,
        help=f"how often --follow looks for new records (default {FOLLOW_INTERVAL:g})",
    )
    add_state_options(tail)


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    """Run the ``audit`` subcommand ``args`` names; returns the exit status."""
    command = _COMMANDS.get(getattr(args, "audit_command", None) or "")
    if command is None:
        args.audit_parser.print_help(sys.stderr)
        return EXIT_USAGE
    state_dir, state_url = state_location(args, environ)
    backend = open_backend(state_dir, state_url, environ)
    prog = f"{PROG} {args.audit_command}"
    try:
        return command(args, backend, sys.stdout)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, without a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    except NoTrail as exc:
        return _error(prog, str(exc))
    except Exception as exc:
        if backend.is_database_error(exc):
            return _error(prog, f"state_unavailable: {backend.explain(exc)}")
        raise


def _error(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _head_argument(text: str) -> str:
    if not _HEAD.match(text.strip()):
        raise argparse.ArgumentTypeError(
            f"expected SEQ:HASH as audit verify printed it (e.g. 42:{'0' * 64}), got {text!r}"
        )
    return text.strip()


def _since_argument(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or time such as 2026-01-31 or 2026-01-31T12:00:00Z, "
            f"got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _count_argument(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of records, got {text!r}")
    return int(text)


def _interval_argument(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.05 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.05 and 3600, got {text!r}")
    return seconds


# -- the commands ------------------------------------------------------------------------


def _verify(args: argparse.Namespace, backend: Backend, out: TextIO) -> int:
    verdict = _read(backend, lambda connection: audit.verify(connection, args.head))
    if verdict.ok:
        given = f", the head given ({args.head.split(':')[0]}) among them" if args.head else ""
        print(f"ok: {verdict.count} records verified in {backend.location}{given}", file=out)
        print(f"head {verdict.head}", file=out)
        return EXIT_OK
    print(f"FAILED at record {verdict.record}: {verdict.problem}", file=out)
    if verdict.head_seq:
        print(
            f"records 1-{verdict.head_seq} before it verify; their head is {verdict.head}",
            file=out,
        )
    return EXIT_TAMPERED


def _export(args: argparse.Namespace, backend: Backend, out: TextIO) -> int:
    def write(connection: Connection) -> None:
        selected = (r for r in audit.records(connection) if _since(r, args.since))
        if args.format == "csv":
            _write_csv(selected, out)
        else:
            for record in selected:
                out.write(export_line(record) + "\n")

    _read(backend, write)
    out.flush()
    return EXIT_OK


def _tail(args: argparse.Namespace, backend: Backend, out: TextIO) -> int:
    def last(connection: Connection) -> tuple[int, list[audit.AuditRecord]]:
        (newest,), *_ = connection.query("SELECT COALESCE(MAX(seq), 0) FROM audit")
        after = max(0, int(newest) - args.lines)
        return int(newest), list(audit.records(connection, after=after))

    after, records = _read(backend, last)
    _print_tail(records, out)
    if not args.follow:
        return EXIT_OK
    problem: str | None = None
    while True:
        time.sleep(args.interval)
        try:
            fresh = _read(backend, _records_after(after))
        except Exception as exc:
            # Watching must outlive a store restart: say so once, and keep polling.
            if not (isinstance(exc, NoTrail) or backend.is_database_error(exc)):
                raise
            reason = str(exc) if isinstance(exc, NoTrail) else backend.explain(exc)
            if reason != problem:
                print(f"{PROG} tail: waiting: {reason}", file=sys.stderr, flush=True)
            problem = reason
            continue
        if problem is not None:
            print(f"{PROG} tail: the store answers again", file=sys.stderr, flush=True)
            problem = None
        after = _print_tail(fresh, out, after)


def _records_after(seq: int) -> Callable[[Connection], list[audit.AuditRecord]]:
    return lambda connection: list(audit.records(connection, after=seq))


_COMMANDS: dict[str, Callable[[argparse.Namespace, Backend, TextIO], int]] = {
    "verify": _verify,
    "export": _export,
    "tail": _tail,
}


# -- reading the store -------------------------------------------------------------------


def _read(backend: Backend, operation: Callable[[Connection], T]) -> T:
    """``operation`` on one read snapshot of an existing store; ``NoTrail`` if none is there."""
    if isinstance(backend, SqliteBackend) and not backend.path.exists():
        # Connecting would create it: a read command must not.
        raise NoTrail(_no_trail(backend))
    connection = backend.connect()
    try:
        _check_schema(backend, connection)
        connection.begin_read()
        return operation(connection)
    finally:
        try:
            connection.rollback()
        finally:
            connection.close()


def _check_schema(backend: Backend, connection: Connection) -> None:
    found = connection.query(_HAS_TABLE[backend.name], ("schema_version",))
    if not int(found[0][0]):
        raise NoTrail(_no_trail(backend))
    rows = connection.query("SELECT version FROM schema_version")
    version = int(rows[0][0]) if rows else 0
    if version > SCHEMA_VERSION:
        raise NoTrail(
            f"the store at {backend.location} has schema version {version}, newer than this "
            f"agentic-vault understands ({SCHEMA_VERSION}); upgrade agentic-vault to read it."
        )


def _no_trail(backend: Backend) -> str:
    return (
        f"no trail at {backend.location}: nothing was ever recorded there; check --state-dir "
        "or --state-url (or VAULT_STATE_DIR / VAULT_STATE_URL) against the server's."
    )


# -- shaping the output ------------------------------------------------------------------


def export_line(record: audit.AuditRecord) -> str:
    """One JSON line: the record's canonical JSON with its hash added."""
    return audit.canonical_json({"seq": record.seq, **record.exported()})


def _write_csv(records: Iterator[audit.AuditRecord], out: TextIO) -> None:
    writer = csv.DictWriter(
        out, fieldnames=audit.EXPORT_FIELDS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for record in records:
        fields = {"seq": record.seq, **record.exported()}
        writer.writerow({name: _csv_cell(fields.get(name)) for name in audit.EXPORT_FIELDS})


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _since(record: audit.AuditRecord, since: datetime | None) -> bool:
    """Whether ``record`` is at or after ``since``; a record without a readable time is kept."""
    if since is None:
        return True
    moment = record_time(record.fields.get("time"))
    return moment is None or moment >= since


def record_time(value: Any) -> datetime | None:
    """A record's ``time``: ISO 8601 text (UTC if no zone) or seconds since the epoch."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


_TAIL_LEAD = ("seq", "time", "tool", "outcome")
_TAIL_QUIET = {*_TAIL_LEAD, "prev_hash", "hash"}


def tail_line(record: audit.AuditRecord) -> str:
    """``SEQ TIME TOOL OUTCOME key=value …``, safe to print on a terminal."""
    fields = record.fields
    lead = " ".join(_shown(fields.get(name, "-")) for name in _TAIL_LEAD[1:])
    names = [n for n in audit.EXPORT_FIELDS if n not in _TAIL_QUIET]
    names += sorted(n for n in fields if n not in audit.EXPORT_FIELDS and n not in _TAIL_QUIET)
    rest = [f"{n}={_shown(fields[n])}" for n in names if fields.get(n) not in (None, "")]
    return " ".join([f"{record.seq:>6}", lead, *rest])


def _print_tail(records: list[audit.AuditRecord], out: TextIO, after: int = 0) -> int:
    for record in records:
        out.write(tail_line(record) + "\n")
        after = record.seq
    out.flush()
    return after


def _shown(value: Any) -> str:
    """One token: quoted if it could pass for more (``x outcome=signed``), never raw controls."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if not text or any(c.isspace() or c in "\"='" for c in text):
        text = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
