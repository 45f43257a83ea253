"""After an interrupt, background work failing during exit prints nothing after our one line."""

from __future__ import annotations

import subprocess
import sys

_LATE_FAILURES = """
import asyncio, gc, threading
from gigavim.cli._signals import silence_late_noise
{setup}
async def write():
    raise RuntimeError("cannot schedule new futures after interpreter shutdown")
loop = asyncio.new_event_loop()
task = loop.create_task(write())
loop.run_until_complete(asyncio.sleep(0))
del task
gc.collect()
def worker():
    raise RuntimeError("a writer thread cut off by the exit")
t = threading.Thread(target=worker); t.start(); t.join()
"""


def _stderr(setup: str) -> str:
    done = subprocess.run([sys.executable, "-c", _LATE_FAILURES.format(setup=setup)],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stderr


def test_late_tracebacks_from_threads_and_event_loops_are_silenced_after_an_interrupt() -> None:
    assert "Traceback" in _stderr(""), "the probe no longer provokes late tracebacks"
    assert _stderr("silence_late_noise()") == ""
