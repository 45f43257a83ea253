"""Benchmark plumbing: machine facts, result tables, docs/benchmarks.md sections, child processes.

Every benchmark returns a :class:`BenchReport` (typed rows + the prose that explains them), so
the CLI can print it as a table or JSON and, in a source checkout, rewrite only its own section
of ``docs/benchmarks.md`` (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``), headed
by the machine, date and library versions, so results from different machines sit side by side.
Memory peaks are taken in child processes so each case's peak is its own.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# re-exported: the benchmarks take it from here
from gigavim.benchmarks.usage import peak_rss_mib as peak_rss_mib

_CHECKOUT = Path(__file__).resolve().parents[2]
DOC = _CHECKOUT / "docs" / "benchmarks.md"
_HEADER = (
    "# Benchmarks\n\nWritten by `gigavim bench <name> --write-docs` (scan, model, segment, whole-image, "
    "readers, writers; `all` runs every one); each section says how to re-run it.\n"
)

Progress = Callable[[str], None]


def machine_info() -> dict[str, str]:
    """CPU/GPU, core count, memory and the versions that matter for the numbers."""
    import torch

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "simd": cpu_simd(),
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


def machine_line(info: dict[str, str] | None = None) -> str:
    """One markdown line with :func:`machine_info`."""
    return "Machine: " + ", ".join(f"{k} {v}" for k, v in (info or machine_info()).items())


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    """Render rows as a GitHub markdown table (floats with 4 significant digits)."""

    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def source_checkout_doc() -> Path | None:
    """docs/benchmarks.md of the source checkout gigavim runs from, or None for an installed wheel
    (a results file belongs to the repository, never to site-packages)."""
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "docs").is_dir():
        return DOC
    return None


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


@dataclass(frozen=True)
class Column:
    """One result field: its JSON key, its table header and how a value is shown."""

    key: str
    header: str
    fmt: str | Callable[[Any], str] = ""

    def show(self, value: Any) -> str:
        if value is None:
            return ""
        if callable(self.fmt):
            return self.fmt(value)
        if self.fmt:
            return format(value, self.fmt)
        return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Check:
    """A correctness check run beside the timings (e.g. GPU kernels against the reference)."""

    name: str
    passed: bool
    detail: str

    @classmethod
    def within(cls, name: str, error: float, limit: float, what: str) -> Check:
        """Passed when ``error`` (a max relative error) is below ``limit``."""
        return cls(name, error < limit, f"{what}: max rel. error {error:.2e}")

    def line(self) -> str:
        return f"{self.detail} → {'PASS' if self.passed else 'FAIL'}"


@dataclass
class BenchReport:
    """What one benchmark measured: typed rows plus the prose that says how to read them."""

    name: str
    section: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    intro: str = ""
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    device: str = "cpu"
    quick: bool = False
    machine: dict[str, str] = field(default_factory=machine_info)
    images: list[Path] = field(default_factory=list)
    plot: Callable[[BenchReport, Path], Path | None] | None = None  # draws a figure for the docs

    @property
    def command(self) -> str:
        """The command that re-runs this benchmark and rewrites its section."""
        device = (
            "" if self.device == "cpu" or self.name in ("readers", "writers") else f" --device {self.device}"
        )
        return f"gigavim bench {self.name}{device}" + (" --quick" if self.quick else "") + " --write-docs"

    @property
    def ok(self) -> bool:
        """False when a correctness check failed (the timings of a wrong kernel mean nothing)."""
        return all(c.passed for c in self.checks)

    def cells(self) -> list[list[str]]:
        return [[c.show(row.get(c.key)) for c in self.columns] for row in self.rows]

    def table(self) -> str:
        return markdown_table([c.header for c in self.columns], self.cells())  # type: ignore[arg-type]

    def markdown(self) -> str:
        """The docs/benchmarks.md section: title, how it was run, machine, table, checks, notes."""
        parts = [
            f"## {self.title} (`{self.section}`)",
            f"`{self.command}` — {self.intro}".rstrip(" —"),
            machine_line(self.machine),
            self.table(),
        ]
        parts += [c.line() for c in self.checks]
        parts += self.notes
        parts += [f"![{self.name}]({p.name})" for p in self.images]
        return "\n\n".join(parts) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "section": self.section,
            "device": self.device,
            "quick": self.quick,
            "command": self.command,
            "machine": self.machine,
            "columns": {c.key: c.header for c in self.columns},
            "rows": self.rows,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "ok": self.ok,
        }


def publish(report: BenchReport, doc: Path = DOC) -> Path:
    """Write the report's figure (if any) beside ``doc`` and replace its section there."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    if report.plot is not None:
        png = report.plot(report, doc.parent / f"bench_{report.section}.png")  # one per section
        if png is not None and png not in report.images:
            report.images.append(png)
    return update_section(report.section, report.markdown(), doc)


