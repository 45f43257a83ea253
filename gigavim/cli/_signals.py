"""Ctrl-C and SIGTERM end a command with one line and a non-zero exit, never silently.

Click turns a ``KeyboardInterrupt`` into ``Abort`` (printing a bare newline), which hid what
happened and how to continue. While a command runs, SIGINT and SIGTERM raise
:class:`Interrupted` instead — not a ``KeyboardInterrupt``, so click lets it through; every
``finally`` on the way still runs (locks released, temporaries removed; the work dir is kept
for ``--resume``) — and the entry point prints "interrupted — rerun with --resume to continue"
and exits 128 + the signal number.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: OS errors a user's paths cause: one line (the path and the reason), not a traceback.
USER_OS_ERRORS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EACCES,
                            errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived while a command ran (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def silence_late_noise() -> None:
    """After an interrupt, what background work still says while the process exits is noise.

    A signal can land while a thread or zarr's event loop is mid-write; that work then fails
    as the interpreter shuts down and asyncio / threading / the unraisable hook would print
    its traceback after our one line ("Task exception was never retrieved", "cannot schedule
    new futures after interpreter shutdown", "coroutine never awaited"). The work dir is
    already consistent for ``--resume`` (blocks are committed by rename), so none of it matters.
    """
    warnings.simplefilter("ignore")
    logging.getLogger("asyncio").disabled = True
    threading.excepthook = lambda _args: None
    sys.unraisablehook = lambda _unraisable: None


def interrupted_message(args: list[str]) -> str:
    """What to tell the user: how to continue, for the commands that can."""
    command = next((a for a in args if not a.startswith("-")), "")
    if command == "segment":
        return "interrupted — rerun with --resume to continue"
    if command == "batch":
        return "interrupted — rerun the same command to continue (finished inputs are kept)"
    return "interrupted"
