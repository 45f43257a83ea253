"""Fixtures for the command-line tests: the ``gigavim`` entry point run in this process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from gigavim.cli import main


@dataclass
class Result:
    """What a command-line run left behind: its exit code and captured output."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def gigavim(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the command line in this process (the console script's own entry point): fast, and
    the error path is the one users see (``main`` turns GigavimError into one line)."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
