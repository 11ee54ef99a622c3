"""Durable state: the audit trail, rolling sums, approvals and HTTP tokens.

    open_store(dir | url) ──▶ Store ──write(op)/read(op)──▶ Backend (SQLite | PostgreSQL)
                                         ops: audit.append · ledger.check/hold/settle · …

The store knows nothing of policies or signatures: the modules here are the
tables' operations (``audit``, ``ledger``, ``approvals``, ``tokens``), and the
signing pipeline composes them into transactions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ._backend import Backend, Connection
from ._sqlite import SqliteBackend
from ._store import StateHealth, Store

__all__ = [
    "Backend",
    "Connection",
    "StateHealth",
    "Store",
    "default_state_dir",
    "open_backend",
    "open_store",
]


def default_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/agentic-vault``, else ``~/.local/state/agentic-vault``."""
    base = environ.get("XDG_STATE_HOME", "").strip()
    if base:
        return Path(base) / "agentic-vault"
    return Path(environ.get("HOME") or Path.home()) / ".local" / "state" / "agentic-vault"


def open_backend(
    state_dir: Path | str | None = None,
    state_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Backend:
    """PostgreSQL when a URL is given, else SQLite in ``state_dir`` (or the default)."""
    if state_url:
        from ._postgres import PostgresBackend

        return PostgresBackend(state_url)
    return SqliteBackend(Path(state_dir) if state_dir else default_state_dir(environ))


def open_store(
    state_dir: Path | str | None = None,
    state_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Store:
    """A store on the chosen backend; nothing is opened until the first read or write."""
    return Store(open_backend(state_dir, state_url, environ))
