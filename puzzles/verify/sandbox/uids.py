"""Sandbox uids for a root worker: one per running sandbox, claimed with a lock file.

A flock dies with its holder, so a worker killed with -9 frees its uids. Workers sharing a kernel
but not /tmp (root workers in separate containers) must share the claims directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
import threading
from pathlib import Path

from puzzles.verify.sandbox.errors import SandboxError

UID_BASE = 200_000
UID_COUNT = 50_000
UID_DIR_ENV = "CIRCUITBOARD_SANDBOX_UID_DIR"

_issued_lock = threading.Lock()
_issued: list[int] = []
_uid_cursor = random.randrange(UID_COUNT)


def _uid_dir() -> Path:
    """Where uid claims live: one lock file per uid, held (flock) while its sandbox runs."""
    path = Path(os.environ.get(UID_DIR_ENV) or Path(tempfile.gettempdir()) / "circuitboard-uids")
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or info.st_uid != os.geteuid():
        raise SandboxError(f"{path} is not a directory of ours; cannot claim sandbox uids there")
    return path


class UidClaim:
    """A sandbox uid nobody else uses while this claim is held (flock on ``<dir>/<uid>``)."""

    def __init__(self) -> None:
        global _uid_cursor
        directory = _uid_dir()
        with _issued_lock:
            # this process walks the range from a random start, so it reuses no uid soon;
            # the flock decides between processes
            start = _uid_cursor = (_uid_cursor + 1) % UID_COUNT
        for i in range(UID_COUNT):
            uid = UID_BASE + (start + i) % UID_COUNT
            fd = os.open(
                directory / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid: int = uid
            self._fd: int | None = fd
            with _issued_lock:
                _issued.append(uid)
                _uid_cursor = uid - UID_BASE
            return
        raise SandboxError("every sandbox uid is in use")

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def issued_uids() -> list[int]:
    """Every sandbox uid this process has used (tests look for processes left running as them)."""
    with _issued_lock:
        return list(_issued)
