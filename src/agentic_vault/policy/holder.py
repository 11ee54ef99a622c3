"""The policy in force, swapped whole when the file changes, kept when the change is bad.

``PolicyHolder`` is what a long-running server holds: ``current`` is one
reference read (no lock on the signing path), ``reload()`` is what SIGHUP
calls, and ``reload_if_changed()`` compares a ``stat`` of the file with the
one it loaded (cheap enough for every request or a 1 s poller). A broken new
file never replaces a working policy: the old one stays in force and the
reason is logged at warning level on ``agentic_vault.policy``.
"""

from __future__ import annotations

import logging
import os
import threading

from .load import LoadedPolicy, PolicyFileError, load_policy_file

logger = logging.getLogger("agentic_vault.policy")

# What changes when the file is edited, replaced (rename, new inode) or re-chmodded.
FileSignature = tuple[int, int, int, int, int, int]


def file_signature(path: str) -> FileSignature | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (
        info.st_dev,
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_mode,
    )


class PolicyHolder:
    """Thread-safe holder of the policy in force; the first load raises ``PolicyFileError``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(path)
        self._lock = threading.Lock()
        signature = file_signature(self.path)
        self._current = load_policy_file(self.path)
        # The stat of the file as last tried: a broken version is tried (and logged) once.
        self._tried = signature

    @property
    def current(self) -> LoadedPolicy:
        return self._current

    def reload(self) -> bool:
        """Load the file again; on failure keep the policy in force, log why, return False."""
        with self._lock:
            return self._reload_locked(file_signature(self.path))

    def reload_if_changed(self) -> bool:
        """Reload if the file changed since it was last tried; True if a new policy is in force."""
        signature = file_signature(self.path)
        if signature == self._tried:
            return False
        with self._lock:
            if signature == self._tried:
                return False
            return self._reload_locked(signature)

    def _reload_locked(self, signature: FileSignature | None) -> bool:
        # The stat is taken before reading: an edit during the read shows as a change next time.
        self._tried = signature
        try:
            loaded = load_policy_file(self.path)
        except PolicyFileError as exc:
            logger.warning(
                "policy not reloaded; the policy loaded at %s (sha256 %s) stays in force: %s",
                self._current.loaded_at.isoformat(timespec="seconds"),
                self._current.sha256[:16],
                exc.message,
            )
            return False
        self._current = loaded
        logger.info("policy reloaded from %s (sha256 %s)", loaded.path, loaded.sha256[:16])
        return True
