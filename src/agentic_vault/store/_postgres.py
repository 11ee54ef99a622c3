"""The shared store: one PostgreSQL database behind ``--state-url``, via psycopg 3.

Several servers may point at one database. Writers exclude one another with a
transaction-level advisory lock on one fixed key, taken right after ``BEGIN``,
so the audit chain stays one line and a cap is checked and reserved in one step
across servers; the lock goes with the transaction, whether it commits, rolls
back or its session dies. Write transactions are READ COMMITTED on purpose:
every statement after the lock sees what the previous holder committed (under
REPEATABLE READ the snapshot would predate the lock and the chain would fork).

A stopped, unreachable or hung server must fail a write within seconds, not
hang a signature: a short connect timeout, TCP keepalives and a user timeout
for dead peers, and server-side statement, lock and idle-in-transaction
timeouts. Settings the URL gives itself win over these defaults.

The password in a URL never reaches a message or a log: ``location`` masks it,
and ``explain`` masks it in the driver's errors (libpq quotes a malformed
connection string whole).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from .._redact import URL_MASK, redact_url_credentials, url_passwords
from ._backend import Row

# "agenticv" as a big-endian 64-bit integer: the one lock every writer takes.
ADVISORY_LOCK_KEY = int.from_bytes(b"agenticv", "big")
CONNECT_TIMEOUT = 5  # seconds; libpq's smallest useful value is 2
STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 5000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 30000  # a writer frozen mid-transaction frees the lock
TCP_USER_TIMEOUT_MS = 10000
URL_SCHEMES = ("postgresql://", "postgres://")
MASK = URL_MASK

_DEFAULTS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    "application_name": "agentic-vault",
}
_OPTIONS = (
    f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS} "
    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"
)


class InvalidStateUrl(psycopg.ProgrammingError):
    """``--state-url`` is neither a postgresql:// URL nor a libpq connection string."""


@functools.lru_cache(maxsize=256)
def to_psycopg(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (our SQL has no ``?`` inside literals)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    """One session in autocommit mode: transactions are the explicit BEGINs below."""

    def __init__(self, connection: psycopg.Connection[Row]) -> None:
        self._db = connection

    def begin_exclusive(self) -> None:
        # Not READ WRITE: a database an operator set read-only must refuse, not be overridden.
        # One round trip: without parameters, both statements go in one simple query.
        self._db.execute(
            "BEGIN ISOLATION LEVEL READ COMMITTED; "
            f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY:d})"
        )

    def begin_read(self) -> None:
        self._db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(to_psycopg(sql), tuple(params)).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.execute(to_psycopg(sql), tuple(params)).fetchall()

    def commit(self) -> None:
        if self._db.info.transaction_status == TransactionStatus.INERROR:
            # PostgreSQL answers COMMIT of a failed transaction with a silent ROLLBACK.
            raise pg_errors.InFailedSqlTransaction("the transaction failed; nothing was committed")
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()


