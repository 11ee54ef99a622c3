"""The durable store: writes committed in groups by whichever writer leads, reads anywhere.

    write(op) ─▶ pending ─┬─ no commit under way: lead ─▶ BEGIN (exclusive)
                          │                               op₁ · op₂ · … · opₙ (a savepoint each)
                          │                               COMMIT (one fsync for the group)
                          └─ a commit under way: wait ◀── the leader wakes the group it took

A lone write commits on its own thread, with no hand-off to another; a burst
of 64 signatures costs a few commits, not 128: whoever arrives while a
commit is under way joins the next group, led by one of them. Each operation
runs in its own savepoint, so a bug in one rolls back only its own writes. A
database error fails the whole group with ``StateUnavailable`` (nothing is
signed), the connection is dropped, and the next write reconnects: a full
disk that was freed, or a PostgreSQL that came back, is used again without a
restart.

An operation whose caller has given up waiting is skipped if no leader has
taken it; once taken, it runs to its end (it may hold a reservation that must
not be half-written).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .._errors import StateUnavailable
from ._backend import Backend, Connection
from ._schema import SchemaTooNew, migrate

logger = logging.getLogger("agentic_vault.store")

T = TypeVar("T")
Operation = Callable[[Connection], T]

DEFAULT_TIMEOUT = 10.0
MAX_GROUP = 256


@dataclass(frozen=True)
class StateHealth:
    """What health_check says about the store."""

    backend: str
    location: str
    ok: bool
    problem: str | None


class _Job(Generic[T]):
    def __init__(self, operation: Operation[T]) -> None:
        self.operation = operation
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._state = "queued"  # queued → started | abandoned

    def start(self) -> bool:
        with self._lock:
            if self._state == "abandoned":
                return False
            self._state = "started"
            return True

    def abandon(self) -> bool:
        """Give up on a job that has not started; False if it already runs."""
        with self._lock:
            if self._state == "started":
                return False
            self._state = "abandoned"
            return True


class Store:
    """Durable state behind one ``Backend``; see the module docstring."""

    def __init__(self, backend: Backend, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.backend = backend
        self.timeout = timeout
        self._turn = threading.Condition()
        self._pending: list[_Job[Any]] = []
        self._leading = False
        self._connection: Connection | None = None
        self._readers = threading.local()
        self._problem: str | None = None
        self.commits = 0  # groups committed; the benchmark reports writes per commit

    # -- writing -----------------------------------------------------------------------

    def write(self, operation: Operation[T]) -> T:
        """Run ``operation`` in a write transaction; return its result once committed.

        Raises ``StateUnavailable`` (saying why) when the group it ran in could not be
        committed, or when no commit happened within the timeout.
        """
        job: _Job[T] = _Job(operation)
        deadline = time.monotonic() + self.timeout
        extended = False
        with self._turn:
            self._pending.append(job)
        while True:
            with self._turn:
                while self._leading and not job.done.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        if job.abandon():  # no leader has taken it: it will never run
                            self._pending.remove(job)
                            raise self._timed_out()
                        if extended:
                            raise self._timed_out()
                        deadline, extended = deadline + self.timeout, True  # taken: wait once more
                    self._turn.wait(max(left, 0.01))
                if job.done.is_set():
                    break
                self._leading = True
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            try:
                self._commit_group([taken for taken in group if taken.start()])
            finally:
                with self._turn:
                    self._leading = False
                    self._turn.notify_all()
        return self._result(job)

    def _result(self, job: _Job[T]) -> T:
        if not job.done.wait(self.timeout):
            raise self._timed_out()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _timed_out(self) -> StateUnavailable:
        return StateUnavailable(
            f"the store at {self.backend.location} did not commit within "
            f"{self.timeout:g} s; nothing was signed. {self._problem or ''}".rstrip()
        )

    def _commit_group(self, jobs: list[_Job[Any]]) -> None:
        # A savepoint each keeps one operation's bug from undoing the others' writes; a
        # lone operation needs none (two round trips fewer on PostgreSQL).
        alone = len(jobs) == 1
        try:
            connection = self._connect()
            connection.begin_exclusive()
            for index, job in enumerate(jobs):
                if not alone:
                    connection.execute(f"SAVEPOINT op{index}")
                try:
                    job.result = job.operation(connection)
                except Exception as exc:
                    if self.backend.is_database_error(exc):
                        raise
                    connection.execute("ROLLBACK" if alone else f"ROLLBACK TO SAVEPOINT op{index}")
                    job.error = exc
                if not alone:
                    connection.execute(f"RELEASE SAVEPOINT op{index}")
            if not (alone and jobs[0].error is not None):
                connection.commit()
                self.commits += 1
        except Exception as exc:  # noqa: BLE001 - whatever failed, the group is not committed
            reason = self._failed(exc)
            for job in jobs:
                # One exception each: callers in other threads raise them concurrently.
                job.result, job.error = None, StateUnavailable(f"{reason} Nothing was signed.")
        else:
            if self._problem is not None:
                logger.warning("the store at %s works again", self.backend.location)
            self._problem = None
        for job in jobs:
            job.done.set()

    def _failed(self, error: Exception) -> str:
        if isinstance(error, SchemaTooNew):
            reason = str(error)
        elif self.backend.is_database_error(error):
            reason = self.backend.explain(error)
        else:
            logger.exception("the store failed unexpectedly")
            reason = f"the store failed unexpectedly ({type(error).__name__}); see the server log."
        if reason != self._problem:
            logger.error("state unavailable: %s", reason)
        self._problem = reason
        self._drop_connection()
        return reason

    def _connect(self) -> Connection:
        if self._connection is None:
            connection = self.backend.connect()
            try:
                migrate(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.rollback()
                connection.close()
            except Exception:  # a broken connection may fail to close; drop it
                logger.debug("closing a failed store connection failed too", exc_info=True)

    # -- reading -----------------------------------------------------------------------

    def read(self, operation: Operation[T]) -> T:
        """Run ``operation`` on a consistent snapshot, in the calling thread.

        Each thread keeps its reading connection (an HTTP server looks a token up
        on every request; connecting and checking the schema each time cost
        milliseconds on PostgreSQL); a database error drops it, and the next read
        connects again.
        """
        connection = getattr(self._readers, "connection", None)
        try:
            if connection is None:
                connection = self.backend.connect()
                self._readers.connection = connection
                migrate(connection)
            connection.begin_read()
            try:
                return operation(connection)
            finally:
                connection.rollback()
        except SchemaTooNew as exc:
            self._drop_reader()
            raise StateUnavailable(str(exc)) from None
        except Exception as exc:
            if self.backend.is_database_error(exc):
                self._drop_reader()
                raise StateUnavailable(self.backend.explain(exc)) from None
            raise

    def _drop_reader(self) -> None:
        connection = getattr(self._readers, "connection", None)
        self._readers.connection = None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # a broken connection may fail to close too
                logger.debug("closing a store snapshot failed", exc_info=True)

    # -- health and shutdown -----------------------------------------------------------

    def health(self, probe: bool = True) -> StateHealth:
        """Whether the store can be written now (``probe``: prove it with a heartbeat write)."""
        if probe:
            with contextlib.suppress(StateUnavailable):
                self.write(_heartbeat)
        return StateHealth(
            backend=self.backend.name,
            location=self.backend.location,
            ok=self._problem is None,
            problem=self._problem,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Close the connection once no commit is under way (waiting at most ``timeout``)."""
        with self._turn:
            self._turn.wait_for(lambda: not self._leading, timeout)
            if not self._leading:
                self._drop_connection()
        self._drop_reader()


def _heartbeat(connection: Connection) -> None:
    # A new value every time: SQLite writes nothing for an UPDATE that leaves the row as
    # it was, and a probe that writes nothing passes on a full disk (two probes within
    # one second of each other did, with a stamp to the second).
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    connection.execute(
        "UPDATE store_meta SET heartbeat = ? WHERE id = 1", (f"{stamp} {uuid.uuid4().hex}",)
    )
