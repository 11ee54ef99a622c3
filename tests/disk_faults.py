"""Faults injected at the file-system boundary: a tiny tmpfs that fills up or turns read-only.

``tiny_tmpfs`` is a fixture (import it into a test module); ``fill`` and ``remount``
act on any mount point.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of the test's own; fails (never skips) where mounting is not permitted."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
        problem = done.stderr.strip() if done.returncode else ""
    except FileNotFoundError:
        problem = "no mount command"
    if problem:
        pytest.fail(
            f"this fault test mounts a tiny tmpfs, which is not permitted here ({problem}); "
            "run the suite as root with CAP_SYS_ADMIN (a VM, or docker run --privileged).",
            pytrace=False,
        )
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(directory: Path) -> Path:
    """Take every free block of ``directory``'s file system; returns the file holding them."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, b"\xff" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(descriptor)
    return filler


def remount(mountpoint: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mountpoint)], check=True)
