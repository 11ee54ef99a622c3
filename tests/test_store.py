"""The durable store on SQLite and on a real PostgreSQL: one chain, one cap, faults survived.

Concurrency is real: threads sharing one ``Store``, and separate processes (each
its own "server") on one SQLite file or one PostgreSQL database, started
together behind a barrier. Chains are checked with an independent hash-chain
walk, not only with ``audit.verify``. Faults are injected at the file-system
boundary (a tiny tmpfs filled up, remounted read-only) and by stopping the
PostgreSQL server under a live store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentic_vault._errors import StateUnavailable
from agentic_vault.store import Connection, Store, audit, open_store
from agentic_vault.store._postgres import PostgresBackend, mask_password
from agentic_vault.store._schema import SCHEMA_VERSION, migrate

from .conftest_postgres import StoreAt
from .disk_faults import fill, remount
from .postgres import PostgresServer, database_and_schema

GENESIS = "0" * 64


# -- helpers -----------------------------------------------------------------------------


def append(tool: str, **fields: Any) -> Any:
    """A write operation appending one record (the pipeline's intents look like this)."""
    return lambda connection: audit.append(connection, {"tool": tool, **fields})


def stored_rows(store: Store) -> list[tuple[int, str, str]]:
    rows = store.read(lambda c: c.query("SELECT seq, record, hash FROM audit ORDER BY seq"))
    return [(int(seq), str(text), str(digest)) for seq, text, digest in rows]


def assert_one_chain(store: Store, count: int) -> list[dict[str, Any]]:
    """Walk the chain with hashlib and json alone; returns the records, in order."""
    rows = stored_rows(store)
    assert [seq for seq, _, _ in rows] == list(range(1, count + 1))
    previous = GENESIS
    records = []
    for seq, text, digest in rows:
        record = json.loads(text)
        assert hashlib.sha256(text.encode()).hexdigest() == digest, seq
        assert record["seq"] == seq
        assert record["prev_hash"] == previous, seq
        previous = digest
        records.append(record)
    head = store.read(lambda c: c.query("SELECT seq, hash FROM audit_head"))
    assert [(int(head[0][0]), head[0][1])] == [(count, previous)]
    verdict = store.read(audit.verify)
    assert (verdict.ok, verdict.count) == (True, count), verdict
    return records


# A separate process per "server": open the store, wait at the barrier, then work.
WORKER = r"""
import sys, threading, time
from dataclasses import dataclass
from agentic_vault.store import audit, ledger, open_store
from agentic_vault.store._schema import migrate

mode, kind, where, count, tag = sys.argv[1:6]
count = int(count)
store = open_store(where, None) if kind == "dir" else open_store(None, where)

@dataclass(frozen=True)
class Reservation:
    scope: str = "native:1"
    amount: int = 1
    cap: int = 50
    window_seconds: int = 86400

def hold_one(connection):
    now = time.time()
    if ledger.check(connection, [Reservation()], now) is not None:
        return False
    ledger.hold(connection, [Reservation()], now)
    return True

connection = store.backend.connect() if mode == "migrate" else None
print("ready", flush=True)
sys.stdin.readline()
if mode == "migrate":
    print(migrate(connection))
    connection.close()
else:
    results = []
    def work(thread):
        for n in range(count // 4):
            if mode == "append":
                store.write(lambda c: audit.append(c, {"tool": tag, "thread": thread, "n": n}))
            else:
                results.append(store.write(hold_one))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(sum(results) if mode == "hold" else "done")
store.close()
"""


def run_together(at: StoreAt, mode: str, count: int = 0, processes: int = 2) -> list[str]:
    """Start ``processes`` workers, release them at once, return what each printed."""
    kind, where = ("url", at.state_url) if at.state_url else ("dir", str(at.state_dir))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, mode, kind, str(where), str(count), f"p{index}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready", worker.stderr
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=90) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, errors) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, errors
    return [out.strip() for out, _ in outputs]


# -- schema ------------------------------------------------------------------------------


