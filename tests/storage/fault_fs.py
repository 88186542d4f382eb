"""Real filesystem faults for tests: a small tmpfs that can be filled or made read-only.

Needs root (``mount``); tests using it are skipped elsewhere. Every mount is unmounted by the
context manager, even when the test fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BALLAST = ".ballast"


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def small_fs(size_mb: int = 16) -> Iterator[Path]:
    """A fresh tmpfs of ``size_mb`` MiB at a temporary mount point (skips the test without root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    point = Path(tempfile.mkdtemp(prefix="vx-fault-"))
    proc = _mount("-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(point))
    if proc.returncode != 0:
        point.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            point.rmdir()


def fill(point: Path) -> int:
    """Fill the filesystem at ``point`` to the last byte (a ballast file); returns bytes written."""
    written = 0
    fd = os.open(point / BALLAST, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    written += os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written


def empty(point: Path) -> None:
    """Remove the ballast: the filesystem has room again."""
    with contextlib.suppress(FileNotFoundError):
        (point / BALLAST).unlink()


def set_read_only(point: Path, read_only: bool) -> None:
    proc = _mount("-o", f"remount,{'ro' if read_only else 'rw'}", str(point))
    assert proc.returncode == 0, f"remount failed: {proc.stderr.strip()}"
