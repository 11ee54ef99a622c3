"""``agentic-vault audit verify | export | tail``, run as installed, on SQLite and PostgreSQL.

The tampering is done the way an attacker with database access would: SQL on
the store's own tables (edit, delete, swap, insert, truncate), with and without
recomputing hashes. Expected hashes are recomputed here with hashlib and json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentic_vault.store import audit

from .conftest_postgres import StoreAt
from .mcp_helpers import CLI
from .postgres import PostgresServer, database_and_schema

pytestmark = pytest.mark.e2e

RECORDS = 6


def fields(n: int) -> dict[str, Any]:
    """Record n as the signing pipeline writes one: odd ones signed, even ones denied."""
    signed = n % 2 == 1
    return {
        "time": f"2026-03-{n:02d}T12:00:00Z",
        "kind": "outcome",
        "tool": "sign_transaction",
        "outcome": "signed" if signed else "denied",
        "digest": "0x" + hashlib.sha256(b"digest %d" % n).hexdigest(),
        "tx_hash": "0x" + hashlib.sha256(b"tx %d" % n).hexdigest() if signed else None,
        "chain_id": 8453,
        "to": "0x" + f"{n:02x}" * 20,
        "rule": None if signed else "max_per_day",
        "client": "claude-code",
    }


@pytest.fixture
def trail(store_at: StoreAt) -> StoreAt:
    store = store_at.open()
    for n in range(1, RECORDS + 1):
        store.write(lambda connection, n=n: audit.append(connection, fields(n)))
    store.close()
    return store_at


def audit_cli(at: StoreAt | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_STATE")}
    location = at.cli_args if at is not None else []
    return subprocess.run(
        [CLI, "audit", *args, *location],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment | env,
        check=False,
    )


def sql(at: StoreAt, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``statement`` on the store's database directly, as an attacker would."""
    connection = at.open().backend.connect()
    try:
        if statement.lstrip().upper().startswith("SELECT"):
            return connection.query(statement, params)
        connection.execute(statement, params)
        return []
    finally:
        connection.close()


def stored(at: StoreAt, seq: int) -> tuple[str, str]:
    (text, digest), *_ = sql(at, "SELECT record, hash FROM audit WHERE seq = ?", (seq,))
    return str(text), str(digest)


