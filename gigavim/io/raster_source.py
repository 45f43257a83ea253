"""Georeferenced rasters (GeoTIFF, COG and anything else GDAL reads) through rasterio.

Pyramid levels are the file's overviews, each read through its own rasterio handle
(``overview_level=i``) so a window at level ``i`` is exactly that overview's pixels. Bands can
be any number and any numeric dtype; alpha bands are not returned as data but feed
:meth:`RasterSource.read_valid` (as do nodata values, NaN and internal masks).

rasterio dataset handles must not be shared between threads, so each thread (e.g. each dask
worker thread) opens its own.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window as RioWindow

from gigavim.errors import InputError
from gigavim.io.base import ImageSource, Level, Window, representable
from gigavim.io.gdal_errors import corrupt_file_errors
from gigavim.io.windows import read_padded


class RasterSource(ImageSource):
    """An :class:`ImageSource` over a rasterio dataset and its overviews."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        with _open_dataset(path) as ds:
            band_indexes = data_band_indexes(ds)
            levels = [Level(ds.width, ds.height, 1.0)]
            for i in range(len(ds.overviews(1)) if ds.count else 0):
                with _open_dataset(path, overview_level=i) as ov:
                    downsample = (ds.width / ov.width + ds.height / ov.height) / 2
                    levels.append(Level(ov.width, ov.height, downsample))
            dtypes = [ds.dtypes[i - 1] for i in band_indexes]
            ground = pixel_size_m(ds.crs, ds.transform, ds.width, ds.height)
            super().__init__(
                path=path,
                kind="raster",
                format=ds.driver,
                levels=levels,
                bands=len(band_indexes),
                dtype=np.result_type(*dtypes) if dtypes else np.dtype(np.uint8),
                nodata=None if ds.nodata is None else float(ds.nodata),
                gsd_m=_geometric_mean(ground),
                ground_pixel_yx=ground,
                crs=crs_string(ds.crs),
                transform=ds.transform,
                band_names=[_band_name(ds, i) for i in band_indexes],
                properties=_properties(ds),
            )
        self._band_indexes = band_indexes
        self._local = threading.local()
        self._open_handles: list[Any] = []
        self._handles_lock = threading.Lock()
        if not band_indexes:
            raise InputError(f"{path}: raster has no data bands")

    # -- pixels -----------------------------------------------------------------------------
    def read(self, level: int, window: Window) -> np.ndarray:
        def inside(win: Window) -> np.ndarray:
            data = self._call(level, "read", indexes=self._band_indexes, window=_rio(win))
            return np.moveaxis(data, 0, -1).astype(self.dtype, copy=False)

        return read_padded(window, self.levels[level], self.fill_value, (self.bands,), self.dtype, inside)

    def read_valid(self, level: int, window: Window) -> np.ndarray:
        """Pixels that hold data: GDAL's dataset mask (nodata, alpha, internal mask) and, in float
        rasters, every band finite within float32's range (see :func:`representable`)."""

        def inside(win: Window) -> np.ndarray:
            valid = self._call(level, "dataset_mask", window=_rio(win)) > 0
            if np.issubdtype(self.dtype, np.floating):
                data = self._call(level, "read", indexes=self._band_indexes, window=_rio(win))
                valid &= representable(data, axis=0)
            return valid

        return read_padded(window, self.levels[level], False, (), np.dtype(bool), inside)

    def _call(self, level: int, method: str, **kwargs: Any) -> np.ndarray:
        """A read through GDAL; errors *and* decode warnings it recovers from mean corrupt data."""
        with corrupt_file_errors(self.path, "raster pixels"):
            return getattr(self._dataset(level), method)(**kwargs)

    def _dataset(self, level: int) -> Any:
        """This thread's handle on ``level`` (0: the dataset, i > 0: overview i - 1)."""
        handles = self._local.__dict__.setdefault("handles", {})
        if level not in handles:
            handle = _open_dataset(self.path, overview_level=None if level == 0 else level - 1)
            handles[level] = handle
            with self._handles_lock:
                self._close_handles_of_finished_threads()
                self._open_handles.append((threading.current_thread(), handle))
        return handles[level]

    def _close_handles_of_finished_threads(self) -> None:
        """Each run reads through new worker threads: drop the handles the dead ones left."""
        alive = []
        for thread, handle in self._open_handles:
            if thread.is_alive():
                alive.append((thread, handle))
            else:
                handle.close()
        self._open_handles = alive

    def close(self) -> None:
        with self._handles_lock:
            for _thread, handle in self._open_handles:
                handle.close()
            self._open_handles = []
        self._local = threading.local()

    # Sources travel to dask workers: drop the handles, reopen lazily on the other side.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_local", "_open_handles", "_handles_lock"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
        self._open_handles = []
        self._handles_lock = threading.Lock()


def _open_dataset(path: Path, overview_level: int | None = None) -> Any:
    kwargs = {} if overview_level is None else {"overview_level": overview_level}
    try:
        with warnings.catch_warnings():  # rasters without georeference are fine here
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path, **kwargs)
    except RasterioError as err:
        raise InputError(f"{path}: GDAL cannot open this raster ({err})") from err