def test_migrations_run_once_and_are_idempotent(store_at: StoreAt) -> None:
    store = store_at.open()
    store.write(append("first"))
    store.close()
    connection = store.backend.connect()
    try:
        assert migrate(connection) == SCHEMA_VERSION  # found current: nothing to apply
        assert migrate(connection) == SCHEMA_VERSION
        assert connection.query("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
        assert connection.query("SELECT count(*) FROM audit_head") == [(1,)]
        assert connection.query("SELECT count(*) FROM store_meta") == [(1,)]
    finally:
        connection.close()
    assert_one_chain(store_at.open(), 1)


def test_two_processes_migrating_a_fresh_store_at_once_apply_it_once(store_at: StoreAt) -> None:
    found = run_together(store_at, "migrate")
    # Exactly one of them found an empty store; the other waited and found it current.
    assert sorted(found) == sorted(["0", str(SCHEMA_VERSION)])
    store = store_at.open()
    assert store.read(lambda c: c.query("SELECT version FROM schema_version")) == [
        (SCHEMA_VERSION,)
    ]
    store.write(append("after"))
    assert_one_chain(store, 1)


# -- one chain under concurrency ---------------------------------------------------------


def test_appends_from_many_threads_form_one_chain(store_at: StoreAt) -> None:
    store = store_at.open()
    seqs: dict[int, list[int]] = {}

    def append_all(thread: int) -> None:
        # "%" and "?" in values: placeholders are translated in SQL only, never in data.
        seqs[thread] = [
            store.write(append("t", thread=thread, n=n, note="100% ? %s")).seq for n in range(25)
        ]

    threads = [threading.Thread(target=append_all, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seq for run in seqs.values() for seq in run) == list(range(1, 401))
    for run in seqs.values():
        assert run == sorted(run)  # one thread's records keep their order
    records = assert_one_chain(store, 400)
    for record in records:
        assert seqs[record["thread"]][record["n"]] == record["seq"]
        assert record["note"] == "100% ? %s"
    store.close()


def test_appends_from_two_processes_form_one_chain(store_at: StoreAt) -> None:
    assert run_together(store_at, "append", count=120) == ["done", "done"]
    records = assert_one_chain(store_at.open(), 240)
    for tag in ("p0", "p1"):
        mine = [(r["thread"], r["n"]) for r in records if r["tool"] == tag]
        assert sorted(mine) == [(t, n) for t in range(4) for n in range(30)]
        for thread in range(4):
            # Each writer's own records appear in the order it wrote them.
            assert [n for t, n in mine if t == thread] == list(range(30))


def test_a_burst_of_writes_shares_few_commits(store_at: StoreAt) -> None:
    store = store_at.open()
    store.write(append("warm-up"))  # connect and migrate outside the burst
    before = store.commits
    barrier = threading.Barrier(64)
    done: list[int] = []

    def write_one(n: int) -> None:
        barrier.wait()
        done.append(store.write(append("burst", n=n)).seq)

    threads = [threading.Thread(target=write_one, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    commits = store.commits - before
    assert sorted(done) == list(range(2, 66))
    assert commits <= 16, f"64 concurrent writes took {commits} commits"
    assert_one_chain(store, 65)
    store.close()


# -- the ledger never overshoots a cap ---------------------------------------------------


def test_two_processes_racing_for_one_cap_never_overshoot(store_at: StoreAt) -> None:
    # 2 processes x 4 threads x 20 attempts of 1 against a cap of 50.
    held = run_together(store_at, "hold", count=80)
    assert sum(int(count) for count in held) == 50
    store = store_at.open()
    rows = store.read(
        lambda c: c.query("SELECT amount, state FROM ledger WHERE scope = ?", ("native:1",))
    )
    assert len(rows) == 50
    assert sum(int(amount) for amount, _ in rows) == 50
    assert {state for _, state in rows} == {"reserved"}


# -- faults: a file system that fills up or turns read-only ------------------------------


def test_sqlite_on_a_full_disk_refuses_then_resumes(
    tiny_tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(tiny_tmpfs / "state")
    for n in range(3):
        store.write(append("before", n=n))
    filler = fill(tiny_tmpfs)
    with pytest.raises(StateUnavailable) as refused:
        # Larger than the WAL has room for: SQLite must take new blocks.
        store.write(append("while full", pad="x" * 200_000))
    message = str(refused.value)
    assert message.startswith("state_unavailable: ")
    assert "full" in message
    assert str(tiny_tmpfs / "state") in message
    health = store.health()
    assert not health.ok
    assert health.problem is not None
    assert "full" in health.problem
    filler.unlink()
    assert store.write(append("after")).seq == 4  # nothing was recorded while full
    assert store.health().ok
    assert "works again" in caplog.text
    assert [r["tool"] for r in assert_one_chain(store, 4)] == ["before"] * 3 + ["after"]
    store.close()


def test_sqlite_on_a_read_only_file_system_refuses_then_resumes(tiny_tmpfs: Path) -> None:
    state = tiny_tmpfs / "state"
    earlier = open_store(state)
    earlier.write(append("before"))
    earlier.close()
    # The kernel refuses a read-only remount while a file is open for writing: this is
    # the server (re)connecting to a state directory that turned read-only meanwhile.
    store = open_store(state)
    remount(tiny_tmpfs, "ro")
    try:
        with pytest.raises(StateUnavailable) as refused:
            store.write(append("while read-only"))
        assert "read-only" in str(refused.value)
        health = store.health()
        assert not health.ok
        assert health.problem is not None
        assert "read-only" in health.problem
    finally:
        remount(tiny_tmpfs, "rw")
    assert store.write(append("after")).seq == 2
    assert store.health().ok
    assert [r["tool"] for r in assert_one_chain(store, 2)] == ["before", "after"]
    store.close()


# -- faults: PostgreSQL stopped and started under a live store ---------------------------


def test_postgres_stopped_refuses_within_seconds_then_resumes(
    postgres_control: PostgresServer, postgres_url: str
) -> None:
    store = open_store(None, postgres_url)
    store.write(append("before"))
    postgres_control.stop()
    began = time.monotonic()
    with pytest.raises(StateUnavailable) as refused:
        store.write(append("while stopped"))
    assert time.monotonic() - began < 5
    message = str(refused.value)
    assert "not reachable" in message
    assert "start the server" in message
    assert postgres_control.password not in message
    health = store.health()
    assert (health.ok, health.backend) == (False, "postgresql")
    assert health.problem is not None
    assert "not reachable" in health.problem
    postgres_control.start()
    assert store.write(append("after")).seq == 2  # the same Store, no restart
    assert store.health().ok
    assert [r["tool"] for r in assert_one_chain(store, 2)] == ["before", "after"]
    store.close()


def test_postgres_with_a_full_disk_refuses_then_resumes(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    # The store's tables live in a tablespace on a tiny tmpfs that belongs to the server.
    database, schema = database_and_schema(postgres_url)
    mountpoint = postgres_server.root / f"space_{schema}"
    mountpoint.mkdir()
    owner = postgres_server.owner()
    options = f"size=2m,mode=0700,uid={owner[0]},gid={owner[1]}"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.fail(
            f"mounting a tmpfs is not permitted here ({done.stderr.strip()}); run the "
            "suite as root with CAP_SYS_ADMIN.",
            pytrace=False,
        )
    with postgres_server.admin() as admin:
        admin.execute(f"CREATE TABLESPACE space_{schema} LOCATION '{mountpoint}'")
    store = open_store(None, f"{postgres_url}%20-c%20default_tablespace%3Dspace_{schema}")
    try:
        store.write(append("before"))
        filler = fill(mountpoint)
        with pytest.raises(StateUnavailable) as refused:
            # Random hex: TOAST cannot compress it into the space that is left.
            store.write(append("while full", pad=secrets.token_hex(200_000)))
        message = str(refused.value)
        assert "disk of the server" in message
        assert "full" in message
        assert postgres_server.password not in message
        # Not probed: a heartbeat still fits in the pages the tables already have.
        health = store.health(probe=False)
        assert health.problem is not None
        assert "full" in health.problem
        filler.unlink()
        assert store.write(append("after")).seq == 2
        assert [r["tool"] for r in assert_one_chain(store, 2)] == ["before", "after"]
    finally:
        store.close()
        with postgres_server.admin(database) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
        with postgres_server.admin() as admin:
            admin.execute(f"DROP TABLESPACE space_{schema}")
        subprocess.run(["umount", str(mountpoint)], check=True)


# -- PostgreSQL: what an operator is told ------------------------------------------------


def refusal(url: str, caplog: pytest.LogCaptureFixture, secret: str) -> str:
    """The StateUnavailable a write gets; neither it nor the log may hold ``secret``."""
    store = open_store(None, url)
    with caplog.at_level(logging.DEBUG), pytest.raises(StateUnavailable) as refused:
        store.write(append("x"))
    store.close()
    message = str(refused.value)
    assert secret not in message
    assert secret not in caplog.text
    assert secret not in store.backend.location
    return message


def test_wrong_password_is_named_and_never_shown(
    postgres_server: PostgresServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.as_user(postgres_url, "postgres", "not-the-Secret-42")
    message = refusal(url, caplog, "not-the-Secret-42")
    assert "refused the login" in message
    assert "password" in message


def test_missing_database_is_named_with_the_fix(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    message = refusal(postgres_server.url("no_such_db"), caplog, postgres_server.password)
    assert '"no_such_db" does not exist' in message
    assert "createdb no_such_db" in message


def test_a_user_without_rights_on_the_schema_is_told_what_to_grant(
    postgres_server: PostgresServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database, schema = database_and_schema(postgres_url)
    user = f"limited_{schema}"
    with postgres_server.admin() as admin:
        admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'limited-pw-7'")
    url = postgres_server.as_user(postgres_url, user, "limited-pw-7")
    # Not even USAGE: PostgreSQL sees no schema to create in.
    message = refusal(url, caplog, "limited-pw-7")
    assert "no schema has been selected" in message
    assert "GRANT USAGE, CREATE ON SCHEMA" in message
    # USAGE but no CREATE (as PostgreSQL 15 gives PUBLIC on schema public).
    with postgres_server.admin(database) as admin:
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {user}")
    message = refusal(url, caplog, "limited-pw-7")
    assert f"permission denied for schema {schema}" in message
    assert "GRANT ALL ON SCHEMA" in message
    with postgres_server.admin(database) as admin:
        admin.execute(f"GRANT CREATE ON SCHEMA {schema} TO {user}")
    store = open_store(None, url)
    assert store.write(append("now allowed")).seq == 1
    store.close()


def test_a_read_only_database_is_named(
    postgres_server: PostgresServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = postgres_server.create_database()  # its own: it is made read-only
    url = postgres_server.url(database)
    store = open_store(None, url)
    store.write(append("before"))
    store.close()
    with postgres_server.admin() as admin:
        admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    message = refusal(url, caplog, postgres_server.password)
    assert "read-only" in message


def test_a_writer_stuck_holding_the_lock_times_out_the_others(postgres_url: str) -> None:
    store = open_store(None, postgres_url)
    store.write(append("before"))
    store.close()
    # Another "server" holds the writers' lock and hangs; ours gives up after lock_timeout
    # (shortened through the URL, whose own settings win over ours).
    stuck = psycopg.connect(postgres_url, autocommit=True)
    try:
        stuck.execute("BEGIN")
        stuck.execute("SELECT pg_advisory_xact_lock(%s)", (int.from_bytes(b"agenticv", "big"),))
        hurried = open_store(None, postgres_url + "%20-c%20lock_timeout%3D300")
        began = time.monotonic()
        with pytest.raises(StateUnavailable) as refused:
            hurried.write(append("blocked"))
        assert time.monotonic() - began < 3
        assert "write lock" in str(refused.value)
        stuck.execute("ROLLBACK")
        assert hurried.write(append("after")).seq == 2
        hurried.close()
    finally:
        stuck.close()


def test_a_url_that_is_not_postgresql_is_refused_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    message = refusal("mysql://vault:hunter2-pw@db.example/vault", caplog, "hunter2-pw")
    assert "must be a postgresql:// URL" in message
    # A malformed key=value string: libpq would quote the part it chokes on.
    message = refusal("host=db password=hunter2-pw extra", caplog, "hunter2-pw")
    assert "not a valid PostgreSQL URL" in message


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://vault:s3cret@db:5432/vault", "postgresql://vault:***@db:5432/vault"),
        ("postgres://vault:p%40ss@db/vault", "postgres://vault:***@db/vault"),
        ("postgresql://vault:p@ss@db/vault", "postgresql://vault:***@db/vault"),
        (
            "postgresql://vault@db/vault?password=s3cret&sslmode=require",
            "postgresql://vault@db/vault?password=***&sslmode=require",
        ),
        (
            "host=db user=vault password=s3cret dbname=vault",
            "host=db user=vault password=*** dbname=vault",
        ),
        ("host=db password = 'it''s secret' dbname=vault", "host=db password = *** dbname=vault"),
        ("postgresql://db/vault", "postgresql://db/vault"),
    ],
)
def test_location_never_shows_a_password(given: str, shown: str) -> None:
    assert PostgresBackend(given).location == shown
    assert mask_password(f"failed: {given}!", given) == f"failed: {shown}!"


def test_store_reads_see_one_snapshot(store_at: StoreAt) -> None:
    store = store_at.open()
    for n in range(3):
        store.write(append("r", n=n))
    seen: list[int] = []

    def read_twice(connection: Connection) -> None:
        seen.append(int(connection.query("SELECT count(*) FROM audit")[0][0]))
        store.write(append("meanwhile"))  # committed by the writer thread, elsewhere
        seen.append(int(connection.query("SELECT count(*) FROM audit")[0][0]))

    store.read(read_twice)
    assert seen == [3, 3]
    assert_one_chain(store, 4)
    store.close()


def test_a_lone_surrogate_an_agent_sent_is_recorded_and_verifies(store_at: StoreAt) -> None:
    # Valid JSON that decodes to a string with no UTF-8 form (a client's name, say).
    hostile = json.loads('"claude \\ud800 code"')
    store = store_at.open()
    store.write(append("t", client=hostile))
    (record,) = assert_one_chain(store, 1)
    assert record["client"] == hostile
    store.close()
