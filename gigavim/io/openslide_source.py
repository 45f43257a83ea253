"""Whole-slide images through OpenSlide: Aperio, Hamamatsu, MIRAX, Leica, Ventana, Philips,
Sakura, generic tiled TIFF and DICOM WSI.

OpenSlide addresses regions by their level-0 (x, y) corner; this reader converts from the
(y, x) level-pixel windows the rest of gigavim uses. Slides are RGB uint8; transparent pixels
(areas the scanner never imaged, e.g. in MIRAX) are composited onto white and reported as
invalid by :meth:`OpenSlideSource.read_valid`.

Aperio and generic tiled TIFF levels are decoded straight from their tiles
(:mod:`gigavim.io.tiff_tiles`): OpenSlide's pixels, ~8× faster. Elsewhere, at levels whose
downsample is not an integer (OpenSlide keeps one downsample per level, the mean of both axes) a
level pixel does not start on a level-0 pixel; OpenSlide then samples the region at a sub-pixel
offset (under 0.5/downsample of a pixel), so a window read at such a level can differ from the
same crop of a whole-level read at sharp edges (direct reads are exact crops).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openslide

from gigavim.errors import InputError
from gigavim.io.base import ImageSource, Level, Window
from gigavim.io.tiff_tiles import DIRECT_VENDORS, DirectTiles
from gigavim.io.windows import check_window, read_padded

#: TIFF ResolutionUnit values → micrometres per unit.
_UM_PER_RESOLUTION_UNIT = {"inch": 25400.0, "centimeter": 10000.0, "2": 25400.0, "3": 10000.0}


class OpenSlideSource(ImageSource):
    """An :class:`ImageSource` over ``openslide.OpenSlide``."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        slide = _open_slide(path)
        props = dict(slide.properties)
        levels = [
            Level(width=int(w), height=int(h), downsample=float(ds))
            for (w, h), ds in zip(slide.level_dimensions, slide.level_downsamples, strict=True)
        ]
        vendor = props.get(openslide.PROPERTY_NAME_VENDOR)
        super().__init__(
            path=path,
            kind="slide",
            format=vendor or "openslide",
            levels=levels,
            bands=3,
            dtype=np.dtype(np.uint8),
            mpp=slide_mpp(props),
            objective_power=_float_or_none(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)),
            vendor=vendor,
            band_names=["red", "green", "blue"],
            properties=props,
        )
        self._slide: openslide.OpenSlide | None = slide
        self._lock = threading.Lock()
        self._direct = self._direct_tiles()

    def _direct_tiles(self) -> DirectTiles | None:
        """Aperio and generic tiled TIFF levels decode straight from their tiles (same pixels,
        ~8× faster than ``read_region``); other formats, and ``GIGAVIM_OPENSLIDE_ONLY=1``, don't."""
        if self.vendor not in DIRECT_VENDORS or os.environ.get("GIGAVIM_OPENSLIDE_ONLY") == "1":
            return None
        return DirectTiles(self.path, self.levels, self._read_openslide_rgb)

    # -- pixels -----------------------------------------------------------------------------
    def read(self, level: int, window: Window) -> np.ndarray:
        direct = self._direct

        def inside(win: Window) -> np.ndarray:  # the tiles decoded directly, else OpenSlide's
            pixels = direct.read(level, win) if direct is not None else None
            return composite_on_white(self._read_rgba(level, win)) if pixels is None else pixels

        return read_padded(window, self.levels[level], self.fill_value, (3,), self.dtype, inside)

    def _read_openslide_rgb(self, level: int, window: Window) -> np.ndarray:
        return self._read_rgba_as(level, window, composite_on_white, (3,))

    def read_valid(self, level: int, window: Window) -> np.ndarray:
        """Pixels the scanner imaged: alpha > 0 inside the slide."""
        return self._read_rgba_as(level, window, lambda rgba: rgba[..., 3] > 0, (), fill=False)

    def _read_rgba_as(
        self,
        level: int,
        window: Window,
        convert: Callable[[np.ndarray], np.ndarray],
        tail: tuple[int, ...],
        fill: float | None = None,
    ) -> np.ndarray:
        """Read RGBA for the part of ``window`` inside the level, convert it, pad the rest."""
        check_window(window)
        lv = self.levels[level]
        fill = self.fill_value if fill is None else fill
        dtype = np.dtype(bool) if tail == () else self.dtype

        def inside(win: Window) -> np.ndarray:
            return convert(self._read_rgba(level, win))

        return read_padded(window, lv, fill, tail, dtype, inside)

    def _read_rgba(self, level: int, win: Window) -> np.ndarray:
        """RGBA (h, w, 4) of a window fully inside ``level`` (OpenSlide wants level-0 x, y)."""
        ds = self.levels[level].downsample
        level0_xy = (round(win.x * ds), round(win.y * ds))
        try:
            region = self._handle().read_region(level0_xy, level, (win.width, win.height))
        except openslide.OpenSlideError as err:
            raise InputError(f"{self.path}: cannot read slide pixels ({err}); the file is corrupt") from err
        return np.asarray(region)

    def _handle(self) -> openslide.OpenSlide:
        with self._lock:
            if self._slide is None:
                self._slide = _open_slide(self.path)
            return self._slide

    # -- extras -----------------------------------------------------------------------------
    def associated_images(self) -> dict[str, np.ndarray]:
        """Label, macro and thumbnail images stored in the slide, as RGB arrays."""
        return {
            name: composite_on_white(np.asarray(img))
            for name, img in self._handle().associated_images.items()
        }

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        with self._lock:
            if self._slide is not None:
                self._slide.close()
                self._slide = None

    # Sources travel to dask workers: drop the handle, reopen lazily on the other side.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_slide"] = None
        state["_direct"] = None  # holds a file descriptor and decoders: rebuilt on arrival
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._direct = self._direct_tiles()


