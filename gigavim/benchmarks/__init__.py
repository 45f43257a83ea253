"""Benchmarks behind ``gigavim bench``: one module per subject, each with a typed ``run(...)``.

Each ``run`` returns a :class:`~gigavim.benchmarks.report.BenchReport` (rows, prose, checks)
that the CLI prints as a table or JSON and, in a source checkout, writes into its own section
of docs/benchmarks.md. Speed and memory are measured here, never in timed tests. Modules are
imported on demand: a benchmark module also runs as a child process (``python -m``) to take
one case's peak memory, and must not be imported twice.
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("scan", "model", "segment", "whole-image", "readers", "writers", "engines")
DEVICE_AWARE = frozenset({"scan", "model", "segment", "whole-image", "engines"})  # readers/writers: CPU/IO


def module(name: str) -> ModuleType:
    """The benchmark module behind a CLI name: ``whole-image`` → ``gigavim.benchmarks.whole_image``."""
    if name not in NAMES:
        raise ValueError(f"unknown benchmark {name!r} (one of {', '.join(NAMES)})")
    return importlib.import_module(f"gigavim.benchmarks.{name.replace('-', '_')}")
