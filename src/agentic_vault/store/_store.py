"""The durable store: writes committed in groups on one thread, reads anywhere.

    caller thread ── write(op) ──▶ queue ──▶ writer thread: BEGIN (exclusive)
         ▲                                      op₁ · op₂ · … · opₙ   (a savepoint each)
         └──────── result or StateUnavailable ◀── COMMIT (one fsync for the whole group)

A burst of 64 signatures costs a few commits, not 128: whoever arrives while
a commit is under way joins the next group. Each operation runs in its own
savepoint, so a bug in one rolls back only its own writes. A database error
fails the whole group with ``StateUnavailable`` (nothing is signed), the
connection is dropped, and the next write reconnects: a full disk that was
freed, or a PostgreSQL that came back, is used again without a restart.

An operation whose caller has given up waiting is skipped if it has not
started; once started, it runs to its end (it may hold a reservation that
must not be half-written).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
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


_STOP: Any = object()


class Store:
    """Durable state behind one ``Backend``; see the module docstring."""

    def __init__(self, backend: Backend, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.backend = backend
        self.timeout = timeout
        self._jobs: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        self._connection: Connection | None = None
        self._problem: str | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.commits = 0  # groups committed; the benchmark reports writes per commit

    # -- writing -----------------------------------------------------------------------

    def write(self, operation: Operation[T]) -> T:
        """Run ``operation`` in a write transaction; return its result once committed.

        Raises ``StateUnavailable`` (saying why) when the group it ran in could not be
        committed, or when no commit happened within the timeout.
        """
        self._ensure_writer()
        job: _Job[T] = _Job(operation)
        self._jobs.put(job)
        if not job.done.wait(self.timeout) and (job.abandon() or not job.done.wait(self.timeout)):
            raise StateUnavailable(
                f"the store at {self.backend.location} did not commit within "
                f"{self.timeout:g} s; nothing was signed. {self._problem or ''}".rstrip()
            )
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _ensure_writer(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_groups, name="agentic-vault-store", daemon=True
                )
                self._thread.start()

    def _write_groups(self) -> None:
        while True:
            group = [self._jobs.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            stopping = any(job is _STOP for job in group)
            jobs = [job for job in group if job is not _STOP and job.start()]
            if jobs:
                self._commit_group(jobs)
            if stopping:
                self._drop_connection()
                return

    def _commit_group(self, jobs: list[_Job[Any]]) -> None:
        try:
            connection = self._connect()
            connection.begin_exclusive()
            for index, job in enumerate(jobs):
                savepoint = f"op{index}"
                connection.execute(f"SAVEPOINT {savepoint}")
                try:
                    job.result = job.operation(connection)
                except Exception as exc:
                    if self.backend.is_database_error(exc):
                        raise
                    connection.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    job.error = exc
                connection.execute(f"RELEASE SAVEPOINT {savepoint}")
            connection.commit()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the group is not committed
            reason = self._failed(exc)
            for job in jobs:
                # One exception each: callers in other threads raise them concurrently.
                job.result, job.error = None, StateUnavailable(f"{reason} Nothing was signed.")
        else:
            self.commits += 1
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
        """Run ``operation`` on a consistent snapshot, in the calling thread."""
        try:
            connection = self.backend.connect()
        except Exception as exc:
            if self.backend.is_database_error(exc):
                raise StateUnavailable(self.backend.explain(exc)) from None
            raise
        try:
            migrate(connection)
            connection.begin_read()
            return operation(connection)
        except SchemaTooNew as exc:
            raise StateUnavailable(str(exc)) from None
        except Exception as exc:
            if self.backend.is_database_error(exc):
                raise StateUnavailable(self.backend.explain(exc)) from None
            raise
        finally:
            try:
                connection.rollback()
                connection.close()
            except Exception:  # closing a snapshot that failed
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
        """Finish the writes queued so far, then close the connection."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._jobs.put(_STOP)
            thread.join(timeout)


def _heartbeat(connection: Connection) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    connection.execute("UPDATE store_meta SET heartbeat = ? WHERE id = 1", (stamp,))
