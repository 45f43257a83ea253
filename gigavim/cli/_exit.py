"""Leave the process without tearing the interpreter down module by module.

When a command is done, CPython's finalisation still garbage-collects every module and runs
C++ static destructors: with torch loaded that alone takes 0.3–0.4 s, and 0.5–0.8 s for a
``segment`` run (torch, numba, zarr, dask, ome-zarr), on every invocation, after all the
work. Here the exit handlers run as in a normal exit (``atexit``: logging, temporary
directories, libraries' own clean-up), Python's and C's standard streams are flushed, and the
process ends. Used only by the console script and ``python -m gigavim``, never when ``main`` is
called in-process (tests, notebooks). A command that left a non-daemon thread running (which a
normal exit would wait for) exits normally; so does ``GIGAVIM_FULL_EXIT=1``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

from gigavim.malloc import libc_function


def exit_process(code: int) -> NoReturn:
    """End the process with ``code`` once exit handlers have run and streams are flushed."""
    if os.environ.get("GIGAVIM_FULL_EXIT") == "1" or _threads_still_working():
        sys.exit(code)
    atexit._run_exitfuncs()  # what a normal exit runs before finalising modules
    _flush_streams()
    os._exit(code)


def _threads_still_working() -> bool:
    main = threading.main_thread()
    return any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate())


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced streams
            pass
    fflush = libc_function("fflush")
    if fflush is not None:  # C libraries' stdio buffers (os._exit would drop them)
        fflush(None)
