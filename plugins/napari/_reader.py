"""npe2 readers: slides/rasters as multiscale image layers, gigavim OME-Zarr as image + labels.

napari asks each reader's ``get_*_reader(path)`` first; returning ``None`` declines, so another
plugin (e.g. napari-ome-zarr for other zarrs) can take the file, and nothing raises into napari.
The layer functions return napari ``LayerData`` tuples ``(data, kwargs, layer_type)`` and import
napari only for the labels colormap; ``gigavim view`` builds its viewer from the same tuples.

Placement: every layer gets ``scale`` = its pixel size (µm for slides, metres for rasters) and
``translate`` = half a pixel, so each layer's top-left *edge* sits at world 0. A slide at 0.5
µm/px and its 4 µm/px segmentation then overlap exactly, although napari puts pixel centres at
``index * scale``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[str | Sequence[str]], list[LayerData]]

#: Root attribute that marks an OME-Zarr as written by gigavim (see docs/outputs.md).
GIGAVIM_ATTR = "gigavim"
#: Classes drawn transparent in the overlay so the tissue/scene stays visible under it.
TRANSPARENT_CLASSES = ("background", "nodata")


# -- slides and rasters -----------------------------------------------------------------------
def get_image_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """The reader for what needs gigavim: slides (OpenSlide formats, tiled pyramids, OME-TIFF
    and OME-Zarr images) and georeferenced or very large rasters. ``None`` for plain images
    (a PNG/JPEG/TIFF that napari's builtin reader shows as well) and anything unreadable."""
    paths = _as_paths(path)
    if not paths or not all(_needs_gigavim(p) for p in paths):
        return None
    return _read_images


def _read_images(path: str | Sequence[str]) -> list[LayerData]:
    return [layer for p in _as_paths(path) for layer in image_layers(p)]


def _needs_gigavim(path: str) -> bool:
    """Whether gigavim reads ``path`` (headers only) as more than a plain picture: a slide, or a
    raster (georeferenced, or too large to load whole). Any failure means 'not ours'."""
    from gigavim.io import open_image

    if gigavim_attrs(path) is not None:  # a gigavim output: the zarr reader's
        return False
    try:
        with open_image(path) as src:
            return src.kind != "image"
    except Exception:  # a reader must decline, never raise into napari
        return False


def image_layers(path: str | os.PathLike[str], *, chunk: int = 1024) -> list[LayerData]:
    """One multiscale image layer for a slide/raster/image: a lazy dask array per level."""
    from gigavim.io import open_image

    src = open_image(path)
    levels = [src.to_dask(i, chunk=chunk) for i in range(src.level_count)]
    unit, (pixel_y, pixel_x) = _source_pixel(src)
    kwargs: dict[str, Any] = {
        "name": Path(path).name,
        "metadata": {"path": str(Path(path)), "gigavim_source": src.describe()},
        "multiscale": len(levels) > 1,
        **_placement(pixel_y, pixel_x, unit),
    }
    rgb = src.bands in (3, 4) and np.dtype(src.dtype) == np.uint8
    if rgb:
        kwargs["rgb"] = True
    elif src.bands == 1:
        levels = [lvl[..., 0] for lvl in levels]
        kwargs["rgb"] = False
    else:  # multi-band rasters: one layer per band (napari splits along channel_axis)
        kwargs["rgb"] = False
        kwargs["channel_axis"] = 2
        kwargs["name"] = [f"{Path(path).name} [{name}]" for name in _band_labels(src.band_names, src.bands)]
    data = levels if len(levels) > 1 else levels[0]
    return [(data, kwargs, "image")]


def _band_labels(band_names: list[str], bands: int) -> list[str]:
    """The file's band names when they tell the bands apart, else ``band 1``, ``band 2``, ..."""
    names = [n for n in band_names if n and n.lower() not in ("undefined", "gray", "grey")]
    if len(names) == bands and len(set(names)) == bands:
        return names
    return [f"band {i + 1}" for i in range(bands)]


def _source_pixel(src: Any) -> tuple[str | None, tuple[float, float]]:
    """(napari unit, (y, x) pixel size): µm for slides and microscopy, metres for rasters (each
    axis its own ground size, as the writers do: on EPSG:4326 a pixel is not square on the
    ground), else pixels."""
    if src.mpp:
        return "micrometer", (float(src.mpp), float(src.mpp))
    if src.ground_pixel_yx:
        return "meter", (float(src.ground_pixel_yx[0]), float(src.ground_pixel_yx[1]))
    if src.gsd_m:
        return "meter", (float(src.gsd_m), float(src.gsd_m))
    return None, (1.0, 1.0)


def _placement(pixel_y: float, pixel_x: float, unit: str | None) -> dict[str, Any]:
    """``scale``/``translate`` (and ``units`` where napari has them) with the edge at world 0."""
    out: dict[str, Any] = {
        "scale": (pixel_y, pixel_x),
        "translate": (pixel_y / 2, pixel_x / 2),
    }
    if unit and _layers_take_units():
        out["units"] = (unit, unit)
    return out


def _layers_take_units() -> bool:
    """napari ≥ 0.6 layers accept ``units`` (scale bar in µm / m); older ones reject the kwarg."""
    try:
        import inspect

        from napari.layers import Image
    except ImportError:
        return False
    return "units" in inspect.signature(Image.__init__).parameters


# -- gigavim OME-Zarr outputs -----------------------------------------------------------------
def get_zarr_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """The reader for gigavim OME-Zarr outputs; ``None`` for other zarrs (napari-ome-zarr's)."""
    paths = _as_paths(path)
    if not paths or not all(gigavim_attrs(p) is not None for p in paths):
        return None
    return _read_zarrs


def _read_zarrs(path: str | Sequence[str]) -> list[LayerData]:
    return [layer for p in _as_paths(path) for layer in zarr_layers(p)]


def gigavim_attrs(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``gigavim`` root attribute of an OME-Zarr directory, or ``None`` if it has none."""
    import zarr

    if not Path(path).is_dir():
        return None
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs.get(GIGAVIM_ATTR)
    except Exception:  # not a zarr group, or unreadable: not ours
        return None
    return attrs if isinstance(attrs, dict) else None


def zarr_layers(path: str | os.PathLike[str], *, image: bool = True) -> list[LayerData]:
    """The layers of a gigavim output: its image (if any), probabilities (hidden), labels.

    ``image=False`` gives only the labels and probabilities: the overlay for a source that is
    already open (``gigavim view --labels``, the segment widget).
    """
    import zarr

    from gigavim.errors import InputError

    attrs = gigavim_attrs(path)
    if attrs is None:
        raise InputError(f"{path}: not a gigavim OME-Zarr output (no '{GIGAVIM_ATTR}' root attribute)")
    root = zarr.open_group(str(path), mode="r")
    name = Path(path).name
    layers: list[LayerData] = []
    multiscale = root.attrs.get("multiscales", [{}])[0]
    if image and multiscale.get("name") != "classes":  # "classes": a copy of the labels
        layers.append(_image_layer(root, multiscale, name))
    if attrs.get("probabilities"):
        layers.append(_probability_layer(root[attrs["probabilities"]], attrs["classes"], name))
    layers.append(_labels_layer(root[attrs.get("labels", "labels/segmentation")], name, str(path), attrs))
    if attrs.get("instances"):
        layers.append(_instances_layer(root[attrs["instances"]], name))
    return layers


def _instances_layer(group: Any, name: str) -> LayerData:
    """One id per object (e.g. nuclei) in napari's own label colours, so touching objects differ."""
    levels, (py, px), unit = _levels(group, group.attrs["multiscales"][0])
    kwargs = {"name": f"{name} {group.basename}", "multiscale": len(levels) > 1, "opacity": 0.6,
              **_placement(py, px, _napari_unit(unit))}
    return (levels if len(levels) > 1 else levels[0], kwargs, "labels")


def _levels(group: Any, multiscale: dict[str, Any]) -> tuple[list[Any], tuple[float, float], str | None]:
    """(dask level arrays, level-0 (y, x) pixel size, unit) of one NGFF multiscale group."""
    import dask.array as da

    datasets = multiscale["datasets"]
    levels = [da.from_zarr(group[d["path"]]) for d in datasets]
    scale = next(t["scale"] for t in datasets[0]["coordinateTransformations"] if t["type"] == "scale")
    unit = multiscale.get("axes", [{}])[-1].get("unit")
    return levels, (float(scale[-2]), float(scale[-1])), unit


def _image_layer(root: Any, multiscale: dict[str, Any], name: str) -> LayerData:
    """The output's picture of the source (c, y, x) as an RGB (y, x, c) image layer."""
    levels, (py, px), unit = _levels(root, multiscale)
    rgb = levels[0].ndim == 3 and levels[0].shape[0] in (3, 4)
    if rgb:
        levels = [lvl.transpose(1, 2, 0) for lvl in levels]
    kwargs = {"name": f"{name} image", "rgb": rgb, "multiscale": len(levels) > 1,
              **_placement(py, px, _napari_unit(unit))}
    return (levels if len(levels) > 1 else levels[0], kwargs, "image")


def _probability_layer(group: Any, classes: list[str], name: str) -> LayerData:
    """Per-class probabilities (×255), one hidden layer per class."""
    levels, (py, px), unit = _levels(group, group.attrs["multiscales"][0])
    kwargs = {"name": [f"{name} P({c})" for c in classes], "channel_axis": 0, "visible": False,
              "contrast_limits": [0, 255], "multiscale": len(levels) > 1,
              **_placement(py, px, _napari_unit(unit))}
    return (levels if len(levels) > 1 else levels[0], kwargs, "image")


def _labels_layer(group: Any, name: str, path: str, attrs: dict[str, Any] | None = None) -> LayerData:
    """The class-id pyramid with the NGFF class colours and class names as features; the output's
    ``gigavim`` attributes ride along in the metadata so the writer can save edits back."""
    levels, (py, px), unit = _levels(group, group.attrs["multiscales"][0])
    label_meta = group.attrs["image-label"]
    classes = {p["label-value"]: p["class"] for p in label_meta.get("properties", [])}
    kwargs = {
        "name": f"{name} segmentation",
        "multiscale": len(levels) > 1,
        "colormap": label_colormap(label_meta.get("colors", []), classes),
        "features": {"index": list(classes), "class": list(classes.values())},
        "opacity": 0.5,
        "metadata": {"path": path, "classes": classes, GIGAVIM_ATTR: attrs or {}},
        **_placement(py, px, _napari_unit(unit)),
    }
    return (levels if len(levels) > 1 else levels[0], kwargs, "labels")


def label_rgba(colors: list[dict[str, Any]], classes: dict[int, str]) -> dict[int | None, np.ndarray]:
    """{label: RGBA in 0..1} from NGFF ``image-label`` colours; background/nodata transparent."""
    table: dict[int | None, np.ndarray] = {None: np.zeros(4, dtype=np.float32)}
    for entry in colors:
        value = int(entry["label-value"])
        rgba = np.asarray(entry["rgba"], dtype=np.float32) / 255.0
        if classes.get(value) in TRANSPARENT_CLASSES:
            rgba[3] = 0.0
        table[value] = rgba
    return table


def label_colormap(colors: list[dict[str, Any]], classes: dict[int, str]) -> Any:
    """A napari ``DirectLabelColormap`` with exactly the output's class colours."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict=label_rgba(colors, classes))


def _napari_unit(ngff_unit: str | None) -> str | None:
    return ngff_unit if ngff_unit in ("micrometer", "meter") else None


def _as_paths(path: str | Sequence[str]) -> list[str]:
    return [str(path)] if isinstance(path, (str, os.PathLike)) else [str(p) for p in path]
