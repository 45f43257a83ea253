"""Small non-pyramidal images: PNG, JPEG, BMP, plain TIFF (e.g. tiles cut from a slide).

One level, decoded in full on the first read and kept (these images fit in memory; big
images belong in a tiled pyramid that OpenSlide or GDAL read window by window). An alpha
channel is not returned as data: it says which pixels are valid. TIFF resolution tags give
µm/px when present.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from gigavim.errors import InputError
from gigavim.io.base import ImageSource, Level, Window, representable
from gigavim.io.windows import read_padded

_PLANE_AXES = ("YX", "YXS", "SYX", "CYX", "YXC")
_UM_PER_TIFF_UNIT = {2: 25400.0, 3: 10000.0}  # RESUNIT.INCH, RESUNIT.CENTIMETER


class PlainImageSource(ImageSource):
    """An :class:`ImageSource` over a whole image decoded with Pillow or tifffile."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        is_tiff = is_tiff_file(path)
        height, width, channels, dtype, mpp = _tiff_header(path) if is_tiff else _pillow_header(path)
        self._has_alpha = channels in (2, 4)
        bands = channels - 1 if self._has_alpha else channels
        super().__init__(
            path=path,
            kind="image",
            format="tiff" if is_tiff else _pillow_format(path),
            levels=[Level(width, height, 1.0)],
            bands=bands,
            dtype=np.dtype(dtype),
            mpp=mpp,
            band_names=["red", "green", "blue"][:bands] if bands == 3 else [],
        )
        self._pixels: np.ndarray | None = None
        self._lock = threading.Lock()

    def _decoded(self) -> np.ndarray:
        """The whole image as (h, w, channels), decoded once."""
        with self._lock:
            if self._pixels is None:
                pixels = _decode(self.path)
                if pixels.ndim == 2:
                    pixels = pixels[..., None]
                self._pixels = pixels
            return self._pixels

    def read(self, level: int, window: Window) -> np.ndarray:
        def inside(win: Window) -> np.ndarray:
            crop = self._decoded()[win.y : win.y + win.height, win.x : win.x + win.width, : self.bands]
            return crop.astype(self.dtype, copy=True)

        return read_padded(window, self.levels[level], self.fill_value, (self.bands,), self.dtype, inside)

    def read_valid(self, level: int, window: Window) -> np.ndarray:
        """Pixels inside the image whose alpha is > 0 and (float images) every band finite as float32."""
        floating = np.issubdtype(self.dtype, np.floating)
        if not self._has_alpha and not floating:
            return super().read_valid(level, window)

        def inside(win: Window) -> np.ndarray:
            crop = self._decoded()[win.y : win.y + win.height, win.x : win.x + win.width]
            valid = crop[..., -1] > 0 if self._has_alpha else np.ones(crop.shape[:2], dtype=bool)
            if floating:
                valid &= representable(crop[..., : self.bands], axis=-1)
            return valid

        return read_padded(window, self.levels[level], False, (), np.dtype(bool), inside)


def is_tiff_file(path: Path) -> bool:
    """True when the file starts with a (Big)TIFF header."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return magic[:2] in (b"II", b"MM") and magic[2:4] in (b"*\x00", b"\x00*", b"+\x00", b"\x00+")


def _pillow_header(path: Path) -> tuple[int, int, int, np.dtype, None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            sample = np.asarray(_normalise_mode(img).crop((0, 0, 1, 1)))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"{path}: not an image gigavim can read ({err})") from err
    channels = 1 if sample.ndim == 2 else sample.shape[-1]
    return height, width, channels, sample.dtype, None


def _pillow_format(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as img:
        return (img.format or "image").lower()


def _normalise_mode(img):
    """Palette and 1-bit images as RGB(A)/L so every pixel is a plain number per band."""
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        return img.convert("L" if img.mode == "1" else "RGB")
    return img


def _tiff_header(path: Path) -> tuple[int, int, int, np.dtype, float | None]:
    import tifffile

    try:
        with _tifffile_complaints(path), tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            mpp = _tiff_mpp(page)
            len(tif.pages)  # walks every IFD: a truncated file has one pointing past its end
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as err:
        raise InputError(f"{path}: not a TIFF gigavim can read ({err})") from err
    if axes not in _PLANE_AXES:
        raise InputError(f"{path}: TIFF holds a {axes} stack, not a single 2-D image")
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    channels = shape[axes.index(axes.strip("YX"))] if len(axes) == 3 else 1
    return height, width, channels, np.dtype(series.dtype), mpp


def _tiff_mpp(page) -> float | None:
    unit = page.tags.get("ResolutionUnit")
    um_per_unit = _UM_PER_TIFF_UNIT.get(int(unit.value)) if unit is not None else None
    sizes = []
    for name in ("XResolution", "YResolution"):
        tag = page.tags.get(name)
        if tag is None or um_per_unit is None:
            return None
        num, den = tag.value
        if not num or not den:
            return None
        sizes.append(um_per_unit * den / num)
    return sum(sizes) / 2


def _decode(path: Path) -> np.ndarray:
    try:
        if is_tiff_file(path):
            import tifffile

            with _tifffile_complaints(path), tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                pixels = series.asarray()
                if series.axes in ("SYX", "CYX"):
                    pixels = np.moveaxis(pixels, 0, -1)
                return pixels
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(_normalise_mode(img))
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: cannot decode image pixels ({err}); the file is corrupt") from err


@contextmanager
def _tifffile_complaints(path: Path) -> Iterator[None]:
    """Turn what tifffile only logs (bad IFD offsets in truncated files) into an InputError."""
    complaints: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            complaints.append(record.getMessage())

    import tifffile

    logger = logging.getLogger("tifffile")
    handler, propagate = _Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as err:
        detail = complaints[0].split("> ", 1)[-1] if complaints else (str(err) or type(err).__name__)
        if not complaints and len(detail) < 8:  # e.g. IndexError('0'): no image series at all
            detail = "no readable image in it"
        raise InputError(f"{path}: damaged TIFF ({detail}); the file is truncated or corrupt") from err
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    if complaints:
        detail = complaints[0].split("> ", 1)[-1]
        raise InputError(f"{path}: damaged TIFF ({detail}); the file is truncated or corrupt")


__all__ = ["PlainImageSource", "is_tiff_file"]
