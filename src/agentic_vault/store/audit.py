"""The audit trail: canonical JSON records in one hash chain.

    record n:  {"seq": n, "prev_hash": hash(n-1), "time": …, "tool": …, "outcome": …, …}
    hash(n) =  sha256(canonical JSON of record n)            hash(0) = "0" * 64

Canonical JSON is ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` in UTF-8: one text per record, so anyone can recompute
a hash with any JSON library. Appends run inside the store's exclusive write
transaction, so the chain is one line even with several servers on one
PostgreSQL. ``audit_head`` keeps the last seq and hash beside the records:
removing the newest records without also rewriting the head is caught, and a
head printed earlier (``audit verify --head``) catches a tail removed with it.

``verify`` names the first record that was altered, removed, reordered or
inserted; ``export`` streams records in seq order.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._backend import Connection
from ._schema import GENESIS_HASH

# Columns of `audit export --format csv`, the contract's list first.
EXPORT_FIELDS = (
    "seq",
    "time",
    "tool",
    "outcome",
    "digest",
    "tx_hash",
    "chain_id",
    "to",
    "rule",
    "client",
    "prev_hash",
    "hash",
    "kind",
    "intent_seq",
    "error_code",
    "approval",
    "policy_sha256",
    "address",
)
_PAGE = 1000


def canonical_json(record: dict[str, Any]) -> str:
    """The one text of ``record`` that is hashed and stored."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate (JSON input may hold "\\ud800") has no UTF-8 form: keep it escaped.
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    hash: str
    fields: dict[str, Any]  # the record as stored, with seq and prev_hash

    def exported(self) -> dict[str, Any]:
        return {**self.fields, "hash": self.hash}


def append(connection: Connection, fields: dict[str, Any]) -> AuditRecord:
    """Chain ``fields`` after the head; call only inside an exclusive write transaction."""
    (head_seq, head_hash), *_ = connection.query("SELECT seq, hash FROM audit_head WHERE id = 1")
    record = {**fields, "seq": int(head_seq) + 1, "prev_hash": head_hash}
    text = canonical_json(record)
    digest = hash_text(text)
    connection.execute(
        "INSERT INTO audit (seq, record, hash) VALUES (?, ?, ?)", (record["seq"], text, digest)
    )
    connection.execute(
        "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (record["seq"], digest)
    )
    return AuditRecord(record["seq"], digest, record)


def records(connection: Connection, after: int = 0) -> Iterator[AuditRecord]:
    """Every record with seq > ``after``, in seq order, a page at a time.

    A hand-made row whose seq is not an integer (SQLite stores a real or a text
    there) is no record: it is skipped (``audit verify`` names it).
    """
    position: object = after
    while True:
        rows = connection.query(
            "SELECT seq, record, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (position, _PAGE),
        )
        for seq, text, digest in rows:
            position = seq  # the next page starts after this row, whatever its type
            if _is_position(seq):
                yield AuditRecord(seq, str(digest), _parse(str(text)))
        if len(rows) < _PAGE:
            return


def _is_position(seq: object) -> bool:
    """Whether a row's seq is an integer: SQLite lets a hand-made row hold text or a real."""
    return isinstance(seq, int) and not isinstance(seq, bool)


def _parse(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"_unparsable": text}
    return value if isinstance(value, dict) else {"_unparsable": text}


@dataclass(frozen=True)
class Verdict:
    """What ``audit verify`` found."""

    ok: bool
    count: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    record: int | None = None  # the seq (position) of the first bad record

    @property
    def head(self) -> str:
        """The head as ``audit verify`` prints it and ``--head`` takes it back."""
        return f"{self.head_seq}:{self.head_hash}"


