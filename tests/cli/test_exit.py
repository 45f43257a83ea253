"""The console script's fast exit: exit handlers run, streams arrive whole, working threads are waited for."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
import atexit, sys, threading, time
from gigavim.cli._exit import exit_process
path = sys.argv[1]
atexit.register(lambda: open(path + ".atexit", "w").write("ran"))
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), open(path + ".thread", "w").write("done"))).start()
sys.stdout.write("x" * 200_000)
print("end", file=sys.stderr, end="")
exit_process(3)
"""


def _run(tmp_path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROGRAM, str(tmp_path / "f"), mode],
                          capture_output=True, text=True, timeout=60, check=False)


def test_exit_code_streams_and_exit_handlers_survive_the_fast_exit(tmp_path):
    done = _run(tmp_path, "plain")
    assert done.returncode == 3
    assert done.stdout == "x" * 200_000 and done.stderr == "end"
    assert (tmp_path / "f.atexit").read_text() == "ran"


def test_a_thread_still_working_is_waited_for(tmp_path):
    done = _run(tmp_path, "thread")
    assert done.returncode == 3
    assert (tmp_path / "f.thread").read_text() == "done"
    assert (tmp_path / "f.atexit").read_text() == "ran"


def test_the_module_entry_point_exits_with_the_commands_code():
    ok = subprocess.run([sys.executable, "-m", "gigavim", "models"], capture_output=True, text=True,
                        timeout=120, check=False)
    assert ok.returncode == 0 and "nuclei-he" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "gigavim", "info", "/no/such/slide.svs"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0 and "gigavim: error:" in bad.stderr and "Traceback" not in bad.stderr
