"""A real small (or read-only) disk for tests of full-disk and permission errors."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(mount_point: Path, options: str, why: str) -> Iterator[Path]:
    """Mount a small tmpfs at ``mount_point`` for the block, or skip the test saying ``why``."""
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(why)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