class PostgresBackend:
    """The database a ``postgresql://`` URL (or libpq connection string) names."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self._url = url.strip()
        self.location = mask_password(self._url, self._url)

    def connect(self) -> PostgresConnection:
        connection: psycopg.Connection[Row] = psycopg.connect(
            **connection_parameters(self._url), autocommit=True
        )
        return PostgresConnection(connection)

    def has_store(self) -> bool:
        """Whether a store was ever created in this database (read commands create none)."""
        connection = self.connect()
        try:
            rows = connection.query("SELECT to_regclass('schema_version') IS NOT NULL")
            return bool(rows[0][0])
        finally:
            connection.close()

    def is_database_error(self, error: BaseException) -> bool:
        return isinstance(error, psycopg.Error | OSError)

    def explain(self, error: BaseException) -> str:
        detail = self._masked(str(error).strip().splitlines()[0] if str(error).strip() else "")
        detail = detail or type(error).__name__
        state = getattr(error, "sqlstate", None) or ""
        text = str(error).lower()
        where = f"the PostgreSQL store at {self.location}"
        if isinstance(error, InvalidStateUrl):
            return str(error)  # masked when it was raised
        if (
            state in ("28P01", "28000")
            or "authentication failed" in text
            or ("no password supplied" in text)
        ):
            return (
                f"{where} refused the login ({detail}); check the user and password in "
                "--state-url (or ~/.pgpass, PGPASSWORD) and the server's pg_hba.conf."
            )
        if state == "3D000" or ("database" in text and "does not exist" in text):
            database = self._parameters().get("dbname") or "the database"
            return (
                f"{where}: {detail}; create it (createdb {database}, or CREATE DATABASE) "
                "or fix the database name in --state-url."
            )
        if state == "3F000" or "no schema has been selected" in text:
            return (
                f"{where} has no schema the user may create the store's tables in ({detail}); "
                "GRANT USAGE, CREATE ON SCHEMA public TO USER (or the schema named in its "
                "search_path), or make the user the database's owner."
            )
        if state == "42501" or isinstance(error, pg_errors.InsufficientPrivilege):
            return (
                f"{where} refused a statement ({detail}); the user in --state-url needs to own "
                "the database or have CREATE and USAGE on its schema (GRANT ALL ON SCHEMA "
                "public TO USER) and rights on the store's tables."
            )
        if state in ("53100", "53000") or "no space left" in text:
            return (
                f"the disk of the server behind {where} is full ({detail}); free space on it "
                "and signing resumes."
            )
        if state == "25006" or "read-only" in text:
            return (
                f"{where} is read-only ({detail}): point --state-url at the primary, or turn "
                "off default_transaction_read_only; signing resumes when it accepts writes."
            )
        if state == "55P03" or isinstance(error, pg_errors.LockNotAvailable):
            return (
                f"another session held the write lock of {where} past lock_timeout "
                f"({LOCK_TIMEOUT_MS / 1000:g} s unless --state-url sets it); find it in "
                "pg_stat_activity (wait_event_type 'Lock', an advisory lock) or try again."
            )
        if state == "57014":
            return (
                f"{where} cancelled a statement ({detail}; statement_timeout is "
                f"{STATEMENT_TIMEOUT_MS / 1000:g} s unless --state-url sets it); check the "
                "server's load and disk."
            )
        if state == "53300" or "too many" in text:
            return (
                f"{where} has no free connection slot ({detail}); raise max_connections or "
                "close idle sessions."
            )
        if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError | OSError):
            return (
                f"{where} is not reachable ({detail}); start the server or check the host and "
                "port in --state-url. Signing resumes, without a restart, once it answers."
            )
        return f"{where} failed: {detail}."

    def _parameters(self) -> dict[str, Any]:
        try:
            return connection_parameters(self._url)
        except psycopg.Error:
            return {}

    def _masked(self, text: str) -> str:
        return mask_password(text, self._url)


def connection_parameters(url: str) -> dict[str, Any]:
    """The URL's own parameters over our timeouts; raises ``InvalidStateUrl`` if unusable."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if not url or (scheme and not url.startswith(URL_SCHEMES)):
        got = f" (got {scheme.group(1)}://…)" if scheme else ""
        raise InvalidStateUrl(
            f"--state-url must be a postgresql:// URL{got}; write it as "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE."
        )
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # Not libpq's words: it quotes the malformed part, which may be the password itself.
        raise InvalidStateUrl(
            "--state-url is not a valid PostgreSQL URL or connection string; write it as "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters "
            "in the password)."
        ) from None
    options = f"{_OPTIONS} {given['options']}" if given.get("options") else _OPTIONS
    return {**_DEFAULTS, **given, "options": options}


# The user-info password of any URL: up to the last "@" before the host.
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.|'')*'?|[^\s&]*)", re.IGNORECASE
)


def mask_password(text: str, url: str = "") -> str:
    """``text`` with every password in it replaced: of a URL, a ``password=`` setting,
    and the one ``url`` carries wherever it appears (decoded, as libpq quotes it).

    >>> mask_password("postgresql://vault:s3cret@db:5432/vault?sslmode=require")
    'postgresql://vault:***@db:5432/vault?sslmode=require'
    >>> mask_password("host=db password='a b' dbname=vault")
    'host=db password=*** dbname=vault'
    """
    known = []
    for source in (text, url):
        for secret in url_passwords(source):
            known += [secret, unquote(secret)]
    if url:
        with contextlib.suppress(psycopg.Error):
            known.append(str(conninfo_to_dict(url).get("password") or ""))
    text = redact_url_credentials(text)
    text = _KEYWORD_PASSWORD.sub(lambda match: match["head"] + MASK, text)
    for secret in sorted(filter(None, set(known)), key=len, reverse=True):
        # As a whole token, so that a password "p" leaves "postgresql" alone.
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    return text