def forge(record: dict[str, Any]) -> tuple[str, str]:
    """A record's canonical text and its hash, as an attacker would compute them."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text, hashlib.sha256(text.encode()).hexdigest()


def failed(result: subprocess.CompletedProcess[str], record: int) -> str:
    assert result.returncode == 1, result
    assert result.stdout.startswith(f"FAILED at record {record}: "), result.stdout
    assert "Traceback" not in result.stderr
    return result.stdout


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- verify ------------------------------------------------------------------------------


def test_an_intact_trail_verifies_with_its_count_and_head(trail: StoreAt) -> None:
    text, digest = stored(trail, RECORDS)
    assert hashlib.sha256(text.encode()).hexdigest() == digest
    result = audit_cli(trail, "verify")
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == [
        f"ok: {RECORDS} records verified in {trail.open().backend.location}",
        f"head {RECORDS}:{digest}",
    ]
    earlier = audit_cli(trail, "verify", "--head", f"3:{stored(trail, 3)[1]}")
    assert earlier.returncode == 0, earlier


def test_an_edited_field_is_named(trail: StoreAt) -> None:
    sql(
        trail,
        "UPDATE audit SET record = replace(record, ?, ?) WHERE seq = 4",
        (
            '"outcome":"denied"',
            '"outcome":"signed"',
        ),
    )
    out = failed(audit_cli(trail, "verify"), 4)
    assert "record 4 was altered" in out
    assert "records 1-3 before it verify" in out


def test_an_edited_and_rehashed_record_is_named(trail: StoreAt) -> None:
    record = json.loads(stored(trail, 4)[0]) | {"outcome": "signed"}
    text, digest = forge(record)
    sql(trail, "UPDATE audit SET record = ?, hash = ? WHERE seq = 4", (text, digest))
    out = failed(audit_cli(trail, "verify"), 5)
    assert "record 5 does not follow record 4" in out
    assert "record 4 was altered" in out


def test_a_deleted_record_is_named(trail: StoreAt) -> None:
    sql(trail, "DELETE FROM audit WHERE seq = 3")
    assert "record 3 was removed" in failed(audit_cli(trail, "verify"), 3)


def test_a_deleted_record_with_the_rest_renumbered_is_caught(trail: StoreAt) -> None:
    sql(trail, "DELETE FROM audit WHERE seq = 3")
    for seq in range(4, RECORDS + 1):
        sql(trail, "UPDATE audit SET seq = ? WHERE seq = ?", (seq - 1, seq))
    assert "record 3 holds the content of record 4" in failed(audit_cli(trail, "verify"), 3)


def test_two_swapped_records_are_named(trail: StoreAt) -> None:
    (text2, hash2), (text3, hash3) = stored(trail, 2), stored(trail, 3)
    sql(trail, "UPDATE audit SET record = ?, hash = ? WHERE seq = 2", (text3, hash3))
    sql(trail, "UPDATE audit SET record = ?, hash = ? WHERE seq = 3", (text2, hash2))
    assert "record 2 holds the content of record 3" in failed(audit_cli(trail, "verify"), 2)


def test_an_inserted_record_is_named(trail: StoreAt) -> None:
    for seq in range(RECORDS, 2, -1):  # make room at 3, from the top down
        sql(trail, "UPDATE audit SET seq = ? WHERE seq = ?", (seq + 1, seq))
    text, digest = forge(
        fields(3) | {"to": "0x" + "ee" * 20, "seq": 3, "prev_hash": stored(trail, 2)[1]}
    )
    sql(trail, "INSERT INTO audit (seq, record, hash) VALUES (?, ?, ?)", (3, text, digest))
    out = failed(audit_cli(trail, "verify"), 4)
    assert "record 4 holds the content of record 3" in out


def test_a_record_appended_past_the_head_is_named(trail: StoreAt) -> None:
    text, digest = forge(fields(7) | {"seq": 7, "prev_hash": stored(trail, RECORDS)[1]})
    sql(trail, "INSERT INTO audit (seq, record, hash) VALUES (?, ?, ?)", (7, text, digest))
    out = failed(audit_cli(trail, "verify"), 7)
    assert "record 7 was inserted after the store's head (record 6)" in out


def test_a_row_with_no_usable_position_is_named(trail: StoreAt) -> None:
    # SQLite's non-INTEGER primary key takes NULL and text from a hand-made row;
    # PostgreSQL refuses both, which is what the second half checks.
    text, digest = forge(fields(7) | {"seq": 7, "prev_hash": stored(trail, RECORDS)[1]})
    for seq, said, named in (
        ("zz", "has the position 'zz', not a number", RECORDS + 1),
        (2.5, "a row after record 2 has the position 2.5", 3),  # sorted among the records
        (None, "no position", RECORDS + 1),
    ):
        try:
            sql(
                trail, "INSERT INTO audit (seq, record, hash) VALUES (?, ?, ?)", (seq, text, digest)
            )
        except Exception:  # noqa: BLE001 - the database refused the row: nothing to find
            assert trail.backend == "postgresql"
            continue
        assert trail.backend == "sqlite"
        assert said in failed(audit_cli(trail, "verify"), named)
        exported = audit_cli(trail, "export")
        assert exported.returncode == 0, exported
        assert len(exported.stdout.splitlines()) == RECORDS  # the records, not the stray row
        sql(trail, "DELETE FROM audit WHERE seq = ? OR seq IS NULL", (seq,))


def test_a_truncated_tail_is_caught_by_the_stores_head(trail: StoreAt) -> None:
    sql(trail, "DELETE FROM audit WHERE seq > 4")
    out = failed(audit_cli(trail, "verify"), 5)
    assert "records after 4 were removed" in out


def test_a_tail_truncated_with_the_head_is_caught_by_a_head_printed_earlier(
    trail: StoreAt,
) -> None:
    printed = audit_cli(trail, "verify").stdout.splitlines()[-1].removeprefix("head ")
    assert printed == f"{RECORDS}:{stored(trail, RECORDS)[1]}"
    sql(trail, "DELETE FROM audit WHERE seq > 4")
    sql(trail, "UPDATE audit_head SET seq = 4, hash = ? WHERE id = 1", (stored(trail, 4)[1],))
    # Without the earlier head, a consistent shorter trail is all there is to see ...
    assert audit_cli(trail, "verify").returncode == 0
    # ... with it, the cut is named.
    out = failed(audit_cli(trail, "verify", "--head", printed), RECORDS)
    assert f"the head printed earlier (record {RECORDS}" in out
    assert "truncated" in out


def test_a_rewritten_tail_is_caught_by_a_head_printed_earlier(trail: StoreAt) -> None:
    printed = audit_cli(trail, "verify").stdout.splitlines()[-1].removeprefix("head ")
    # Rewrite record 5 and re-chain 6 and the head: consistent, but not what was printed.
    previous = stored(trail, 4)[1]
    for seq in (5, 6):
        record = json.loads(stored(trail, seq)[0]) | {"prev_hash": previous}
        if seq == 5:
            record["to"] = "0x" + "ee" * 20
        text, previous = forge(record)
        sql(trail, "UPDATE audit SET record = ?, hash = ? WHERE seq = ?", (text, previous, seq))
    sql(trail, "UPDATE audit_head SET hash = ? WHERE id = 1", (previous,))
    assert audit_cli(trail, "verify").returncode == 0
    assert "is not in the trail" in failed(audit_cli(trail, "verify", "--head", printed), 6)


# -- export ------------------------------------------------------------------------------


def test_export_jsonl_lines_rehash_to_their_hash(trail: StoreAt) -> None:
    result = audit_cli(trail, "export")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) == RECORDS
    previous = "0" * 64
    for n, line in enumerate(lines, start=1):
        record = json.loads(line)
        assert set(audit.EXPORT_FIELDS[:12]) <= set(record)
        assert (record["seq"], record["prev_hash"]) == (n, previous)
        assert {k: record[k] for k in fields(n)} == fields(n)
        digest = record.pop("hash")
        assert forge(record)[1] == digest == stored(trail, n)[1]
        previous = digest


def test_export_since_keeps_later_records(trail: StoreAt) -> None:
    result = audit_cli(trail, "export", "--since", "2026-03-04")
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [4, 5, 6]
    # 13:00 at +01:00 is 12:00 UTC, record 4's time exactly.
    result = audit_cli(trail, "export", "--since", "2026-03-04T13:00:00+01:00")
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [4, 5, 6]
    result = audit_cli(trail, "export", "--since", "2026-03-04T12:00:01Z")
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [5, 6]


def test_export_csv_has_the_contract_columns(trail: StoreAt) -> None:
    result = audit_cli(trail, "export", "--format", "csv", "--since", "2026-03-05")
    assert result.returncode == 0, result
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[:12] == [
        "seq", "time", "tool", "outcome", "digest", "tx_hash",
        "chain_id", "to", "rule", "client", "prev_hash", "hash",
    ]  # fmt: skip
    assert [row["seq"] for row in rows] == ["5", "6"]
    six = rows[1]
    assert (six["outcome"], six["rule"], six["tx_hash"]) == ("denied", "max_per_day", "")
    assert (six["chain_id"], six["to"]) == ("8453", fields(6)["to"])
    assert six["hash"] == stored(trail, 6)[1]
    assert six["prev_hash"] == stored(trail, 5)[1]


def test_export_csv_defuses_spreadsheet_formulas(tmp_path: Path) -> None:
    store_at = StoreAt("sqlite", state_dir=tmp_path)  # shaping output: one backend will do
    store = store_at.open()
    store.write(lambda c: audit.append(c, fields(1) | {"client": '=HYPERLINK("http://x")'}))
    store.close()
    rows = list(
        csv.DictReader(io.StringIO(audit_cli(store_at, "export", "--format", "csv").stdout))
    )
    assert rows[0]["client"] == '\'=HYPERLINK("http://x")'
    # JSON lines stay exact: they are what re-hashes.
    assert json.loads(audit_cli(store_at, "export").stdout)["client"] == '=HYPERLINK("http://x")'


# -- tail --------------------------------------------------------------------------------


def test_tail_prints_the_last_records(trail: StoreAt) -> None:
    result = audit_cli(trail, "tail", "-n", "2")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["5", "6"]
    assert lines[1].split()[1:4] == ["2026-03-06T12:00:00Z", "sign_transaction", "denied"]
    assert "rule=max_per_day" in lines[1]
    assert f"to={fields(6)['to']}" in lines[1]


def test_tail_follow_prints_new_records_as_they_arrive(trail: StoreAt) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_STATE")}
    follower = subprocess.Popen(
        [CLI, "audit", "tail", "-n", "1", "--follow", "--interval", "0.1", *trail.cli_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().split()[0] == "6"
        store = trail.open()
        for n in (7, 8):
            store.write(lambda c, n=n: audit.append(c, fields(n) | {"client": f"late {n}"}))
        store.close()
        for n in (7, 8):
            line = follower.stdout.readline()
            assert line.split()[0] == str(n)
            assert f'client="late {n}"' in line
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


def test_tail_escapes_what_a_terminal_would_run(tmp_path: Path) -> None:
    store_at = StoreAt("sqlite", state_dir=tmp_path)
    store = store_at.open()
    hostile = "evil\x1b[2J\x1b]0;pwned\x07\u202e outcome=signed"
    store.write(lambda c: audit.append(c, fields(2) | {"client": hostile}))
    store.close()
    line = audit_cli(store_at, "tail").stdout
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "\u202e" not in line
    assert '"evil\\u001b[2J\\u001b]0;pwned\\u0007\\u202e outcome=signed"' in line
    assert line.split()[3] == "denied"


# -- where the trail is, and when it is not ----------------------------------------------


def test_no_trail_is_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    state = tmp_path / "never-used"
    for command in ("verify", "export", "tail"):
        line = usage_error(audit_cli(StoreAt("sqlite", state_dir=state), command))
        assert f"no trail at {state / 'vault.sqlite3'}" in line
    assert not state.exists()


def test_no_trail_in_an_empty_database_and_nothing_is_created(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    line = usage_error(audit_cli(StoreAt("postgresql", state_url=postgres_url), "verify"))
    assert "no trail at postgresql://postgres:***@127.0.0.1" in line
    assert postgres_server.password not in line
    database, schema = database_and_schema(postgres_url)
    with postgres_server.admin(database) as admin:
        tables = admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
        assert tables.fetchall() == []


def test_an_unreachable_store_is_named_without_its_password() -> None:
    at = StoreAt("postgresql", state_url="postgresql://vault:Sekr3t-pw@127.0.0.1:1/vault")
    line = usage_error(audit_cli(at, "verify"))
    assert line.startswith("agentic-vault audit verify: error: state_unavailable: ")
    assert "not reachable" in line
    assert "Sekr3t-pw" not in line


def test_the_environment_names_the_store(trail: StoreAt, tmp_path: Path) -> None:
    variable = "VAULT_STATE_URL" if trail.state_url else "VAULT_STATE_DIR"
    result = audit_cli(None, "verify", HOME=str(tmp_path), **{variable: trail.location})
    assert result.returncode == 0, result
    assert result.stdout.startswith(f"ok: {RECORDS} records")


def test_a_read_only_auditor_can_verify_beside_the_servers(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = StoreAt("postgresql", state_url=postgres_url).open()
    store.write(lambda c: audit.append(c, fields(1)))
    store.close()
    database, schema = database_and_schema(postgres_url)
    auditor = f"auditor_{schema}"
    with postgres_server.admin(database) as admin:
        admin.execute(f"CREATE ROLE {auditor} LOGIN PASSWORD 'auditor-pw-9'")
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {auditor}")
        for table in ("audit", "audit_head", "schema_version"):
            admin.execute(f"GRANT SELECT ON {schema}.{table} TO {auditor}")
    url = postgres_server.as_user(postgres_url, auditor, "auditor-pw-9")
    result = audit_cli(StoreAt("postgresql", state_url=url), "verify")
    assert result.returncode == 0, result
    assert result.stdout.startswith("ok: 1 records")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["verify", "--head", "6:not-a-hash"], "--head"),
        (["export", "--since", "yesterday"], "--since"),
        (["export", "--format", "xml"], "--format"),
        (["tail", "-n", "-3"], "-n"),
        (["verify", "--state-dir", "a", "--state-url", "postgresql://x"], "--state-url"),
    ],
)
def test_usage_errors_are_one_line_naming_the_option(args: list[str], named: str) -> None:
    line = usage_error(audit_cli(None, *args))
    assert named in line


def test_audit_without_a_command_shows_its_help() -> None:
    result = audit_cli(None)
    assert result.returncode == 2
    assert "verify" in result.stderr
    assert "export" in result.stderr
