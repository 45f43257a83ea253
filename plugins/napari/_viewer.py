"""A napari viewer on a slide/raster (or a gigavim output) with an optional segmentation overlay.

``gigavim view`` uses this; it goes through the plugin's reader functions, so the CLI and
File > Open show the same layers. Every file is opened and checked before the window appears,
so a bad path is one error line, not an empty viewer.
"""

from __future__ import annotations

import os
from typing import Any

from gigavim.napari._reader import LayerData, gigavim_attrs, image_layers, zarr_layers
from gigavim.napari._widget import add_layer_data


def view_layers(
    path: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None
) -> list[LayerData]:
    """The layers ``gigavim view PATH --labels OUT`` shows (raises ``GigavimError`` for bad files)."""
    layers = zarr_layers(path) if gigavim_attrs(path) is not None else image_layers(path)
    if labels is not None:
        layers += zarr_layers(labels, image=False)
    return layers


def open_viewer(path: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None, *,
                show: bool = True) -> Any:
    """A ``napari.Viewer`` holding :func:`view_layers`, zoomed to fit; the caller runs the loop."""
    import napari

    layers = view_layers(path, labels)
    viewer = napari.Viewer(title=f"gigavim: {os.path.basename(os.fspath(path))}", show=show)
    add_layer_data(viewer, layers)
    viewer.reset_view()
    return viewer
