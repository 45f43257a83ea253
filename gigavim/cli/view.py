"""``gigavim view``: look at a slide or raster in napari, with a segmentation overlay.

napari is an optional extra (``pip install 'gigavim[napari]'``), imported only here, inside the
command, so the rest of the CLI starts without Qt.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gigavim.cli._app import app
from gigavim.errors import UsageError


@app.command()
def view(
    path: Path = typer.Argument(..., help="Slide, raster, image or gigavim OME-Zarr output to open."),
    labels: Path | None = typer.Option(
        None, "--labels", help="A gigavim OME-Zarr output to overlay (its segmentation labels)."
    ),
) -> None:
    """Open PATH in napari (multiscale, physical units), optionally with a segmentation overlay."""
    try:
        import napari
    except ImportError as exc:
        raise UsageError("gigavim view needs napari: pip install 'gigavim[napari]'") from exc
    from gigavim.napari._viewer import open_viewer

    open_viewer(path, labels)
    napari.run()
