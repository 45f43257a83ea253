"""npe2 widget "Segment with gigavim": the library's ``segment`` on an open image, off the GUI thread.

The image must have come from a file (napari's ``layer.source.path``, or the ``path`` this
plugin's readers put in the layer metadata): gigavim segments the file at full fidelity, not
the pixels on screen. ``context`` chooses tile mode or the whole image as one Vim sequence. The
run happens in a napari ``thread_worker`` so the viewer stays live; its progress (steps done of
total: tiles, or band passes in whole-image mode) drives a napari progress bar, and the finished
OME-Zarr's segmentation is added as a labels layer over the image. User errors are one line,
shown once; they never raise into the main thread (a script without ``napari.run()`` goes on).
The output defaults to ``<input>.segmentation.ome.zarr`` beside the input (absolute; a relative
name is taken beside the input too, never in napari's working directory).
"""

# No ``from __future__ import annotations``: magicgui reads the real annotation objects.
from pathlib import Path
from typing import Any

from gigavim.napari._reader import zarr_layers
from gigavim.napari._segment_job import default_output, resolve_output, segment_outcome
from magicgui import magic_factory

import napari
from gigavim.errors import UsageError

#: Workers still running: napari does not keep a reference to a started worker itself.
_RUNNING: set[Any] = set()


#: The model choice that lets gigavim pick by input (tissue for slides; rasters by bands and pixel size).
DEFAULT_MODEL = ""

#: ``gigavim.segment``'s ``context``: (label, value). Whole image = ONE Vim sequence over the image,
#: streamed layer by layer (memory stays bounded; see docs/segment.md, "Whole-image context").
CONTEXT_CHOICES = [("tile", "tile"), ("whole image", "image")]


def model_choices(_widget: Any = None) -> list[tuple[str, str]]:
    """(label, name) per bundled model, e.g. ``tissue (slide: background, tissue)``."""
    from gigavim.models.catalog import list_models

    return [("default for the image kind", DEFAULT_MODEL)] + [
        (f"{m['name']} ({m['input_kind']}: {', '.join(m['classes'])})", m["name"]) for m in list_models()
    ]


def layer_source_path(layer: Any) -> Path:
    """The file an image layer was read from; a ``UsageError`` for layers made in memory."""
    path = getattr(getattr(layer, "source", None), "path", None) or layer.metadata.get("path")
    if not path:
        raise UsageError(f"layer {layer.name!r} was not opened from a file: gigavim segments files "
                         "(open the slide or raster with File > Open)")
    return Path(path)


def add_layer_data(viewer: "napari.Viewer", layers: list[tuple[Any, dict[str, Any], str]]) -> list[Any]:
    """Add ``LayerData`` tuples through the public ``add_<type>`` (which understands channel_axis)."""
    added = []
    for data, kwargs, layer_type in layers:
        result = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
        added.extend(result if isinstance(result, list) else [result])
    return added


def _init_widget(widget: Any) -> None:
    """Fill the output with the default beside the chosen image's file, when one is chosen
    (unless the user typed an output of their own)."""
    auto: dict[str, Any] = {"path": None}

    def follow(layer: Any) -> None:
        if layer is None:
            return
        try:
            source = layer_source_path(layer)
        except UsageError:
            return
        if str(widget.output.value) in ("", ".") or widget.output.value == auto["path"]:
            auto["path"] = default_output(source)
            widget.output.value = auto["path"]

    widget.image.changed.connect(follow)
    follow(widget.image.value)


@magic_factory(
    widget_init=_init_widget,
    call_button="Segment",
    model={"choices": model_choices},
    resolution={"min": 0.0, "max": 1e6, "step": 0.25,
                "label": "resolution (µm/px, m/px; 0 = model's)"},
    context={"choices": CONTEXT_CHOICES, "label": "context"},
    bands={"label": "bands (e.g. 4,3,2; empty: as they are)"},
    image_mpp={"min": 0.0, "max": 1e3, "step": 0.05,
               "label": "pixel size if the file has none (µm/px; 0 = none)"},
    output={"mode": "w", "filter": "*.zarr"},
)
def segment_widget(
    viewer: napari.Viewer,
    image: napari.layers.Image,
    model: str = DEFAULT_MODEL,
    resolution: float = 0.0,
    context: str = "tile",
    bands: str = "",
    image_mpp: float = 0.0,
    output: Path = Path(),
    overwrite: bool = False,
) -> None:
    """Segment the image's file with a bundled model; add the result as a labels layer."""
    from napari.qt.threading import thread_worker
    from napari.utils import progress
    from napari.utils.notifications import show_error, show_info, show_warning

    try:
        source = layer_source_path(image)
    except UsageError as err:
        show_error(f"gigavim: {err}")
        return
    output = resolve_output(source, output)
    bar = progress(total=0, desc=f"gigavim: segmenting {source.name}")
    # ignore_errors: a bug is reported once by napari's own notification, not re-raised into
    # the main thread; user errors come back as results (segment_outcome).
    worker = thread_worker(segment_outcome, ignore_errors=True)(
        source, output, model=model or None, resolution=resolution or None, overwrite=overwrite,
        context=context, bands=bands.strip() or None, image_mpp=image_mpp or None,
    )

    def on_progress(p: Any) -> None:
        bar.total = p.tiles_total
        bar.n = p.tiles_done
        bar.refresh()

    def on_done(result: Any) -> None:
        if isinstance(result, Exception):
            show_error(f"gigavim: {result}")
            return
        overlay = [layer for layer in zarr_layers(output, image=False) if layer[2] == "labels"]
        add_layer_data(viewer, overlay)
        show_info(f"gigavim: {source.name} → {output} in {result.seconds:.1f} s, "
                  f"foreground {result.foreground_fraction:.1%}")
        for note in result.warnings:  # e.g. values far outside the model's training range
            show_warning(f"gigavim: {note}")

    def on_finished() -> None:
        bar.close()
        _RUNNING.discard(worker)

    worker.yielded.connect(on_progress)
    worker.returned.connect(on_done)
    worker.finished.connect(on_finished)
    _RUNNING.add(worker)
    worker.start()