def _rio(win: Window) -> RioWindow:
    return RioWindow(col_off=win.x, row_off=win.y, width=win.width, height=win.height)


def data_band_indexes(ds: Any) -> list[int]:
    """1-based indexes of the bands that carry data (alpha bands only say what is valid)."""
    return [i for i, ci in zip(ds.indexes, ds.colorinterp, strict=True) if ci != ColorInterp.alpha]


def is_georeferenced(ds: Any) -> bool:
    """True when the dataset places its pixels on the Earth (CRS, geotransform or GCPs)."""
    return ds.crs is not None or not ds.transform.is_identity or bool(ds.gcps[0])


def crs_string(crs: Any) -> str | None:
    """``EPSG:xxxx`` when the CRS has an EPSG code, else its WKT; ``None`` without a CRS."""
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def ground_sample_distance_m(ds: Any) -> float | None:
    """Metres per level-0 pixel on the ground (the square root of the pixel's ground area).

    See :func:`pixel_size_m`; rasters without a CRS have no ground distance.
    """
    return _geometric_mean(pixel_size_m(ds.crs, ds.transform, ds.width, ds.height))


def _geometric_mean(sizes: tuple[float, float] | None) -> float | None:
    return None if sizes is None else math.sqrt(sizes[0] * sizes[1])


def pixel_size_m(crs: Any, transform: Any, width: int, height: int) -> tuple[float, float] | None:
    """(y, x) ground metres of one pixel at the centre of a ``width`` × ``height`` grid.

    Each axis is the geodesic length (pyproj ``Geod`` on the CRS's own ellipsoid) of one pixel
    step along that axis through the grid centre: exact for geographic CRSs (degrees) and for
    projections whose metres are not ground metres, e.g. Web Mercator's (1/cos(latitude) too
    long). A projected CRS's own size (linear unit) is kept where it is within
    :data:`NOMINAL_TOLERANCE` of the ground length — UTM and national grids, whose scale factor is
    within 0.1 % — so a 10 m Sentinel-2 tile stays 10 m. CRSs with no geodetic datum use their
    linear unit. ``None`` without a usable CRS. Outputs keep the input's CRS and grid; only the
    *reported* size in metres comes from here.
    """
    if not crs:
        return None
    try:
        pcrs = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    except pyproj.exceptions.CRSError:
        return None
    t = transform
    centre = t * (width / 2, height / 2)
    col_step, row_step = (t.a, t.d), (t.b, t.e)  # one pixel along x, one along y, in CRS units
    geodetic = pcrs.geodetic_crs
    if geodetic is None or not (pcrs.is_geographic or pcrs.is_projected):
        factor = _linear_unit_m(pcrs)
        return None if factor is None else (math.hypot(*row_step) * factor, math.hypot(*col_step) * factor)
    to_lonlat = (None if pcrs.is_geographic
                 else pyproj.Transformer.from_crs(pcrs, geodetic, always_xy=True).transform)
    geod = pcrs.get_geod()

    def ground(step: tuple[float, float]) -> float:
        x0, y0 = centre[0] - step[0] / 2, centre[1] - step[1] / 2
        x1, y1 = centre[0] + step[0] / 2, centre[1] + step[1] / 2
        if to_lonlat is not None:
            (x0, x1), (y0, y1) = to_lonlat((x0, x1), (y0, y1))
        return float(geod.inv(x0, y0, x1, y1)[2])  # GDAL's geographic order: x = lon, y = lat

    sizes = ground(row_step), ground(col_step)
    if not all(math.isfinite(v) and v > 0 for v in sizes):
        return None
    factor = None if pcrs.is_geographic else _linear_unit_m(pcrs)
    if factor is None:
        return sizes
    nominal = math.hypot(*row_step) * factor, math.hypot(*col_step) * factor
    close = all(abs(g / n - 1) <= NOMINAL_TOLERANCE for g, n in zip(sizes, nominal, strict=True))
    return nominal if close else sizes


NOMINAL_TOLERANCE = 0.005
"""A projected grid's own metres are reported when within 0.5 % of the ground length."""


def _linear_unit_m(pcrs: Any) -> float | None:
    try:
        return float(pcrs.axis_info[0].unit_conversion_factor)
    except (IndexError, AttributeError):
        return None


def _band_name(ds: Any, index: int) -> str:
    description = ds.descriptions[index - 1]
    return description or ds.colorinterp[index - 1].name


def _properties(ds: Any) -> dict[str, str]:
    props = {f"gdal.{k}": str(v) for k, v in ds.tags().items()}
    props.update({f"image.{k}": str(v) for k, v in ds.tags(ns="IMAGE_STRUCTURE").items()})
    if ds.block_shapes:
        props["block_shape"] = "x".join(str(v) for v in ds.block_shapes[0])
    return props


__all__ = ["RasterSource", "crs_string", "data_band_indexes", "ground_sample_distance_m", "is_georeferenced",
           "pixel_size_m"]
