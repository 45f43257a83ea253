# ruff: noqa: E501  (corpus data and case tables read best one per line)
"""A small corpus of hostile inputs for the fuzz suite, generated in a folder (no shared data).

Each kind of damage a user's files really have: truncated and byte-flipped JPEG GeoTIFFs (the
flip lands inside a tile's compressed data, found through GDAL's BLOCK_OFFSET metadata),
hand-made TIFF headers claiming 0×0 or 2³¹×2³¹ pixels, non-finite rasters, malformed GeoJSON
label files, and hostile model bundles (unsafe pickles, NaN weights, zero std, a 64 GB arch).
"""

from __future__ import annotations

import copy
import json
import os
import struct
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from gigavim.models.catalog import resolve_model_path

ORIGIN = (500000.0, 4000000.0)  # UTM 31N metres; 10 m pixels
SQUARE = [[500100, 3999900], [500500, 3999900], [500500, 3999500], [500100, 3999500], [500100, 3999900]]


def _geotiff(path: Path, data: np.ndarray, dtype: str, **profile: object) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=dtype, crs="EPSG:32631",
                       transform=from_origin(*ORIGIN, 10, 10), **profile) as ds:
        ds.write(data.astype(dtype))
    return path


def _tiff_header(width: int, height: int) -> bytes:
    """An uncompressed 8-bit grey TIFF whose header claims ``width`` × ``height`` and holds 16 bytes."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
               (277, 3, 1), (278, 4, height), (279, 4, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, 1, value) if kind == 4 else struct.pack("<HHIHH", tag, kind, 1, value, 0)
        for tag, kind, value in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(16)


def _tile_bytes(path: Path) -> tuple[int, int]:
    """(offset, size) in the file of band 1's first tile, from GDAL's TIFF metadata."""
    with rasterio.open(path) as ds:
        return (int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1)),
                int(ds.get_tag_item("BLOCK_SIZE_1_1", "TIFF", bidx=1)))


def flip_tile(path: Path, out: Path) -> Path:
    """A copy of the tiled TIFF ``path`` with 32 bytes inverted inside its first tile's data."""
    offset, size = _tile_bytes(path)
    data = bytearray(path.read_bytes())
    for i in range(offset + size // 2, offset + min(size, size // 2 + 32)):
        data[i] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def label_raster(path: Path, *, crs: str = "EPSG:32631", origin: tuple[float, float] = ORIGIN) -> Path:
    """A tiled DEFLATE class-id mask the size of ``images``' scene (square of class 1)."""
    mask = np.zeros((1, 128, 128), np.uint8)
    mask[:, 32:96, 16:112] = 1
    with rasterio.open(path, "w", driver="GTiff", width=128, height=128, count=1, dtype="uint8", crs=crs,
                       transform=from_origin(*origin, 10, 10), tiled=True, blockxsize=64, blockysize=64,
                       compress="DEFLATE") as ds:
        ds.write(mask)
    return path


def images(root: Path) -> dict[str, Path]:
    """Image files: a good scene and damaged or degenerate ones."""
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.uniform(-1, 1, (3, 128, 128)), axis=1), axis=2)
    pixels = (255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)
    files = {"scene": _geotiff(root / "scene.tif", pixels, "uint8")}
    jpeg = _geotiff(root / "jpeg.tif", pixels, "uint8", tiled=True, blockxsize=64, blockysize=64,
                    compress="JPEG")
    offset, size = _tile_bytes(jpeg)
    data = bytearray(jpeg.read_bytes())
    files["byte-flipped JPEG tile"] = flip_tile(jpeg, root / "flipped.tif")
    files["truncated GeoTIFF"] = root / "truncated.tif"
    files["truncated GeoTIFF"].write_bytes(bytes(data[: offset + size // 2]))
    files["header-only TIFF"] = root / "header.tif"
    files["header-only TIFF"].write_bytes(bytes(data[:200]))
    files["2^31 px header"] = root / "huge.tif"
    files["2^31 px header"].write_bytes(_tiff_header(2**31 - 1, 2**31 - 1))
    files["0x0 header"] = root / "empty_dims.tif"
    files["0x0 header"].write_bytes(_tiff_header(0, 0))
    files["random bytes .tif"] = root / "random.tif"
    files["random bytes .tif"].write_bytes(os.urandom(4096))
    nan = np.full((3, 32, 32), np.nan)
    files["all-NaN float raster"] = _geotiff(root / "nan.tif", nan, "float32")
    files["all -DBL_MAX float64 raster"] = _geotiff(root / "dblmax.tif", np.full((3, 32, 32), -np.finfo(float).max),
                                                    "float64")
    return files


def _fc(features: object, **extra: object) -> dict:
    return {"type": "FeatureCollection", "features": features, **extra}


def _feature(coords: object, props: object = None, kind: str = "Polygon") -> dict:
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": coords}, "properties": props or {}}


_POLY = '{"type":"Feature","geometry":{"type":"Polygon","coordinates":%s},"properties":%s}'
_RING = "[[500100,3999900],[500500,3999900],[500500,3999500],[500100,3999900]]"

GEOJSON: dict[str, object] = {
    "NaN coordinates": '{"type":"FeatureCollection","features":[' + _POLY % ("[[[NaN,1],[2,3],[4,5],[NaN,1]]]", "{}") + "]}",
    "Infinity coordinates": '{"type":"FeatureCollection","features":[' + _POLY % ("[[[Infinity,1],[2,3],[4,5],[Infinity,1]]]", "{}") + "]}",
    "huge coordinates": _fc([_feature([[[1e308, 1e308], [-1e308, 1e308], [-1e308, -1e308], [1e308, 1e308]]])]),
    "unknown CRS": _fc([_feature([SQUARE])], crs={"type": "name", "properties": {"name": "EPSG:999999"}}),
    "crs as a string": _fc([_feature([SQUARE])], crs="EPSG:32631"),
    "features not a list": {"type": "FeatureCollection", "features": {"a": 1}},
    "features of numbers": _fc([1, 2]),
    "WKT geometry": _fc([{"type": "Feature", "geometry": "POLYGON((0 0,1 0,1 1,0 0))", "properties": {}}]),
    "unknown geometry type": _fc([_feature([SQUARE], kind="Blob")]),
    "coordinates as text": _fc([_feature("abc")]),
    "two-point ring": _fc([_feature([[[500100, 3999900]]])]),
    "class NaN": '{"type":"FeatureCollection","features":[' + _POLY % ("[" + _RING + "]", '{"class":NaN}') + "]}",
    "class 1e400": '{"type":"FeatureCollection","features":[' + _POLY % ("[" + _RING + "]", '{"class":1e400}') + "]}",
    "class 1e10": _fc([_feature([SQUARE], {"class": 1e10})]),
    "deep nesting": "[" * 100000 + "]" * 100000,
    "empty collection": _fc([]),
    "null": None,
    "only null geometries": _fc([{"type": "Feature", "geometry": None, "properties": {}}]),
    "all outside the image": _fc([_feature([[[0, 0], [10, 0], [10, 10], [0, 0]]])]),
    "properties a list": _fc([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                               "properties": [1]}]),
    "not JSON": "{'type': 'FeatureCollection'",
}


def label_files(root: Path) -> dict[str, Path]:
    """Malformed GeoJSON labels for the scene, plus a label raster on a disjoint grid."""
    out = {}
    for i, (name, content) in enumerate(GEOJSON.items()):
        path = root / f"labels{i}.geojson"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        out[name] = path
    disjoint = root / "disjoint_mask.tif"
    with rasterio.open(disjoint, "w", driver="GTiff", width=128, height=128, count=1, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(900000, 1000000, 10, 10)) as ds:
        ds.write(np.ones((1, 128, 128), np.uint8))
    out["mask on a disjoint grid"] = disjoint
    out["byte-flipped label raster"] = flip_tile(label_raster(root / "mask.tif"), root / "mask_flipped.tif")
    # the scene's square in UTM 32N (EPSG:32632): read through a warped view onto the scene's grid
    utm32 = label_raster(root / "mask32.tif", crs="EPSG:32632", origin=(-40300.0, 4016900.0))
    out["byte-flipped label raster, other CRS"] = flip_tile(utm32, root / "mask32_flipped.tif")
    return out


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _scale_weights(payload: dict, edit) -> None:
    state = payload["state_dict"]
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = edit(key, value)


def bundles(root: Path, marker: Path) -> dict[str, Path]:
    """Hostile or damaged model files derived from the bundled ``land-water`` model."""
    source = resolve_model_path("land-water")
    base = torch.load(source, weights_only=True)

    def variant(name: str, edit) -> Path:
        payload = copy.deepcopy(base)
        edit(payload)
        path = root / f"{name}.pt"
        torch.save(payload, path)
        return path

    first = next(k for k, v in base["state_dict"].items() if v.is_floating_point())
    raw = source.read_bytes()
    out = {
        "unsafe pickle": root / "evil.pt",
        "NaN weights": variant("nan_weights", lambda p: p["state_dict"][first].fill_(float("nan"))),
        "zero std": variant("zero_std", lambda p: p["meta"].update(std=[0.0, 0.0, 0.0])),
        "inf mean": variant("inf_mean", lambda p: p["meta"].update(mean=[float("inf")] * 3)),
        "64 GB arch": variant("huge_arch", lambda p: p["meta"]["arch"]["backbone"].update(
            embed_dim=1 << 17, depth=64)),
        "meta not a dict": variant("meta_str", lambda p: p.update(meta="x")),
        # the reported crash: finite weights whose products overflow float32 inside the model
        "weights x1e38": variant("x1e38", lambda p: _scale_weights(p, lambda k, v: v * 1e38)),
        "weights +-1e38": variant("pm1e38", lambda p: _scale_weights(
            p, lambda k, v: torch.where(v >= 0, 1e38, -1e38).to(v.dtype))),
        "A_log x1e38": variant("alog1e38", lambda p: _scale_weights(
            p, lambda k, v: v * 1e38 if k.endswith("A_log") else v)),
        "truncated bundle": root / "truncated.pt",
        "byte-flipped bundle": root / "flipped.pt",
        "random bytes bundle": root / "random.pt",
    }
    torch.save({**base, "x": _Evil(marker)}, out["unsafe pickle"])
    out["truncated bundle"].write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    for i in range(len(raw) // 2, len(raw) // 2 + 64):
        flipped[i] ^= 0x55
    out["byte-flipped bundle"].write_bytes(bytes(flipped))
    out["random bytes bundle"].write_bytes(os.urandom(2048))
    return out