def _open_slide(path: Path) -> openslide.OpenSlide:
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as err:
        raise InputError(f"{path}: not a slide format OpenSlide can read") from err
    except openslide.OpenSlideError as err:
        raise InputError(f"{path}: OpenSlide cannot open this slide ({err})") from err


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """RGB uint8 from non-premultiplied RGBA, blending transparent pixels onto white."""
    alpha = rgba[..., 3:4]
    if _opaque(rgba):
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha.astype(np.uint16)
    rgb = (rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return rgb.astype(np.uint8)


def _opaque(rgba: np.ndarray) -> bool:
    """Every alpha is 255: one pass over whole RGBA pixels as uint32 where the layout allows
    (5× faster than a minimum over the strided alpha bytes)."""
    if rgba.size and rgba.flags.c_contiguous and rgba.dtype == np.uint8:
        opaque = np.uint32(0xFF000000) if sys.byteorder == "little" else np.uint32(0xFF)
        return bool(((rgba.view(np.uint32) & opaque) == opaque).all())
    return rgba[..., 3].min(initial=255) == 255


def slide_mpp(props: dict[str, str]) -> float | None:
    """µm per level-0 pixel: OpenSlide's ``mpp-x/y`` (mean), else the TIFF resolution tags."""
    mpp_x = _float_or_none(props.get(openslide.PROPERTY_NAME_MPP_X))
    mpp_y = _float_or_none(props.get(openslide.PROPERTY_NAME_MPP_Y))
    if mpp_x and mpp_y:
        return (mpp_x + mpp_y) / 2
    if mpp_x or mpp_y:
        return mpp_x or mpp_y
    unit = _UM_PER_RESOLUTION_UNIT.get(props.get("tiff.ResolutionUnit", ""))
    xres = _float_or_none(props.get("tiff.XResolution"))
    yres = _float_or_none(props.get("tiff.YResolution"))
    if unit and xres and yres:
        return (unit / xres + unit / yres) / 2
    return None


def _float_or_none(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and np.isfinite(number) and number > 0 else None


__all__ = ["OpenSlideSource", "composite_on_white", "slide_mpp"]
