"""Ground truth for training and evaluation, put onto an image's pixel grid.

Three kinds of label source are accepted, each mapped onto the grid of one level of an
:class:`~gigavim.io.base.ImageSource`:

* a label image (PNG/TIFF) with the image's size: class ids, or instance ids (0 = background,
  1..N objects) that become foreground for binary tasks;
* a georeferenced label raster on another grid: reprojected onto the image grid with
  ``rasterio.warp.reproject`` (nearest), pixels it does not cover become "ignore";
* in any label raster, nodata pixels and NaN/±inf (float rasters, tagged or not) are "ignore",
  never class 0;
* GeoJSON / QuPath annotations: rasterized with ``rasterio.features.rasterize`` in the image's
  CRS for rasters, in level-0 pixel coordinates (QuPath's convention) for slides and images.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

from gigavim.errors import InputError, UsageError
from gigavim.io.base import ImageSource
from gigavim.train.level_image import row_blocks
from gigavim.train.metrics import IGNORE_LABEL

LabelMode = Literal["binary", "values"]
VECTOR_SUFFIXES = (".geojson", ".json")
_OUTSIDE = -1  # raw value for "no label here" before class mapping


def level_transform(source: ImageSource, level: int) -> Affine:
    """Affine from a level's pixel grid to the source's coordinates.

    For georeferenced rasters that is the CRS; otherwise level-0 pixel coordinates.
    """
    ds = source.levels[level].downsample
    base = source.transform if (source.transform is not None and source.crs) else Affine.identity()
    return base @ Affine.scale(ds, ds)


def load_label_map(source: ImageSource, label_path: str | Path, *, level: int = 0,
                   mode: LabelMode = "binary", value_map: Mapping[int, int] | None = None,
                   class_names: list[str] | None = None) -> np.ndarray:
    """(H, W) uint8 class ids on ``level``'s grid; :data:`IGNORE_LABEL` where unlabelled.

    ``mode="binary"`` turns every value > 0 into class 1; ``"values"`` keeps values as class
    ids. ``value_map`` (raw value → class id, or :data:`IGNORE_LABEL`) is applied first.
    ``class_names`` map GeoJSON/QuPath classification names to ids.
    """
    label_path = Path(label_path)
    if not label_path.is_file():
        raise InputError(f"{label_path}: label file not found")
    if label_path.suffix.lower() in VECTOR_SUFFIXES:
        raw = rasterize_annotations(source, label_path, level=level, class_names=class_names)
    else:
        raw = read_label_raster(source, label_path, level=level)
    return to_class_ids(raw, mode=mode, value_map=value_map, path=label_path)


def to_class_ids(raw: np.ndarray, *, mode: LabelMode = "binary",
                 value_map: Mapping[int, int] | None = None, path: Path | None = None) -> np.ndarray:
    """Raw label values (``-1`` = not covered) → uint8 class ids with ignore.

    Converted strip by strip, so a whole-slide label map needs one byte per pixel plus one strip
    of int64 temporaries, not several full-size int64 copies.
    """
    raw = np.asarray(raw)
    if raw.ndim != 2:
        return _class_ids(raw, mode, value_map, path)
    out = np.empty(raw.shape, dtype=np.uint8)
    for y0, y1 in row_blocks(*raw.shape):
        out[y0:y1] = _class_ids(raw[y0:y1], mode, value_map, path)
    return out


def _class_ids(raw: np.ndarray, mode: LabelMode, value_map: Mapping[int, int] | None,
               path: Path | None) -> np.ndarray:
    raw = raw.astype(np.int64)
    out = np.full(raw.shape, IGNORE_LABEL, dtype=np.uint8)
    covered = raw != _OUTSIDE
    values = raw.copy()
    mapped = np.zeros(raw.shape, dtype=bool)
    if value_map:
        for src, dst in value_map.items():
            hit = covered & (raw == int(src))
            values[hit] = int(dst)
            mapped |= hit
    if mode == "binary":
        unmapped = covered & ~mapped
        values[unmapped] = (raw[unmapped] > 0).astype(np.int64)
    elif mode != "values":
        raise ValueError(f"unknown label mode {mode!r}")
    bad = covered & ((values < 0) | (values > IGNORE_LABEL))
    if bad.any():
        where = f"{path}: " if path else ""
        raise InputError(f"{where}label value {int(raw[bad][0])} is not a class id (0..254); "
                         "use binary mode or a value map")
    out[covered] = values[covered].astype(np.uint8)
    return out


def check_class_ids(labels: np.ndarray, classes: list[str], path: Path | str | None) -> None:
    """Refuse labels with a class id beyond ``classes`` (training would crash, scores drop them)."""
    k = len(classes)
    bad = (labels >= k) & (labels != IGNORE_LABEL)
    if bad.any():
        raise UsageError(f"{path}: label value {int(labels[bad].min())} is not a class id of the {k} "
                         f"classes {classes} (0..{k - 1}); give more classes, a value map "
                         "(RAW:CLASS, 255 = ignore), or use binary labels")


def read_label_raster(source: ImageSource, label_path: Path, *, level: int = 0) -> np.ndarray:
    """A label image/raster on the level's grid, as raw signed integers (``-1`` = not covered)."""
    lv = source.levels[level]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(label_path) as src:
                band = _raw_band(src, label_path)
                both_georef = bool(src.crs) and bool(source.crs) and source.transform is not None
                if both_georef and not _same_grid(src, source, level):
                    return _reproject_labels(src, band, source, level)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{label_path}: cannot read label image ({exc})") from exc
    if band.shape == (lv.height, lv.width):
        return band
    if band.shape == (source.height, source.width):
        return _nearest_resize(band, (lv.height, lv.width))
    raise InputError(f"{label_path}: label image is {band.shape[1]}×{band.shape[0]} px but the image "
                     f"{source.path.name} is {source.width}×{source.height} px (and has no common "
                     "georeference to align them)")


