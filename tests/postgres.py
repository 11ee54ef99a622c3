"""A real PostgreSQL server for the tests, from the machine's own server binaries.

    PostgresServer.start() ── initdb (once) ── pg_ctl start ──▶ 127.0.0.1:PORT + a unix socket
    server.create_schema()   ──▶ postgresql://postgres:PASSWORD@127.0.0.1:PORT/vault_tests
                                     ?options=-c search_path=store_N   (a fresh, empty store)
    server.stop() / server.start()   the fault tests stop it under a live store and bring it back

Debian ships the binaries in ``/usr/lib/postgresql/VERSION/bin`` (not on PATH);
``scripts/test`` installs the ``postgresql`` package when they are missing.
``initdb`` refuses to run as root, so as root the data directory belongs to the
``postgres`` user and every server command runs through ``runuser -u postgres``.
TCP connections need the superuser's password (so the tests see a URL with a
password in it, as operators write them); fsync stays on, as in production.

A test's store is a schema of its own in one shared database, chosen by the
URL's ``search_path``: milliseconds, where CREATE DATABASE copies a template
(half a second on a busy machine) and leaves files that take seconds to delete.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

SUPERUSER = "postgres"
INSTALL_HINT = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found in "
    "/usr/lib/postgresql/*/bin, on PATH or in $PG_BINDIR. The store tests need a real "
    "PostgreSQL: run scripts/test as root (it installs Debian's postgresql package), or "
    "install it yourself (apt-get install postgresql; or set PG_BINDIR to a directory "
    "holding initdb and pg_ctl)."
)


class PostgresUnavailable(Exception):
    """No server binaries, or a server that would not start; the message says what to do."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: $PG_BINDIR, Debian's, then PATH."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))

    def major(path: str) -> float:
        version = Path(path).parent.parent.name
        return float(version) if version.replace(".", "", 1).isdigit() else 0.0

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major, reverse=True)
    candidates += [Path(path).parent for path in debian]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise PostgresUnavailable(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One throw-away cluster in a temporary directory; see the module docstring."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="agentic-vault-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.start_seconds = 0.0  # initdb + first start, for the report
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses root: the cluster belongs to the postgres user.
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root, but there is no {SUPERUSER!r} user to run PostgreSQL "
                    "as (Debian's postgresql package creates it: apt-get install postgresql)"
                ) from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", SUPERUSER, "--"]
        self._databases = itertools.count(1)
        self._schemas = itertools.count(1)
        self._shared_database = ""

    def owner(self) -> tuple[int, int]:
        """The uid and gid the server runs as (files it must write belong to them)."""
        if self._run_as:
            entry = pwd.getpwnam(SUPERUSER)
            return entry.pw_uid, entry.pw_gid
        return os.getuid(), os.getgid()

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        if not self.data.exists():
            self._initdb()
        for attempt in range(3):
            # A port picked free may be taken before the server binds it: pick again.
            self.port = self.port if attempt == 0 and self.port else free_port()
            try:
                self._pg_ctl(
                    "start",
                    "-w",
                    "-t",
                    "30",
                    "-l",
                    str(self.log),
                    "-o",
                    f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                    f"-c unix_socket_directories={self.root}",
                )
                break
            except PostgresUnavailable:
                if attempt == 2:
                    raise
        if not self.start_seconds:
            self.start_seconds = time.monotonic() - began

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends every session, as an operator's restart does."""
        self._pg_ctl("stop", "-w", "-t", "30", "-m", mode)

    def running(self) -> bool:
        status = subprocess.run(
            [*self._run_as, str(self.bindir / "pg_ctl"), "status", "-D", str(self.data)],
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def destroy(self) -> None:
        with contextlib.suppress(PostgresUnavailable):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _initdb(self) -> None:
        password_file = self.root / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._run_as:
            owner = pwd.getpwnam(SUPERUSER)
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        try:
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(password_file),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",  # a throw-away cluster; the server itself keeps fsync on
            )
        finally:
            password_file.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            # Small, so that several test workers (and helpers) fit on one machine.
            conf.write("shared_buffers = 16MB\nmax_connections = 60\n")
            conf.write("dynamic_shared_memory_type = mmap\n")

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args)

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._run_as, *command], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"{Path(command[0]).name} {command[1:3]} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{log}"
            )

    # -- databases ---------------------------------------------------------------------

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str = "") -> str:
        secret = password or (self.password if user == SUPERUSER else "")
        auth = f"{user}:{secret}" if secret else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser session (autocommit) for setting up and tampering."""
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def create_schema(self) -> str:
        """A URL whose store lives in a new, empty schema of the shared test database."""
        if not self._shared_database:
            self._shared_database = self.create_database()
        name = f"store_{next(self._schemas)}"
        with self.admin(self._shared_database) as session:
            session.execute(f"CREATE SCHEMA {name}")
        return f"{self.url(self._shared_database)}?options=-c%20search_path%3D{name}"

    def create_database(self) -> str:
        """A new, empty database; returns its name."""
        name = f"test_{os.getpid()}_{next(self._databases)}"
        with self.admin() as session:
            session.execute(f'CREATE DATABASE "{name}"')
        return name

    def as_user(self, url: str, user: str, password: str) -> str:
        """``url`` (one of ours) logging in as ``user`` instead of the superuser."""
        return url.replace(f"//{SUPERUSER}:{self.password}@", f"//{user}:{password}@", 1)


def database_and_schema(url: str) -> tuple[str, str]:
    """The database and store schema of a URL made by ``create_schema``."""
    path, _, options = url.rpartition("/")[2].partition("?")
    return path, options.rpartition("%3D")[2]