def device_kind(device: str) -> str:
    """``cuda:1`` → ``cuda``: the suffix of device-specific sections (``model-cuda``)."""
    return "cuda" if device.startswith("cuda") else "cpu"


def show_row(progress: Progress | None, columns: list[Column], row: dict[str, Any]) -> None:
    """Report one finished case as it lands (long benchmarks should not be silent)."""
    if progress is not None:
        progress(" | ".join(c.show(row.get(c.key)) for c in columns))


def load_average() -> float:
    """1-minute load average, written beside timings taken on shared hosts."""
    return os.getloadavg()[0]


def cpu_threads(torch_threads: int, numba_threads: int | None = None) -> tuple[int, int | None]:
    """Set torch's and numba's CPU threads (numba: same as torch unless given); return the old pair.

    Both must be set, numba's first: numba's OpenMP layer shares the process's OpenMP runtime with
    torch, and its parallel loops (or setting its count) reset torch's thread count to numba's
    (every core) — which made the per-token loop reference run up to 8× slower after a chunked
    case had run, on a shared 2-core host."""
    import torch

    before, numba_before = torch.get_num_threads(), None
    try:
        import numba
    except ImportError:
        pass
    else:  # numba first: setting its count also sets the shared OpenMP runtime's, i.e. torch's
        numba_before = numba.get_num_threads()
        numba.set_num_threads(min(numba_threads or torch_threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(torch_threads)
    return before, numba_before


def run_child(module: str, *args: object, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON object on its last stdout line.

    Children exist so each case's peak memory is its own, not the maximum over all cases.
    ``env``: variables set for this child only (on top of this process's environment)."""
    return run_command([sys.executable, "-m", module, *map(str, args)], env=env)


def run_command(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a benchmark child's command line (any interpreter) and return its last stdout line's JSON."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, **env} if env else None)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {' '.join(cmd[1:])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(measure: Callable[..., dict[str, Any]]) -> None:
    """Entry point of a benchmark module run as a child: print ``measure(*argv)`` as one JSON line.
    The process is set up as the command line sets up its own (one malloc arena)."""
    from gigavim.malloc import limit_malloc_arenas

    limit_malloc_arenas()
    print(json.dumps(measure(*sys.argv[1:])))


def _cpuinfo(*keys: str) -> str | None:
    """The value of the first /proc/cpuinfo line starting with one of ``keys`` (None off Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(keys):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_simd(flags: set[str] | None = None) -> str:
    """The widest vector instructions the CPU offers (AVX-512, AVX2, ...).

    The numba scan's vector width follows it, so CPU tables from hosts that differ here are not
    comparable, even when /proc/cpuinfo names both models the same (cloud VMs say "AMD EPYC")."""
    if flags is None:
        flags = set((_cpuinfo("flags", "Features") or "").split())
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sve", "SVE"),
                       ("asimd", "NEON"), ("sse4_2", "SSE4.2")):
        if flag in flags:
            return name
    return "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "?"


def bench_device(name: str) -> str:
    """``auto`` → CUDA when present, else the engine's device check (no GPU → one-line UsageError)."""
    from gigavim.train.loop import pick_device

    return str(pick_device(name))
