"""What the store needs from a database: one small interface, two implementations.

    Backend ──connect()──▶ Connection: begin_exclusive · begin_read · execute · query
      │                                 commit · rollback · close
      ├── SqliteBackend     embedded default: one file under --state-dir (WAL, durable commits)
      └── PostgresBackend   --state-url: one database shared by several servers

SQL is written once, with ``?`` placeholders and column types both databases
accept (TEXT, BIGINT, DOUBLE PRECISION); a backend translates the placeholders.
Every write runs inside ``begin_exclusive()``, which serialises writers across
threads, processes and servers (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
advisory transaction lock), so the audit chain stays one line and a ledger sum
is read and reserved in one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

Row = tuple[Any, ...]


class Connection(Protocol):
    """One database session, used by one thread at a time."""

    def begin_exclusive(self) -> None:
        """Start a write transaction that excludes every other writer until it ends."""

    def begin_read(self) -> None:
        """Start a read transaction that sees one consistent snapshot."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one query; returns every row."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Where the state lives, and how to open a session on it."""

    name: str  # "sqlite" | "postgresql", as health_check reports it
    location: str  # for messages: a path, or a URL without its password

    def connect(self) -> Connection:
        """A new session; raises the database's own error when it cannot be opened."""

    def is_database_error(self, error: BaseException) -> bool:
        """Whether ``error`` comes from the database (as opposed to a bug of ours)."""

    def explain(self, error: BaseException) -> str:
        """What went wrong and how to fix it, in one or two sentences, for an operator."""