def verify(connection: Connection, expected_head: str | None = None) -> Verdict:
    """Recompute the chain; the first record that breaks it is named."""
    previous_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    rows_seen: dict[int, str] = {}
    want_seq, want_hash = _parse_head(expected_head)
    after = 0
    while True:
        rows = connection.query(
            "SELECT seq, record, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, _PAGE),
        )
        for seq_value, text_value, stored_value in rows:
            if not _is_position(seq_value):
                return Verdict(
                    False,
                    count,
                    expected_seq - 1,
                    previous_hash,
                    f"a row after record {expected_seq - 1} has the position {seq_value!r}, "
                    "not a number: it was not appended by agentic-vault.",
                    expected_seq,
                )
            seq, text, stored = int(seq_value), str(text_value), str(stored_value)
            after = seq
            problem = _check_record(seq, text, stored, expected_seq, previous_hash)
            if problem is not None:
                first_bad = min(seq, expected_seq)  # a gap names the first record missing
                return Verdict(False, count, expected_seq - 1, previous_hash, problem, first_bad)
            if want_hash is not None and (stored == want_hash or seq == want_seq):
                rows_seen[seq] = stored
            previous_hash = stored
            expected_seq += 1
            count += 1
        if len(rows) < _PAGE:
            break
    head_seq, head_hash = count, previous_hash
    ((unplaced,),) = connection.query("SELECT COUNT(*) FROM audit WHERE seq IS NULL")
    if unplaced:
        return Verdict(
            False,
            count,
            head_seq,
            head_hash,
            f"{unplaced} row(s) have no position (seq is NULL): they were not appended by "
            "agentic-vault.",
            head_seq + 1,
        )
    (stored_seq, stored_hash), *_ = connection.query(
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    )
    head_problem = _check_head(head_seq, head_hash, int(stored_seq), str(stored_hash))
    if head_problem is not None:
        return Verdict(False, count, head_seq, head_hash, *head_problem)
    if want_hash is not None and want_hash not in rows_seen.values():
        where = f"record {want_seq}" if want_seq is not None else "a record"
        return Verdict(
            False,
            count,
            head_seq,
            head_hash,
            f"the head printed earlier ({where}, {want_hash}) is not in the trail, which now "
            f"ends at record {head_seq}: the tail was truncated or rewritten.",
            want_seq if want_seq is not None else head_seq + 1,
        )
    return Verdict(True, count, head_seq, head_hash)


def _check_head(
    head_seq: int, head_hash: str, stored_seq: int, stored_hash: str
) -> tuple[str, int] | None:
    """The trail's last record against ``audit_head``, which every append updates."""
    if stored_seq > head_seq:
        return (
            f"the trail ends at record {head_seq}, but the store's head is record "
            f"{stored_seq} ({stored_hash}): records after {head_seq} were removed.",
            head_seq + 1,
        )
    if stored_seq < head_seq:
        added = (
            f"record {head_seq} was"
            if head_seq == stored_seq + 1
            else f"records {stored_seq + 1}-{head_seq} were"
        )
        return (
            f"{added} inserted after the store's head (record {stored_seq}), not appended by "
            "agentic-vault.",
            stored_seq + 1,
        )
    if stored_hash != head_hash:
        return (
            f"record {head_seq} is not the one the store's head names ({stored_hash}): it "
            "was replaced.",
            head_seq,
        )
    return None


def _check_record(
    seq: int, text: str, stored: str, expected_seq: int, previous_hash: str
) -> str | None:
    if seq != expected_seq:
        if seq > expected_seq:
            missing = (
                f"record {expected_seq} was"
                if seq == expected_seq + 1
                else f"records {expected_seq}-{seq - 1} were"
            )
            return f"{missing} removed: the trail jumps from {expected_seq - 1} to {seq}."
        return f"record {seq} appears twice."
    fields = _parse(text)
    if "_unparsable" in fields or canonical_json(fields) != text:
        return f"record {seq} was altered: it is not the canonical JSON that was written."
    if hash_text(text) != stored:
        return f"record {seq} was altered: its content does not match its hash."
    if fields.get("seq") != seq:
        return (
            f"record {seq} holds the content of record {fields.get('seq')}: records were "
            "reordered or replaced."
        )
    if fields.get("prev_hash") != previous_hash:
        return (
            f"record {seq} does not follow record {seq - 1} (its prev_hash differs): record "
            f"{seq - 1} was altered and re-hashed, or records were removed, inserted or swapped."
        )
    return None


def _parse_head(head: str | None) -> tuple[int | None, str | None]:
    """``SEQ:HASH`` or ``HASH`` (as ``audit verify`` printed it)."""
    if head is None:
        return None, None
    seq_text, _, digest = head.strip().rpartition(":")
    digest = digest.lower().removeprefix("0x")
    seq = int(seq_text) if seq_text.isdigit() else None
    return seq, digest


def head(connection: Connection) -> tuple[int, str]:
    (seq, digest), *_ = connection.query("SELECT seq, hash FROM audit_head WHERE id = 1")
    return int(seq), str(digest)
