"""``gigavim batch``: a folder (or globs) of slides and scenes in, one set of outputs per input.

Parses options, calls :func:`gigavim.pipelines.run_batch`, and renders a bar over inputs on a
terminal, a summary table at the end (or the manifest with ``--json``). Exits 1 when any input
failed, so scripts and schedulers notice.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gigavim.cli._app import app
from gigavim.cli._options import (
    Context,
    bands_option,
    context_option,
    force_resolution_option,
    image_mpp_option,
    stain_norm_option,
    tta_option,
)

if TYPE_CHECKING:
    from gigavim.pipelines import BatchReport, InputRecord


class InputsProgressBar:
    """A rich bar over inputs on stderr: settled/total and the last input's verdict."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TextColumn("inputs"),
            TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
            console=Console(stderr=True), transient=True,
        )
        self._task = self._bar.add_task("batch", total=None, last="")

    def __enter__(self) -> InputsProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, record: InputRecord, settled: int, total: int) -> None:
        self._bar.update(self._task, completed=settled, total=total,
                         last=f"{Path(record.input).name}: {record.status}")


def summary_table(report: BatchReport) -> object:
    """One row per input: status, seconds, outputs or the error line."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"gigavim batch → {report.out_dir}", title_justify="left")
    for column in ("input", "status", "model", "seconds", "outputs / error"):
        table.add_column(column, overflow="fold")
    style = {"ok": "green", "failed": "bold red", "skipped": "dim", "pending": "yellow"}
    for r in report.records:
        model = (r.summary or {}).get("model", "")
        seconds = f"{r.seconds:.1f}" if r.seconds is not None else ""
        detail = r.error if r.status == "failed" else ", ".join(Path(o).name for o in r.outputs)
        # File names and error lines are data, not rich markup ("scan [red].svs").
        table.add_row(escape(Path(r.input).name), f"[{style[r.status]}]{r.status}", escape(model),
                      seconds, escape(detail or ""))
    return table


@app.command()
def batch(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...",
                                       help="Slides/rasters, folders of them, or glob patterns."),
    out_dir: Path = typer.Option(..., "-o", "--out-dir", help="Folder for the outputs and the manifest."),
    formats: list[str] = typer.Option(["ome.zarr"], "--format", "-f",
                                      help="Output format per input; repeat: ome.zarr, tif, geojson, "
                                           "csv (objects)."),
    model: str | None = typer.Option(None, "--model",
                                     help="Model name or file (default: each input kind's own)."),
    address: str | None = typer.Option(None, "--address",
                                       help="Run on this dask scheduler (tcp://host:8786)."),
    workers: int | None = typer.Option(None, "--workers",
                                       help="Local worker processes (default: cores / 4)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute and replace existing outputs."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Do not continue half-done inputs."),
    mpp: float | None = typer.Option(None, "--mpp", help="Working resolution in µm/px (slides)."),
    gsd: float | None = typer.Option(None, "--gsd", help="Working resolution in metres/px (rasters)."),
    tile: int | None = typer.Option(None, "--tile", help="Tile size in working pixels (model default)."),
    overlap: int | None = typer.Option(None, "--overlap", help="Tile overlap in pixels (model default)."),
    image_mpp: float | None = image_mpp_option(),
    batch_size: int = typer.Option(4, "--batch-size", help="Tiles per forward pass."),
    context: Context = context_option("each input's whole image"),
    tta: int | None = tta_option(),
    stain_norm: bool | None = stain_norm_option(),
    bands: str | None = bands_option(),
    force_resolution: bool = force_resolution_option(),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda[:N]."),
    allow_untrained: bool = typer.Option(
        False, "--allow-untrained", help="Run a randomly initialised model (outputs are labelled so)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary table."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Segment many slides/scenes on dask.distributed, skipping finished ones; manifest in OUT_DIR."""
    from gigavim.pipelines import run_batch

    options = {"mpp": mpp, "gsd": gsd, "tile": tile, "overlap": overlap, "bands": bands,
               "image_mpp": image_mpp, "tta": tta, "stain_norm": stain_norm}
    segment_kwargs = {k: v for k, v in options.items() if v is not None}
    if force_resolution:
        segment_kwargs["force_resolution"] = True
    segment_kwargs.update(batch_size=batch_size, device=device, allow_untrained=allow_untrained,
                          context=context.value)
    bar = InputsProgressBar() if not quiet and not json_out and sys.stderr.isatty() else None
    with bar or nullcontext():
        report = run_batch(inputs, out_dir, formats=formats, model=model, address=address,
                           n_workers=workers, overwrite=overwrite, resume=not no_resume,
                           segment_kwargs=segment_kwargs, progress=bar)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        from rich.console import Console

        Console().print(summary_table(report))
        typer.echo(f"{report.count('ok')} ok, {report.count('skipped')} skipped, "
                   f"{report.count('failed')} failed in {report.seconds:.1f} s; "
                   f"manifest {report.manifest_path}")
    for record in report.failed:
        typer.echo(f"gigavim: error: {record.error}", err=True)
    raise typer.Exit(code=report.exit_code)
