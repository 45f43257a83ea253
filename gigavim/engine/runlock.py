"""One run at a time per output: an advisory lock beside the run's work dir.

Two runs writing one output would interleave tiles in the same work dir and replace each
other's output; the second must be told plainly that another run is busy (not that the
first's work dir is "an interrupted run" to ``--resume``, nor have ``--overwrite`` delete it).
The lock is ``fcntl.flock`` on ``WORKDIR.lock``, which holds the owner's PID for the message.
The kernel drops a flock when its process dies, however it dies, so a crashed or killed run
never blocks the next one: a lock file left behind is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from gigavim.errors import OutputError

LOCK_SUFFIX = ".lock"


class RunLock:
    """Exclusive, non-blocking lock for the run that writes ``output`` through ``workdir``."""

    def __init__(self, workdir: Path, output: Path) -> None:
        self.workdir = workdir
        self.path = workdir.with_name(workdir.name + LOCK_SUFFIX)
        self.output = output
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`OutputError` naming the run (PID) that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a --workdir in a new folder
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_pid(fd)
                os.close(fd)
                who = f" (pid {owner})" if owner else ""
                raise OutputError(f"{self.output}: another gigavim run{who} is writing {self.output}; "
                                  "wait for it to finish or choose another output") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder released and removed it between our open and flock: retry
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it, so no one can hold a stale inode)."""
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (st.st_dev, st.st_ino)