def _raw_band(src: Any, label_path: Path) -> np.ndarray:
    """Band 1 as raw signed integers, ``-1`` where unlabelled: the nodata value (as the mask says)
    and, in float rasters, NaN/±inf whether or not a nodata tag says so (never class 0)."""
    band = src.read(1)
    _refuse_colour_labels(src, band, label_path)
    missing = ~np.isfinite(band) if band.dtype.kind == "f" else np.zeros(band.shape, dtype=bool)
    if src.nodata is not None:
        missing |= src.read_masks(1) == 0
    band[missing] = 0  # no NaN left to cast
    raw = band.astype(_signed(band.dtype))
    raw[missing] = _OUTSIDE
    return raw


def _signed(dtype: np.dtype) -> np.dtype:
    """The smallest signed integer type holding ``dtype``'s values and ``-1`` (int64 for floats)."""
    wider = np.promote_types(dtype, np.int8)
    return wider if wider.kind == "i" else np.dtype(np.int64)


def _refuse_colour_labels(src: Any, band: np.ndarray, label_path: Path) -> None:
    """Only band 1 is read: a colour-coded mask (classes as RGB colours) would lose classes."""
    colour = [i for i in range(2, min(src.count, 3) + 1)
              if src.colorinterp[i - 1] != rasterio.enums.ColorInterp.alpha]
    if any(not np.array_equal(src.read(i), band, equal_nan=band.dtype.kind == "f") for i in colour):
        raise InputError(f"{label_path}: label image has differing colour bands; give class ids "
                         "(or 0/255) in a single-band image")


def _same_grid(src: Any, source: ImageSource, level: int) -> bool:
    lv = source.levels[level]
    same_crs = rasterio.crs.CRS.from_user_input(source.crs) == src.crs
    return (same_crs and (src.height, src.width) == (lv.height, lv.width)
            and src.transform.almost_equals(level_transform(source, level)))


