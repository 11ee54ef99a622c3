"""The embedded store: one SQLite file under the state directory.

WAL mode with ``synchronous=FULL``: a commit is on disk when it returns, and
readers (``audit verify`` in another shell) never block the writer. The
directory is created ``0700`` and the file ``0600``: the out-of-band approval
channel is only as strong as these permissions. Several processes may share
the file (a server and a shell command): ``BEGIN IMMEDIATE`` serialises their
writes, waiting up to ``BUSY_TIMEOUT`` for one another.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._backend import Row

DATABASE_FILE = "vault.sqlite3"
BUSY_TIMEOUT = 5.0


class SqliteConnection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def begin_exclusive(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def begin_read(self) -> None:
        self._db.execute("BEGIN DEFERRED")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, tuple(params)).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._db.execute(sql, tuple(params)).fetchall())

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()


class SqliteBackend:
    """``DIR/vault.sqlite3``; nothing is created until the first connection."""

    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / DATABASE_FILE
        self.location = str(self.path)

    def connect(self) -> SqliteConnection:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            # Created by us, so the umask cannot make it readable by others.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        except sqlite3.Error:
            db.close()
            raise
        return SqliteConnection(db)

    def is_database_error(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.Error | OSError)

    def explain(self, error: BaseException) -> str:
        text = str(error).lower()
        where = f"the state directory {self.directory}"
        if (
            "readonly" in text
            or "read-only" in text
            or isinstance(error, PermissionError)
            or _on_read_only_file_system(self.directory)
        ):
            return (
                f"{where} is read-only or not writable by this user ({error}); make it writable "
                "(the server resumes by itself) or point --state-dir at a writable directory."
            )
        if "full" in text or getattr(error, "errno", None) == 28:
            return f"the disk holding {where} is full ({error}); free space and signing resumes."
        if "locked" in text or "busy" in text:
            return (
                f"another process held the write lock on {self.path} for more than "
                f"{BUSY_TIMEOUT:g} s; find it (`fuser {self.path}`) or try again."
            )
        if "unable to open" in text or isinstance(error, OSError):
            return (
                f"cannot open {self.path} ({error}); check that {where} exists, is a directory "
                "and is writable by this user, or pass --state-dir."
            )
        if "i/o error" in text:
            # What a write on an open file gets when the kernel turns its file system
            # read-only after a device error (errors=remount-ro): the next attempt says so.
            return (
                f"the disk holding {where} failed a write ({error}); its file system may have "
                "turned read-only after a device error: check the kernel log (dmesg) and the "
                "disk, then remount it writable (the server resumes by itself) or point "
                "--state-dir at another directory."
            )
        if "malformed" in text or "not a database" in text:
            return (
                f"{self.path} is damaged ({error}); restore it from a backup, or move it away "
                "to start a new trail (and keep the old one for `agentic-vault audit verify`)."
            )
        return f"the store at {self.path} failed: {error}."


def _on_read_only_file_system(directory: Path) -> bool:
    """SQLite says only "unable to open database file" when WAL cannot create its files."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False
