"""``limit_malloc_arenas``: the command line's one-arena cap takes effect, and yields to the user."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gigavim.malloc import limit_malloc_arenas

GLIBC = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc arenas are glibc's")

# Four threads allocate at once; glibc's malloc_stats() then prints one "Arena N:" per arena.
_PROGRAM = """
import ctypes, sys, threading
from gigavim.malloc import limit_malloc_arenas
print(limit_malloc_arenas(), flush=True)
barrier = threading.Barrier(4)
def work():
    barrier.wait()
    blocks = [ctypes.create_string_buffer(4096) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def _arenas(env_extra: dict[str, str]) -> tuple[str, int]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", _PROGRAM], env={**env, **env_extra},
                          capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip(), done.stderr.count("Arena ")


@GLIBC
def test_one_arena_for_every_thread():
    capped, arenas = _arenas({})
    assert (capped, arenas) == ("True", 1)


@GLIBC
def test_the_users_choice_wins():
    capped, arenas = _arenas({"GIGAVIM_MALLOC_ARENAS": "0"})
    assert capped == "False" and arenas > 1  # glibc's default: an arena per contending thread
    capped, _ = _arenas({"MALLOC_ARENA_MAX": "4"})
    assert capped == "False"


def test_no_cap_asked_is_no_cap():
    assert limit_malloc_arenas(0) is False
