"""Fixtures for the durable store: a real PostgreSQL per test worker, and both backends.

    postgres_server    one cluster per xdist worker, started on first use (tests.postgres)
    postgres_url       a fresh, empty store on it for one test (a schema of its own)
    postgres_control   the server, for a test that stops it and starts it again
    store_at           parametrized: the same test on SQLite and on PostgreSQL

No binaries means failed tests with the command that installs them, never skipped
ones: CI must not pass without having run against PostgreSQL.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentic_vault.store import Store, open_store

from .postgres import PostgresServer, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    atexit.register(server.destroy)  # also when the session dies without its teardown
    try:
        server.start()
    except PostgresUnavailable as exc:
        server.destroy()
        pytest.fail(f"PostgreSQL would not start: {exc}", pytrace=False)
    yield server
    server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A URL with a password, naming an empty store of this test's own (a schema)."""
    return postgres_server.create_schema()


@pytest.fixture
def postgres_control(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The worker's server, running again after the test whatever the test did to it."""
    yield postgres_server
    if not postgres_server.running():
        postgres_server.start()


@dataclass(frozen=True)
class StoreAt:
    """Where one test's store lives, on either backend."""

    backend: str  # "sqlite" | "postgresql"
    state_dir: Path | None = None
    state_url: str | None = None

    @property
    def location(self) -> str:
        return self.state_url or str(self.state_dir)

    @property
    def cli_args(self) -> list[str]:
        """The option that points an ``agentic-vault`` command at it."""
        if self.state_url:
            return ["--state-url", self.state_url]
        return ["--state-dir", str(self.state_dir)]

    def open(self) -> Store:
        return open_store(self.state_dir, self.state_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> StoreAt:
    if request.param == "sqlite":
        return StoreAt("sqlite", state_dir=tmp_path / "state")
    return StoreAt("postgresql", state_url=request.getfixturevalue("postgres_url"))
