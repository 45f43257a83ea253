"""``gigavim bench``: speed and memory benchmarks (a thin shell over :mod:`gigavim.benchmarks`)."""

from __future__ import annotations

import importlib.util
import json
from enum import Enum
from typing import Any

import typer

from gigavim.cli._app import app


class Benchmark(str, Enum):
    scan = "scan"
    model = "model"
    segment = "segment"
    whole_image = "whole-image"
    readers = "readers"
    writers = "writers"
    engines = "engines"
    all = "all"
    gpu_check = "gpu-check"


@app.command()
def bench(
    name: Benchmark = typer.Argument(
        ..., metavar="NAME", show_choices=False,
        help="Which benchmark (listed above; all: every one in turn).",
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (CUDA when present), cpu or cuda[:N]; for all but readers, writers."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Tiny sizes that finish in seconds (checks an install)."
    ),
    write_docs: bool = typer.Option(
        False,
        "--write-docs/--no-write-docs",
        help="Rewrite the benchmark's section of docs/benchmarks.md (source checkout only).",
    ),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per benchmark (JSON Lines)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads for scan and model."),
    dry_run: bool = typer.Option(False, "--dry-run", help="gpu-check: list its steps, run nothing."),
    tiatoolbox_python: str | None = typer.Option(
        None, "--tia-python", envvar="GIGAVIM_TIA_PYTHON", metavar="PYTHON",
        help="engines: a Python with TIAToolbox (its own venv, torch<2.13) for TIAToolbox's rows.",
    ),
) -> None:
    """Measure speed and memory: print a table (or JSON), optionally update docs/benchmarks.md.

    \b
    scan         selective scan: loop, chunked, unfused, fused Triton,
                 SDPA; on a GPU first checks Triton against the loop
    model        Vim vs DeiT forward, 224² up: time, memory, exponent
    segment      gigavim.segment on synthetic slides: MP/s, peak RSS
    whole-image  --context image vs tile: seconds, peak RSS vs tokens
    readers      slide/raster reads: windows, whole level, dask views
    writers      OME-Zarr, COG, GeoJSON: seconds, MP/s, peak RSS
    engines      gigavim vs MONAI's sliding window (and TIAToolbox
                 with --tia-python): same slide/net
    gpu-check    on a lent GPU, first: kernels..whole-image (~8 min)
    """
    from rich.console import Console

    from gigavim.benchmarks import DEVICE_AWARE, NAMES, module
    from gigavim.benchmarks.report import bench_device, publish, source_checkout_doc

    err = Console(stderr=True, highlight=False)
    if name is Benchmark.gpu_check:
        _gpu_check(device, dry_run, write_docs, err)
        return
    resolved = bench_device(device)  # before any work: no GPU → one line, non-zero exit
    doc = source_checkout_doc() if write_docs else None
    if write_docs and doc is None:
        err.print(
            "docs/benchmarks.md not found (gigavim is not running from a source checkout): printing only",
            markup=False,
        )
    failed = []
    for each in NAMES if name is Benchmark.all else (name.value,):
        kwargs: dict[str, Any] = {
            "quick": quick,
            "progress": lambda line: err.print(line, style="dim", markup=False),
        }
        if each in DEVICE_AWARE:
            kwargs["device"] = resolved
        if each in ("scan", "model"):
            kwargs["threads"] = threads
        if each == "engines":
            kwargs["tiatoolbox_python"] = tiatoolbox_python
        report = module(each).run(**kwargs)
        if doc is not None:
            err.print(f"updated section {report.section} of {publish(report, doc)}", markup=False)
            if report.plot is not None and importlib.util.find_spec("matplotlib") is None:
                err.print("no figure drawn: matplotlib is not installed (pip install 'gigavim[bench]')",
                          markup=False)
        if json_out:
            typer.echo(json.dumps(report.to_dict()))
        else:
            _render(report)
        failed += [c for c in report.checks if not c.passed]
    if failed:
        names = "; ".join(c.name for c in failed)
        typer.echo(f"gigavim: error: {len(failed)} kernel check(s) failed: {names}", err=True)
        raise typer.Exit(1)


def _render(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False)
    title = report.title + (" (--quick)" if report.quick else "")
    if out.is_terminal:
        table = Table(title=title, title_justify="left")
        for c in report.columns:
            table.add_column(c.header)
        for cells in report.cells():
            table.add_row(*cells)
        out.print(table)
    else:  # piped or redirected: a markdown table, whatever the width
        out.print(f"{title}\n\n{report.table()}\n", markup=False, soft_wrap=True)
    for check in report.checks:
        out.print(check.line(), markup=False, style="green" if check.passed else "bold red")


def _gpu_check(device: str, dry_run: bool, write_docs: bool, err: Any) -> None:
    """``bench gpu-check``: the GPU steps in one run (``--dry-run``: list them, no GPU needed)."""
    from gigavim.benchmarks import gpu_check
    from gigavim.benchmarks.report import bench_device, publish, source_checkout_doc
    from gigavim.errors import UsageError

    target = "cuda" if device == "auto" else device
    if dry_run:
        typer.echo("\n".join(["gpu-check steps:", *gpu_check.plan(target)]))
        return
    if not target.startswith("cuda"):
        raise UsageError(f"gpu-check runs on a CUDA GPU, not --device {device} (--dry-run lists its steps)")
    resolved = bench_device(target)  # no GPU here → one line, non-zero exit
    doc = source_checkout_doc() if write_docs else None

    def write(report: Any) -> Any:
        if doc is None:
            return None
        path = publish(report, doc)
        err.print(f"updated section {report.section} of {path}", markup=False)
        return path

    outcomes = gpu_check.run(str(resolved), publish=write,
                             progress=lambda line: err.print(line, style="dim", markup=False))
    for outcome in outcomes:
        if outcome.report is not None:
            _render(outcome.report)
    typer.echo(gpu_check.summary(outcomes))
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)
