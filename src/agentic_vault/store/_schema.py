"""The store's tables, as numbered migrations the server applies itself.

Each migration is a list of statements both databases accept. ``migrate``
runs inside an exclusive transaction, so several servers starting at once on
one PostgreSQL apply each migration exactly once; a store written by a newer
version is refused rather than misread.

    audit        one row per record: seq, its canonical JSON, its hash
    audit_head   the last record's seq and hash (a truncated tail disagrees with it)
    ledger       amounts reserved or kept against rolling caps (max_per_day, the rate)
    approvals    requests waiting for, or decided by, a person
    tokens       HTTP bearer tokens, by name, stored as their SHA-256 only
    store_meta   the heartbeat health_check writes to prove the store is writable
"""

from __future__ import annotations

from ._backend import Connection

GENESIS_HASH = "0" * 64

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE audit (
            seq BIGINT PRIMARY KEY,
            record TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        """CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')",
        """CREATE TABLE ledger (
            id TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            amount TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            state TEXT NOT NULL,
            intent_seq BIGINT
        )""",
        "CREATE INDEX ledger_scope_created ON ledger (scope, created)",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            digest TEXT NOT NULL,
            policy_sha256 TEXT NOT NULL,
            tool TEXT NOT NULL,
            summary TEXT NOT NULL,
            client TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            expires DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            decided DOUBLE PRECISION,
            channel TEXT,
            used DOUBLE PRECISION
        )""",
        "CREATE INDEX approvals_digest ON approvals (digest)",
        """CREATE TABLE tokens (
            name TEXT PRIMARY KEY,
            token_sha256 TEXT NOT NULL UNIQUE,
            created DOUBLE PRECISION NOT NULL,
            revoked DOUBLE PRECISION,
            policy TEXT
        )""",
        "CREATE TABLE store_meta (id INTEGER PRIMARY KEY CHECK (id = 1), heartbeat TEXT)",
        "INSERT INTO store_meta (id, heartbeat) VALUES (1, NULL)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The store was written by a newer agentic-vault."""


def current_version(connection: Connection) -> int | None:
    """The schema version, read without the write lock; None if there is no schema yet."""
    connection.begin_read()
    try:
        rows = connection.query("SELECT version FROM schema_version")
    except Exception:  # noqa: BLE001 - no such table (each database words it its own way)
        return None
    finally:
        connection.rollback()
    return int(rows[0][0]) if rows else None


def migrate(connection: Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns the version found before.

    A current schema costs one read: readers and servers starting beside a busy
    writer do not queue for its lock.
    """
    found = current_version(connection)
    if found == SCHEMA_VERSION:
        return found
    connection.begin_exclusive()
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        rows = connection.query("SELECT version FROM schema_version")
        found = int(rows[0][0]) if rows else 0
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the store has schema version {found}, newer than this agentic-vault "
                f"understands ({SCHEMA_VERSION}); upgrade agentic-vault."
            )
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                connection.execute(statement)
        if not rows:
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif found != SCHEMA_VERSION:
            connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return found
