"""``gigavim segment``: one slide or scene in, OME-Zarr / GeoTIFF / GeoJSON out.

Parses options, calls :func:`gigavim.segment`, and renders its progress (a rich bar on a
terminal, nothing otherwise) and its summary (one line, or JSON with ``--json``).
"""

from __future__ import annotations

import json
import sys
import warnings
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
from gigavim.errors import UsageError

if TYPE_CHECKING:  # the engine imports torch: keep `gigavim --help`/`info` fast
    from gigavim.engine.progress import Progress
    from gigavim.engine.segment import SegmentResult


class RichProgressBar:
    """Renders engine progress as a rich bar on stderr: tiles done/total, MP/s, ETA."""

    def __init__(self, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("tiles  {task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self._task = self._bar.add_task(description, total=None, rate="")

    def __enter__(self) -> RichProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, p: Progress) -> None:
        self._bar.update(self._task, completed=p.tiles_done, total=p.tiles_total,
                         rate=f"{p.megapixels_per_s:.2f} MP/s")


def summary_line(r: SegmentResult) -> str:
    """The one line printed at the end of a run."""
    if r.mpp is not None:
        res = f"{r.mpp:.3g} µm/px"
    elif r.gsd_m is not None:
        res = f"{r.gsd_m:.3g} m/px"
    else:
        res = f"level {r.level}"
    resumed = f", {r.tiles_resumed} resumed" if r.tiles_resumed else ""
    objects = ""
    if r.objects is not None:
        from gigavim.io.writers.objects import plural

        per = f" ({r.object_density:,.0f} per {r.density_unit})" if r.object_density is not None else ""
        objects = f"{r.objects} {plural(r.object_class or 'object')}{per}; "
    return (f"{Path(r.source).name}: {r.shape[1]}×{r.shape[0]} px at {res} in {r.seconds:.1f} s "
            f"({r.megapixels_per_s:.2f} MP/s, {r.megapixels_per_s_level0:.2f} MP/s at level 0); "
            f"foreground {r.foreground_fraction:.1%}; {r.tiles_computed} of {r.tiles_total} tiles "
            f"computed ({r.tiles_total - r.tiles_foreground} empty skipped{resumed}); {objects}"
            f"model {r.model}{'' if r.trained else ' (UNTRAINED)'} → {', '.join(r.outputs)}")


@app.command()
def segment(
    input_path: Path | None = typer.Argument(None, metavar="INPUT", help="Slide or raster to segment."),
    output: list[Path] = typer.Option(
        [], "-o", "--output", help="Output file; repeat for several (.zarr/.ome.zarr, .tif, .geojson, .csv: "
        "a table of objects, for models that separate them)."
    ),
    model: str | None = typer.Option(None, "--model", help="Bundled model name or model file path."),
    mpp: float | None = typer.Option(None, "--mpp", help="Working resolution in µm/px (slides)."),
    gsd: float | None = typer.Option(None, "--gsd", help="Working resolution in metres/px (rasters)."),
    level: int | None = typer.Option(None, "--level", help="Work at this pyramid level's pixels."),
    tile: int | None = typer.Option(None, "--tile", help="Tile size in working pixels (model default)."),
    overlap: int | None = typer.Option(None, "--overlap", help="Tile overlap in pixels (model default)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Tiles per forward pass."),
    workers: int = typer.Option(2, "--workers", help="Threads reading tiles (and measuring objects)."),
    tissue_model: str | None = typer.Option(
        None, "--tissue-model", help="Mask slides with this model (e.g. 'tissue') instead of Otsu."
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda[:N]."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    allow_untrained: bool = typer.Option(
        False, "--allow-untrained", help="Run a randomly initialised model (outputs are labelled so)."
    ),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also store per-class probabilities."),
    with_image: bool = typer.Option(
        False, "--with-image", help="OME-Zarr: store the source's pixels as the image under the labels."
    ),
    min_area: float | None = typer.Option(
        None, "--min-area", help="Drop objects smaller than this (µm² on slides, m² on rasters); "
        "default: the model's rule. Models that separate objects only."
    ),
    image_mpp: float | None = image_mpp_option(),
    context: Context = context_option(),
    tta: int | None = tta_option(),
    stain_norm: bool | None = stain_norm_option(),
    bands: str | None = bands_option(),
    force_resolution: bool = force_resolution_option(),
    sample: bool = typer.Option(False, "--sample", help="Segment the bundled sample slide."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Segment a slide or scene into seam-free label maps, streaming in bounded memory."""
    from gigavim.engine import segment as run_segment

    if sample and input_path is not None:
        raise UsageError("give either INPUT or --sample, not both")
    if sample:
        from gigavim.data import sample_slide

        input_path = sample_slide()
    if input_path is None:
        raise UsageError("give an INPUT image (or --sample for the bundled slide)")
    if not output:
        raise UsageError("give at least one output with -o OUTPUT")
    show_bar = not quiet and not json_out and sys.stderr.isatty()
    bar = RichProgressBar(f"segmenting {input_path.name}") if show_bar else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the result carries them; printed below
        with bar or nullcontext():
            result = run_segment(
                input_path, output, model=model, mpp=mpp, gsd=gsd, level=level, tile=tile,
                overlap=overlap, batch_size=batch_size, device=device, resume=resume,
                overwrite=overwrite, allow_untrained=allow_untrained, probabilities=probabilities,
                workers=workers, tissue_model=tissue_model, progress=bar, context=context.value,
                with_image=with_image,
                bands=bands, force_resolution=force_resolution,
                min_area=min_area, image_mpp=image_mpp, tta=tta, stain_norm=stain_norm,
            )
    for note in result.warnings:
        typer.echo(f"gigavim: warning: {note}", err=True)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    elif not quiet:
        typer.echo(summary_line(result))