def _reproject_labels(src: Any, band: np.ndarray, source: ImageSource, level: int) -> np.ndarray:
    """Nearest-neighbour reprojection of raw ``band`` onto the image grid; uncovered and
    unlabelled pixels become ``-1``."""
    from rasterio.warp import Resampling, reproject

    lv = source.levels[level]
    dst = np.full((lv.height, lv.width), _OUTSIDE, dtype=np.int32)
    reproject(
        source=band.astype(np.int32), destination=dst,
        src_transform=src.transform, src_crs=src.crs, src_nodata=_OUTSIDE,
        dst_transform=level_transform(source, level), dst_crs=source.crs, dst_nodata=_OUTSIDE,
        resampling=Resampling.nearest,
    )
    return dst


def _nearest_resize(band: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows = (np.arange(shape[0]) + 0.5) * band.shape[0] / shape[0]
    cols = (np.arange(shape[1]) + 0.5) * band.shape[1] / shape[1]
    return band[rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]]


def rasterize_annotations(source: ImageSource, path: Path, *, level: int = 0,
                          class_names: list[str] | None = None) -> np.ndarray:
    """GeoJSON / QuPath features burnt onto the level's grid (raw int32 values, 0 = background).

    A feature's value is its QuPath ``classification.name`` (or ``class``/``label`` property)
    looked up in ``class_names``, else 1. Geometries in a GeoJSON with a ``crs`` member are
    transformed into the raster's CRS; without one they are taken to be in the image's own
    coordinates (the raster's CRS, or level-0 pixels for slides and images).
    """
    from rasterio.features import rasterize

    lv = source.levels[level]
    features, crs = _read_features(path)
    shapes = []
    for feat in features:
        geom = feat.get("geometry")
        if not geom:
            continue
        if crs and source.crs:
            from rasterio.warp import transform_geom

            geom = transform_geom(crs, source.crs, geom)
        shapes.append((geom, _feature_value(feat, class_names, path)))
    if not shapes:
        return np.zeros((lv.height, lv.width), dtype=np.int32)
    _check_overlap([g for g, _ in shapes], level_transform(source, level), (lv.height, lv.width), path)
    return rasterize(shapes, out_shape=(lv.height, lv.width), fill=0,
                     transform=level_transform(source, level), dtype="int32")


def _check_overlap(geoms: list[Any], transform: Affine, shape: tuple[int, int], path: Path) -> None:
    """Annotations that all miss the image are almost always in another CRS (e.g. RFC 7946
    lon/lat without a ``crs`` member); burning them would silently label everything background."""
    from shapely.geometry import box
    from shapely.geometry import shape as to_shape

    (x0, y0), (x1, y1) = transform * (0, 0), transform * (shape[1], shape[0])
    image = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    if not any(box(*to_shape(g).bounds).intersects(image) for g in geoms):  # robust to invalid rings
        bounds = [round(v, 3) for v in image.bounds]
        raise InputError(f"{path}: no annotation overlaps the image (its extent is {bounds} in "
                         "the image's coordinates); give the GeoJSON a 'crs' member if it is in "
                         "another CRS")


def _read_features(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    crs = None
    if isinstance(data, dict):
        crs_name = ((data.get("crs") or {}).get("properties") or {}).get("name")
        crs = crs_name.replace("urn:ogc:def:crs:OGC:1.3:CRS84", "OGC:CRS84") if crs_name else None
        if data.get("type") == "FeatureCollection":
            return list(data.get("features") or []), crs
        if data.get("type") == "Feature":
            return [data], crs
        if "coordinates" in data:
            return [{"type": "Feature", "geometry": data, "properties": {}}], crs
    if isinstance(data, list):  # QuPath "export as array"
        return [f for f in data if isinstance(f, dict)], None
    raise InputError(f"{path}: no GeoJSON features found")


def _feature_value(feat: dict[str, Any], class_names: list[str] | None, path: Path) -> int:
    props = feat.get("properties") or {}
    cls = props.get("classification")
    name = cls.get("name") if isinstance(cls, dict) else cls
    name = name if name is not None else props.get("class", props.get("label"))
    if name is None or not class_names:
        return 1
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        return int(name)
    if name not in class_names:
        raise InputError(f"{path}: annotation class {name!r} is not one of the model classes "
                         f"{class_names}")
    return class_names.index(name)
