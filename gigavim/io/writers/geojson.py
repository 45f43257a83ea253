"""GeoJSON output: one feature per 8-connected region of each class, streamed band by band.

``rasterio.features.shapes`` polygonizes horizontal bands of the map (full width, a few hundred
to a few thousand rows, so memory is one band plus the regions still open). A region crossing a
band edge comes out in pieces; pieces touching an internal edge stay "open" and are merged with
``shapely.unary_union`` with the pieces of the same class across that edge in the next band, so
no region is split. A finished region is simplified (``simplify_px`` working pixels, topology
preserved), moved into output coordinates and written at once, never collected in memory.

Skipped: ``nodata_label`` and classes named "background" (class 0 of slide models).
A region whose pixels only touch diagonally somewhere is one feature with a MultiPolygon geometry
(OGC polygons cannot touch themselves at a point).

Coordinates: slides in level-0 pixels (working pixels × ``scale_to_level0``, x right, y down),
as QuPath imports them: a FeatureCollection whose features carry ``objectType: "annotation"``
and ``classification: {name, color}``. Rasters in the input CRS (the working ``transform``
applied); RFC 7946 only allows WGS 84, so like GDAL/QGIS we keep the native coordinates and name
the CRS in the legacy top-level ``crs`` member (``urn:ogc:def:crs:EPSG::<code>``, or the WKT
when there is no EPSG code), which GDAL, QGIS and geopandas read. Provenance is the top-level
foreign member ``gigavim``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes
from shapely.affinity import affine_transform
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from gigavim.io.writers.base import LabelMap

SIMPLIFY_PX = 0.5
BAND_PIXELS = 32 * 1024 * 1024  # pixels polygonized per band (rows × width)


def skipped_classes(label_map: LabelMap) -> set[int]:
    """Class ids never written as polygons: nodata and background."""
    skip = {i for i, name in enumerate(label_map.classes) if name.lower() == "background"}
    if label_map.nodata_label is not None:
        skip.add(int(label_map.nodata_label))
    return skip


def output_transform(label_map: LabelMap) -> Affine:
    """Working pixel (x, y) → output coordinates: level-0 pixels for slides, CRS for rasters."""
    if label_map.source_kind != "slide" and label_map.transform is not None:
        return Affine(*list(label_map.transform)[:6])
    return Affine.scale(label_map.scale_to_level0)


def _crs_member(crs: str | None) -> dict[str, Any] | None:
    if crs is None:
        return None
    parsed = CRS.from_user_input(crs)
    epsg = parsed.to_epsg()
    name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else parsed.to_wkt()
    return {"type": "name", "properties": {"name": name}}


def _valid(geom: BaseGeometry) -> BaseGeometry:
    return geom if geom.is_valid else shapely.make_valid(geom)


def _connected_groups(pieces: list[BaseGeometry]) -> list[list[BaseGeometry]]:
    """Group pieces that touch (edge or corner) into connected components (union-find)."""
    parent = list(range(len(pieces)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = shapely.STRtree(pieces)
    left, right = tree.query(pieces, predicate="intersects")
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        parent[find(a)] = find(b)
    groups: dict[int, list[BaseGeometry]] = defaultdict(list)
    for i, piece in enumerate(pieces):
        groups[find(i)].append(piece)
    return list(groups.values())


def band_height(width: int) -> int:
    """Rows per band: about ``BAND_PIXELS`` pixels, at least 64 rows."""
    return max(64, BAND_PIXELS // max(width, 1))


def regions(label_map: LabelMap, rows_per_band: int | None = None) -> Iterator[tuple[int, BaseGeometry]]:
    """Yield (class id, geometry in working pixels) for every connected region, band by band."""
    height, width = label_map.shape
    rows_per_band = rows_per_band or band_height(width)
    skip = skipped_classes(label_map)
    open_pieces: dict[int, list[BaseGeometry]] = defaultdict(list)
    for top in range(0, height, rows_per_band):
        bottom = min(top + rows_per_band, height)
        band = np.asarray(label_map.labels[top:bottom, :], dtype=np.uint8)
        keep = ~np.isin(band, list(skip)) if skip else None
        crossing_top: dict[int, list[BaseGeometry]] = defaultdict(list)
        next_open: dict[int, list[BaseGeometry]] = defaultdict(list)
        found = shapes(band, mask=keep, connectivity=8, transform=Affine.translation(0, top))
        for geojson_geom, value in found:
            value = int(value)
            piece = _valid(shape(geojson_geom))
            _, miny, _, maxy = piece.bounds
            if top > 0 and miny <= top:
                crossing_top[value].append(piece)
            elif bottom < height and maxy >= bottom:
                next_open[value].append(piece)
            else:
                yield value, piece
        for value in set(open_pieces) | set(crossing_top):
            for group in _connected_groups(open_pieces[value] + crossing_top[value]):
                merged = _valid(shapely.unary_union(group))
                if bottom < height and merged.bounds[3] >= bottom:
                    next_open[value].append(merged)
                else:
                    yield value, merged
        open_pieces = next_open  # empty after the last band: nothing lies below it


def _feature(label_map: LabelMap, value: int, geom: BaseGeometry, to_output: Affine) -> str:
    """One GeoJSON Feature (as text: GEOS writes the coordinates far faster than json)."""
    simplified = _valid(geom.simplify(SIMPLIFY_PX, preserve_topology=True))
    a, b, c, d, e, f = to_output[:6]
    placed = affine_transform(simplified, [a, b, d, e, c, f])
    placed = shapely.orient_polygons(placed, exterior_cw=False)  # RFC 7946 ring order
    name = label_map.classes[value] if value < len(label_map.classes) else f"class {value}"
    color = list(label_map.colors[value]) if value < len(label_map.colors) else [128, 128, 128]
    properties = {
        "objectType": "annotation",
        "classification": {"name": name, "color": [int(v) for v in color]},
        "class_id": value,
    }
    geometry = shapely.to_geojson(placed)
    return f'{{"type": "Feature", "geometry": {geometry}, "properties": {json.dumps(properties)}}}'


def _write_collection(label_map: LabelMap, out: IO[str]) -> None:
    header: dict[str, Any] = {"type": "FeatureCollection"}
    crs = _crs_member(label_map.crs) if label_map.source_kind != "slide" else None
    if crs:
        header["crs"] = crs
    header["gigavim"] = label_map.provenance()
    out.write(json.dumps(header)[:-1] + ', "features": [\n')
    to_output = output_transform(label_map)
    first = True
    for value, geom in regions(label_map):
        if geom.is_empty:
            continue
        out.write(("" if first else ",\n") + _feature(label_map, value, geom, to_output))
        first = False
    out.write("\n]}\n")


def write_geojson(label_map: LabelMap, path: Path) -> None:
    """Write the class regions of ``label_map`` as a GeoJSON FeatureCollection at ``path``."""
    with open(path, "w", encoding="utf-8") as out:
        _write_collection(label_map, out)
