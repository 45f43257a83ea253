"""Multi-level images stored as chunked arrays: OME-Zarr images and OME-TIFF pyramids in SubIFDs.

Both are what Bio-Formats, QuPath (``OME-TIFF`` export, ``bfconvert -pyramid-resolutions``) and
``ome-zarr``/``bioformats2raw`` write: one array per resolution level, each read window by
window through zarr (OME-TIFF via tifffile's zarr view of its tiles, so nothing is decoded
twice or whole). Axes are taken from the file (``YXS``, ``CYX``, ``TCZYX``, ...): planes other
than the first time point / z slice are not read; channels become bands. Pixel size: OME's
``PhysicalSizeX/Y`` (µm) or the NGFF scale of level 0 in µm.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from gigavim.errors import InputError
from gigavim.io.base import ImageSource, Level, Window
from gigavim.io.windows import read_padded

_UM = {"micrometer": 1.0, "µm": 1.0, "um": 1.0, "nanometer": 1e-3, "nm": 1e-3, "millimeter": 1e3, "mm": 1e3}


class ZarrLevelsSource(ImageSource):
    """Levels = chunked arrays with named axes; reads (h, w, bands) windows of one level."""

    def _setup(self, arrays: list[Any], axes: str, fmt: str, mpp: float | None) -> None:
        axes = axes.upper().replace("S", "C")
        if "Y" not in axes or "X" not in axes:
            raise InputError(f"{self.path}: no y and x axes in {axes!r}")
        self._arrays, self._axes = arrays, axes
        shape0 = arrays[0].shape
        height, width = shape0[axes.index("Y")], shape0[axes.index("X")]
        levels = [Level(a.shape[axes.index("X")], a.shape[axes.index("Y")],
                        height / a.shape[axes.index("Y")]) for a in arrays]
        bands = shape0[axes.index("C")] if "C" in axes else 1
        super().__init__(path=self.path, kind="slide" if mpp else "image", format=fmt, levels=levels,
                         bands=bands, dtype=np.dtype(arrays[0].dtype), mpp=mpp,
                         band_names=["red", "green", "blue"] if bands == 3 else [])
        del width

    def read(self, level: int, window: Window) -> np.ndarray:
        array, axes = self._arrays[level], self._axes

        def inside(win: Window) -> np.ndarray:
            key = tuple(slice(win.y, win.y + win.height) if a == "Y" else
                        slice(win.x, win.x + win.width) if a == "X" else
                        slice(None) if a == "C" else 0 for a in axes)
            block = np.asarray(array[key])
            kept = [a for a in axes if a in "YXC"]
            block = np.moveaxis(block, [kept.index(a) for a in "YX"], [0, 1])
            return block if block.ndim == 3 else block[..., None]

        return read_padded(window, self.levels[level], self.fill_value, (self.bands,), self.dtype, inside)


class OmeTiffPyramidSource(ZarrLevelsSource):
    """An OME-TIFF whose lower resolutions are SubIFDs of the full-resolution page."""

    def __init__(self, path: str | Path) -> None:
        import tifffile
        import zarr

        self.path = Path(path)
        self._tiff = tifffile.TiffFile(self.path)
        series = self._tiff.series[0]
        arrays = [zarr.open(series.aszarr(level=k), mode="r") for k in range(len(series.levels))]
        self._setup(arrays, series.axes, "ome-tiff", _ome_mpp(self._tiff.ome_metadata or ""))

    def close(self) -> None:
        self._tiff.close()


class OmeZarrSource(ZarrLevelsSource):
    """An NGFF (0.4 or 0.5) multiscale image directory."""

    def __init__(self, path: str | Path) -> None:
        import zarr

        self.path = Path(path)
        group = zarr.open_group(str(self.path), mode="r")
        multiscale = ngff_multiscale(group.attrs.asdict())
        if multiscale is None:
            raise InputError(f"{self.path}: a zarr directory without an OME-Zarr multiscale image")
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in multiscale.get("axes", "tczyx"[-5:])]
        datasets = multiscale["datasets"]
        arrays = [group[d["path"]] for d in datasets]
        if len(axes) != arrays[0].ndim:
            axes = list("tczyx"[-arrays[0].ndim:])
        mpp = None
        units = [a.get("unit") for a in multiscale.get("axes", []) if isinstance(a, dict)]
        scale = next((t["scale"] for t in datasets[0].get("coordinateTransformations", [])
                      if t.get("type") == "scale"), None)
        if scale and units and units[-1] in _UM:
            mpp = float(scale[-1]) * _UM[units[-1]]
        self._setup(arrays, "".join(a[0] for a in axes), "ome-zarr", mpp)


def ngff_multiscale(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The first ``multiscales`` entry of NGFF 0.4 (top level) or 0.5 (under ``ome``) attributes."""
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    return multiscales[0] if multiscales else None


def is_ome_zarr(path: Path) -> bool:
    """A directory holding an OME-Zarr multiscale image (headers only)."""
    if not path.is_dir() or not any((path / name).exists() for name in (".zattrs", "zarr.json")):
        return False
    import zarr

    try:
        return ngff_multiscale(zarr.open_group(str(path), mode="r").attrs.asdict()) is not None
    except Exception:
        return False


def is_subifd_pyramid(path: Path) -> bool:
    """An OME-TIFF whose first series has reduced levels (SubIFDs), as Bio-Formats writes."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome) and len(tif.series[0].levels) > 1
    except Exception:
        return False


def _ome_mpp(xml: str) -> float | None:
    size = re.search(r'PhysicalSizeX="([^"]+)"', xml)
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
    if not size:
        return None
    return float(size.group(1)) * _UM.get(unit.group(1) if unit else "µm", 1.0)
