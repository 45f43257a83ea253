"""Shared plumbing for benchmark scripts: machine facts and docs/benchmarks.md sections.

Every benchmark prints its table and rewrites only its own section of ``docs/benchmarks.md``
(between ``<!-- BEGIN name -->`` and ``<!-- END name -->``), headed by the machine, date and
library versions, so results from different scripts and machines sit side by side.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from importlib import metadata
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_HEADER = "# Benchmarks\n\nWritten by the scripts in `scripts/`; each section says how to re-run it.\n"


def machine_info() -> dict[str, str]:
    """CPU/GPU, core count, memory and the versions that matter for the numbers."""
    import torch

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cores": str(os.cpu_count()),
        "memory": _memory_gib(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only",
    }
    for pkg in ("triton", "numpy", "zarr", "openslide-bin", "rasterio"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info


def machine_line() -> str:
    """One markdown line with :func:`machine_info`."""
    return "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info().items())


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    """Render rows as a GitHub markdown table (floats with 4 significant digits)."""

    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(name: str, markdown: str, doc: Path = DOC) -> Path:
    """Replace (or append) section ``name`` of docs/benchmarks.md with ``markdown``."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else _HEADER
    block = f"<!-- BEGIN {name} -->\n{markdown.rstrip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = doc.with_suffix(".md.partial")
    tmp.write_text(text)
    tmp.replace(doc)
    return doc


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "?"
