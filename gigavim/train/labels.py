"""Ground truth for training and evaluation, put onto an image's pixel grid.

Three kinds of label source are accepted, each mapped onto the *working grid* of an
:class:`~gigavim.io.base.ImageSource` (a :class:`~gigavim.engine.plan.Resolution`: a pyramid
level, or level 0 scaled to the model's µm/px or m/px, exactly as ``segment`` lays out its
output), so label pixel (y, x) is the ground truth of working pixel (y, x):

* a label image (PNG/TIFF) with the image's level-0 size, sampled at each working pixel's centre
  (nearest neighbour; a level read as-is uses its own x and y factors), or already at the working
  grid's size: class ids, or instance ids (0 = background, 1..N objects) that become foreground
  for binary tasks;
* a georeferenced label raster on another grid: reprojected onto the image grid through a
  ``rasterio.vrt.WarpedVRT`` (nearest), pixels it does not cover become "ignore";
* label rasters are read strip by strip, so a whole-slide or land-cover mask is never loaded;
* in any label raster, nodata pixels and NaN/±inf (float rasters, tagged or not) are "ignore",
  never class 0;
* GeoJSON / QuPath annotations: rasterized with ``rasterio.features.rasterize`` (pixel centres)
  in the image's CRS for rasters, in level-0 pixel coordinates (QuPath's convention) for slides
  and images.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from rasterio.windows import Window

from gigavim.engine.plan import Resolution, level0_scale_yx, resolve_resolution
from gigavim.errors import InputError, UsageError
from gigavim.io.base import ImageSource
from gigavim.io.gdal_errors import corrupt_file_errors, gdal_messages
from gigavim.train.metrics import IGNORE_LABEL
from gigavim.train.working_image import row_blocks

LabelMode = Literal["binary", "values", "boundary"]
LabelNodata = Literal["tag", "none"]
"""``tag``: pixels equal to a label raster's nodata value are unlabelled; ``none``: the tag is
ignored and every value is a label (masks that tag their background 0 as nodata, as SpaceNet's do)."""
VECTOR_SUFFIXES = (".geojson", ".json")
_OUTSIDE = -1  # raw value for "no label here" before class mapping


def grid_transform(source: ImageSource, resolution: Resolution) -> Affine:
    """Affine from the working grid's pixels to the source's coordinates, as ``segment`` writes it.

    For georeferenced rasters that is the CRS; otherwise level-0 pixel coordinates.
    """
    georeferenced = source.transform is not None and bool(source.crs)
    sy, sx = level0_scale_yx(source, resolution)
    base = source.transform if georeferenced else Affine.identity()
    return base @ Affine.scale(sx, sy)


def load_label_map(source: ImageSource, label_path: str | Path, *, resolution: Resolution | None = None,
                   mode: LabelMode = "binary", value_map: Mapping[int, int] | None = None,
                   class_names: list[str] | None = None, boundary_um: float | None = None,
                   label_nodata: LabelNodata = "tag") -> np.ndarray:
    """(H, W) uint8 class ids on the working grid ``resolution`` (default: level 0);
    :data:`IGNORE_LABEL` where unlabelled.

    ``mode="binary"`` turns every value > 0 into class 1; ``"values"`` keeps values as class
    ids; ``"boundary"`` reads instance ids (0 background, 1..N objects; GeoJSON: one polygon per
    object) and gives background 0 / interior 1 / boundary 2, the boundary a band of
    ``boundary_um`` µm inside each object (see :mod:`gigavim.train.instance_labels`).
    ``value_map`` (raw value → class id, or :data:`IGNORE_LABEL`) is applied first.
    ``class_names`` map GeoJSON/QuPath classification names to ids. ``label_nodata``: see
    :data:`LabelNodata`.
    """
    label_path = Path(label_path)
    if not label_path.is_file():
        raise InputError(f"{label_path}: label file not found")
    res = resolution if resolution is not None else resolve_resolution(source)
    if mode == "boundary":
        from gigavim.train import instance_labels as il

        ids = il.load_instance_map(source, label_path, resolution=res, label_nodata=label_nodata)
        width = il.DEFAULT_BOUNDARY_UM if boundary_um is None else boundary_um
        return il.interior_boundary_classes(ids, il.boundary_radius_px(width, res.mpp))
    if label_path.suffix.lower() in VECTOR_SUFFIXES:
        raw = rasterize_annotations(source, label_path, resolution=res, class_names=class_names)
    else:
        raw = read_label_raster(source, label_path, resolution=res, label_nodata=label_nodata)
    labels = to_class_ids(raw, mode=mode, value_map=value_map, path=label_path)
    if not any((labels[y0:y1] != IGNORE_LABEL).any() for y0, y1 in row_blocks(*labels.shape)):
        # training/scoring against nothing is silent garbage (checked by strips: no full-size mask)
        raise InputError(f"{label_path}: no labelled pixel falls on the image {source.path.name} (the "
                         "labels cover another area, or are all nodata/ignore)")
    return labels


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


def read_label_raster(source: ImageSource, label_path: Path, *, resolution: Resolution,
                      label_nodata: LabelNodata = "tag") -> np.ndarray:
    """A label image/raster on the working grid, as raw signed integers (``-1`` = not covered;
    with ``label_nodata="tag"`` also the pixels equal to its nodata value).
    A damaged tile (a failed or recovered GDAL decode) is the one-line "the file is corrupt"."""
    tag = label_nodata == "tag"
    with corrupt_file_errors(label_path, "label pixels"), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with _open_label_raster(label_path) as src:
            both_georef = bool(src.crs) and bool(source.crs) and source.transform is not None
            on_grid = both_georef and (_same_grid(src, source, resolution) or _same_grid(
                src, source, resolve_resolution(source, level=0)))  # sampled below, strip by strip
            if both_georef and not on_grid:
                return _reproject_labels(src, label_path, source, resolution, tag)
            shape = (src.height, src.width)
            if shape == resolution.shape:
                return _raw_band(src, label_path, tag=tag)
            if shape == (source.height, source.width):
                return sample_at_centres(src, label_path, source, resolution, tag)
    raise InputError(f"{label_path}: label image is {shape[1]}×{shape[0]} px but the image "
                     f"{source.path.name} is {source.width}×{source.height} px (and has no common "
                     "georeference to align them)")


def _open_label_raster(label_path: Path) -> Any:
    try:
        return rasterio.open(label_path)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{label_path}: cannot read label image ({exc})") from exc


LABEL_STRIP_PIXELS = 1 << 24
"""Level-0 label pixels read at once when sampling a level-0 label raster (bounds its memory)."""


def sample_at_centres(src: Any, label_path: Path, source: ImageSource, resolution: Resolution,
                      tag: bool = True) -> np.ndarray:
    """A level-0 label raster at the working grid: the label under each working pixel's centre.

    Working pixel (r, c) covers level-0 [r·sy, (r+1)·sy) × [c·sx, (c+1)·sx) — the area whose
    pixels :class:`~gigavim.engine.reader.TileReader` averages into it, with the factors of
    :func:`level0_scale_yx` — so its label is the one at level-0 pixel (⌊(r+½)·sy⌋, ⌊(c+½)·sx⌋);
    centres past the image edge are unlabelled (-1). The raster is read in strips of about
    :data:`LABEL_STRIP_PIXELS` pixels: a whole-slide mask is never held at once.
    """
    sy, sx = level0_scale_yx(source, resolution)
    rows = np.floor((np.arange(resolution.shape[0]) + 0.5) * sy).astype(np.int64)
    cols = np.floor((np.arange(resolution.shape[1]) + 0.5) * sx).astype(np.int64)
    rows, cols = rows[rows < src.height], cols[cols < src.width]
    out = np.full(resolution.shape, _OUTSIDE, dtype=_signed(np.dtype(src.dtypes[0])))
    per_strip = max(1, LABEL_STRIP_PIXELS // max(1, src.width))  # level-0 rows per read
    r0 = 0
    while r0 < len(rows):
        r1 = max(r0 + 1, int(np.searchsorted(rows, rows[r0] + per_strip)))
        top, bottom = int(rows[r0]), int(rows[r1 - 1]) + 1
        window = Window(0, top, src.width, bottom - top)
        out[r0:r1, : len(cols)] = _raw_band(src, label_path, window, tag=tag)[np.ix_(rows[r0:r1] - top, cols)]
        r0 = r1
    return out


def _raw_band(src: Any, label_path: Path, window: Window | None = None, masked: bool = False,
              tag: bool = True) -> np.ndarray:
    """Band 1 (of ``window``) as raw signed integers, ``-1`` where unlabelled: the nodata value (as
    the mask says) and, in float rasters, NaN/±inf whether or not a nodata tag says so (never
    class 0). ``masked``: GDAL's mask marks unlabelled pixels even without a nodata value (alpha);
    ``tag=False``: the nodata value is an ordinary label."""
    band = src.read(1, window=window)
    _refuse_colour_labels(src, band, label_path, window)
    missing = ~np.isfinite(band) if band.dtype.kind == "f" else np.zeros(band.shape, dtype=bool)
    if masked or (tag and src.nodata is not None):
        missing |= src.read_masks(1, window=window) == 0
    band[missing] = 0  # no NaN left to cast
    raw = band.astype(_signed(band.dtype))
    raw[missing] = _OUTSIDE
    return raw


def _signed(dtype: np.dtype) -> np.dtype:
    """The smallest signed integer type holding ``dtype``'s values and ``-1`` (int64 for floats)."""
    wider = np.promote_types(dtype, np.int8)
    return wider if wider.kind == "i" else np.dtype(np.int64)


def _refuse_colour_labels(src: Any, band: np.ndarray, label_path: Path, window: Window | None = None) -> None:
    """Only band 1 is read: a colour-coded mask (classes as RGB colours) would lose classes."""
    colour = [i for i in range(2, min(src.count, 3) + 1)
              if src.colorinterp[i - 1] != rasterio.enums.ColorInterp.alpha]
    if any(not np.array_equal(src.read(i, window=window), band, equal_nan=band.dtype.kind == "f")
           for i in colour):
        raise InputError(f"{label_path}: label image has differing colour bands; give class ids "
                         "(or 0/255) in a single-band image")


def _same_grid(src: Any, source: ImageSource, resolution: Resolution) -> bool:
    """Whether a georeferenced label raster lies exactly on ``resolution``'s grid of ``source``."""
    same_crs = rasterio.crs.CRS.from_user_input(source.crs) == src.crs
    return (same_crs and (src.height, src.width) == resolution.shape
            and src.transform.almost_equals(grid_transform(source, resolution)))


def _reproject_labels(src: Any, label_path: Path, source: ImageSource, resolution: Resolution,
                      tag: bool = True) -> np.ndarray:
    """Nearest-neighbour reprojection of band 1 onto the working grid, strip by strip through a
    GDAL warped view (only the label pixels each strip needs are read: a land-cover map far
    larger than the scene is never loaded); uncovered and unlabelled pixels become ``-1``."""
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import Resampling

    h, w = resolution.shape
    out = np.empty((h, w), dtype=_signed(np.dtype(src.dtypes[0])))
    # Without a nodata value (or with its tag ignored) an alpha band marks what the label raster
    # does not cover.
    untagged = {} if tag else {"src_nodata": None, "nodata": None}
    with WarpedVRT(src, crs=source.crs, transform=grid_transform(source, resolution), width=w,
                   height=h, resampling=Resampling.nearest, add_alpha=src.nodata is None or not tag,
                   **untagged) as vrt:
        for y0, y1 in row_blocks(h, w, LABEL_STRIP_PIXELS):
            out[y0:y1] = _raw_band(vrt, label_path, Window(0, y0, w, y1 - y0), masked=True)
    return out


def rasterize_annotations(source: ImageSource, path: Path, *, resolution: Resolution | None = None,
                          class_names: list[str] | None = None, instances: bool = False) -> np.ndarray:
    """GeoJSON / QuPath features burnt onto the working grid (raw values, 0 = background).

    A feature's value is its QuPath ``classification.name`` (or ``class``/``label`` property)
    looked up in ``class_names``, else 1; with ``instances`` it is the feature's number 1..N
    (one object id per polygon, int32). Geometries in a GeoJSON with a ``crs`` member are
    transformed into the raster's CRS; without one they are taken to be in the image's own
    coordinates (the raster's CRS, or level-0 pixels for slides and images).
    """
    with gdal_messages():  # a failed CRS transform raises; GDAL's lines stay off stderr
        return _rasterize(source, path, resolution, class_names, instances)


def _rasterize(source: ImageSource, path: Path, resolution: Resolution | None,
               class_names: list[str] | None, instances: bool) -> np.ndarray:
    from rasterio.features import rasterize

    res = resolution if resolution is not None else resolve_resolution(source)
    features, crs = _read_features(path)
    shapes = []
    for feat in features:
        geom = feat.get("geometry")
        if not geom:
            continue
        if crs and source.crs:
            from rasterio.warp import transform_geom

            geom = transform_geom(crs, source.crs, geom)
        value = len(shapes) + 1 if instances else _feature_value(feat, class_names, path)
        shapes.append((geom, value))
    if not shapes:
        return np.zeros(res.shape, dtype=np.int32)
    transform = grid_transform(source, res)
    _check_overlap([g for g, _ in shapes], transform, res.shape, path)
    # One byte per working pixel when every value fits (class ids do): the burnt map is as
    # large as the label map itself, and int32 made it 4× that on a whole-slide grid.
    small = not instances and all(0 <= v <= 255 for _, v in shapes)
    return rasterize(shapes, out_shape=res.shape, fill=0, transform=transform,
                     dtype="uint8" if small else "int32")


def _check_overlap(geoms: list[Any], transform: Affine, shape: tuple[int, int], path: Path) -> None:
    """Annotations that all miss the image are almost always in another CRS (e.g. RFC 7946
    lon/lat without a ``crs`` member); burning them would silently label everything background."""
    from shapely.geometry import box
    from shapely.geometry import shape as to_shape

    (x0, y0), (x1, y1) = transform * (0, 0), transform * (shape[1], shape[0])
    image = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    if not all(np.isfinite(to_shape(g).bounds).all() for g in geoms):  # e.g. a pole in Mercator
        raise InputError(f"{path}: some annotations cannot be placed in the image's CRS "
                         "(their coordinates become infinite there)")
    if not any(box(*to_shape(g).bounds).intersects(image) for g in geoms):  # robust to invalid rings
        bounds = [round(v, 3) for v in image.bounds]
        raise InputError(f"{path}: no annotation overlaps the image (its extent is {bounds} in "
                         "the image's coordinates); give the GeoJSON a 'crs' member if it is in "
                         "another CRS")


def _read_features(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    from gigavim.train.geojson_checks import read_geojson

    return read_geojson(path)


def _feature_value(feat: dict[str, Any], class_names: list[str] | None, path: Path) -> int:
    props = feat.get("properties") or {}
    cls = props.get("classification")
    name = cls.get("name") if isinstance(cls, dict) else cls
    name = name if name is not None else props.get("class", props.get("label"))
    if name is None or not class_names:
        return 1
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        if not (math.isfinite(name) and name == int(name) and 0 <= name < IGNORE_LABEL):
            raise InputError(f"{path}: annotation class {name!r} is not a class id (an integer "
                             f"0..{IGNORE_LABEL - 1}) nor one of the model classes {class_names}")
        return int(name)
    if name not in class_names:
        raise InputError(f"{path}: annotation class {name!r} is not one of the model classes "
                         f"{class_names}")
    return class_names.index(name)
