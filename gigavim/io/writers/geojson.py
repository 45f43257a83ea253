"""GeoJSON output: one feature per 8-connected region of each class, streamed band by band.

``rasterio.features.shapes`` polygonizes full-width horizontal bands of the map (``BAND_PIXELS``
pixels each, so memory is one band plus the regions still open). A region crossing a band edge
comes out in pieces; pieces touching an internal edge stay "open" and are joined with the pieces
of the same class that touch them across the edge in the next band; when a region is closed its
pieces are merged once with ``shapely.unary_union``, so no region is split. A finished region is
moved into output coordinates and written at once; the collection is never held in memory.

Not simplified: outlines follow the pixel edges exactly, so neighbouring classes share their
edges vertex for vertex (no gaps, no overlaps). Simplifying each polygon on its own moves a
shared edge differently on its two sides (210 overlapping slivers on a 791×718 land-water
scene); ``shapely.coverage_simplify`` would need every polygon in memory at once.

Skipped: ``nodata_label`` and classes named "background" (class 0 of slide models).
A region whose pixels only touch diagonally somewhere is one feature with a MultiPolygon geometry
(OGC polygons cannot touch themselves at a point).

Coordinates: slides in level-0 pixels (working pixels × ``scale_to_level0``, x right, y down),
as QuPath imports them: a FeatureCollection whose features carry ``objectType: "annotation"``
and ``classification: {name, color}``; every feature also has the flat properties ``class``
(name) and ``class_id`` that GIS tools list as attribute columns. Rasters with a geographic CRS
are written as RFC 7946 asks: longitude/latitude on WGS 84 (OGC:CRS84; reprojected from another
datum) and no ``crs`` member. Projected rasters keep their native coordinates (reprojecting
would bend their pixel-exact edges) and name the CRS in the legacy top-level ``crs`` member
(``urn:ogc:def:crs:EPSG::<code>``, or the WKT when there is no EPSG code), which GDAL, QGIS and
geopandas read. Provenance is the top-level foreign member ``gigavim``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

BAND_PIXELS = 16 * 1024 * 1024  # pixels polygonized per band (rows × width)


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
    sy, sx = label_map.scale_to_level0_yx
    return Affine.scale(sx, sy)


def _is_lonlat_wgs84(parsed: CRS) -> bool:
    return parsed.is_geographic and parsed.to_epsg() == 4326


def _crs_member(crs: str | None) -> dict[str, Any] | None:
    """The legacy top-level ``crs`` member naming ``crs``; ``None`` when there is no CRS or it is
    WGS 84 longitude/latitude (RFC 7946's own, which must not be named)."""
    if crs is None:
        return None
    parsed = CRS.from_user_input(crs)
    if _is_lonlat_wgs84(parsed):
        return None
    epsg = parsed.to_epsg()
    name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else parsed.to_wkt()
    return {"type": "name", "properties": {"name": name}}


def to_crs84(label_map: LabelMap) -> Callable[[BaseGeometry], BaseGeometry] | None:
    """Reprojection of output coordinates to OGC:CRS84 for a geographic CRS on another datum
    (NAD27, ETRS89, ...); ``None`` when none is needed (slides, projected CRSs, WGS 84)."""
    if label_map.source_kind == "slide" or label_map.crs is None:
        return None
    parsed = CRS.from_user_input(label_map.crs)
    if not parsed.is_geographic or _is_lonlat_wgs84(parsed):
        return None
    from rasterio.warp import transform

    # rasterio keeps GDAL's traditional GIS axis order: EPSG:4326 here is (lon, lat) = CRS84.
    return lambda geom: shapely.transform(geom, lambda xy: np.column_stack(
        transform(parsed, "EPSG:4326", xy[:, 0], xy[:, 1])))


def header_crs(label_map: LabelMap) -> dict[str, Any] | None:
    """The ``crs`` member this writer puts in the header (see the module docstring's rule)."""
    if label_map.source_kind == "slide" or label_map.crs is None:
        return None
    if CRS.from_user_input(label_map.crs).is_geographic:
        return None  # RFC 7946: lon/lat on WGS 84 (reprojected by ``to_crs84`` if needed)
    return _crs_member(label_map.crs)


def _valid(geom: BaseGeometry) -> BaseGeometry:
    return geom if geom.is_valid else shapely.make_valid(geom)


@dataclass
class _OpenRegion:
    """A region not finished yet: its pieces so far and those touching the current band edge."""

    pieces: list[BaseGeometry]
    frontier: list[BaseGeometry]


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _join(open_regions: list[_OpenRegion], crossing: list[BaseGeometry]) -> list[list[int]]:
    """Group open regions and new pieces crossing the band edge that touch (edge or corner).

    Nodes ``0..R-1`` are the open regions, ``R..R+N-1`` the new pieces; union-find over the
    contacts between a region's frontier and the new pieces (pieces of one band never touch).
    """
    count = len(open_regions)
    parent = list(range(count + len(crossing)))
    if crossing:
        tree = shapely.STRtree(crossing)
        for index, region in enumerate(open_regions):
            _, hits = tree.query(region.frontier, predicate="intersects")
            for hit in hits.tolist():
                parent[_find(parent, count + hit)] = _find(parent, index)
    groups: dict[int, list[int]] = defaultdict(list)
    for node in range(len(parent)):
        groups[_find(parent, node)].append(node)
    return list(groups.values())


def band_height(width: int) -> int:
    """Rows per band: about ``BAND_PIXELS`` pixels, at least 64 rows."""
    return max(64, BAND_PIXELS // max(width, 1))


def regions(label_map: LabelMap, rows_per_band: int | None = None) -> Iterator[tuple[int, BaseGeometry]]:
    """Yield (class id, geometry in working pixels) for every connected region, band by band.

    Pieces of a region that spans several bands are only collected while it is open and are
    unioned once when it closes (no piece touches the current band's bottom edge), so a tall
    region costs one union, not one per band.
    """
    height, width = label_map.shape
    rows_per_band = rows_per_band or band_height(width)
    skip = skipped_classes(label_map)
    open_regions: dict[int, list[_OpenRegion]] = defaultdict(list)
    for top in range(0, height, rows_per_band):
        bottom = min(top + rows_per_band, height)
        band = np.asarray(label_map.labels[top:bottom, :], dtype=np.uint8)
        keep = ~np.isin(band, list(skip)) if skip else None
        crossing_top: dict[int, list[BaseGeometry]] = defaultdict(list)
        still_open: dict[int, list[_OpenRegion]] = defaultdict(list)
        found = shapes(band, mask=keep, connectivity=8, transform=Affine.translation(0, top))
        for geojson_geom, value in found:
            value = int(value)
            piece = _valid(shape(geojson_geom))
            _, miny, _, maxy = piece.bounds
            if top > 0 and miny <= top:
                crossing_top[value].append(piece)
            elif bottom < height and maxy >= bottom:
                still_open[value].append(_OpenRegion([piece], [piece]))
            else:
                yield value, piece
        for value in set(open_regions) | set(crossing_top):
            regions_above, crossing = open_regions[value], crossing_top[value]
            for group in _join(regions_above, crossing):
                pieces: list[BaseGeometry] = []
                frontier: list[BaseGeometry] = []
                for node in group:
                    if node < len(regions_above):
                        pieces += regions_above[node].pieces
                    else:
                        piece = crossing[node - len(regions_above)]
                        pieces.append(piece)
                        if bottom < height and piece.bounds[3] >= bottom:
                            frontier.append(piece)
                if frontier:
                    still_open[value].append(_OpenRegion(pieces, frontier))
                else:
                    yield value, _valid(shapely.unary_union(pieces))
        open_regions = still_open  # empty after the last band: nothing lies below it


def _feature(label_map: LabelMap, value: int, geom: BaseGeometry, to_output: Affine,
             reproject: Callable[[BaseGeometry], BaseGeometry] | None = None) -> str:
    """One GeoJSON Feature (as text: GEOS writes the coordinates far faster than json)."""
    a, b, c, d, e, f = to_output[:6]
    placed = affine_transform(geom, [a, b, d, e, c, f])
    if reproject is not None:
        placed = reproject(placed)
    placed = shapely.orient_polygons(placed, exterior_cw=False)  # RFC 7946 ring order
    name = label_map.classes[value] if value < len(label_map.classes) else f"class {value}"
    color = list(label_map.colors[value]) if value < len(label_map.colors) else [128, 128, 128]
    properties = {
        "objectType": "annotation",
        "classification": {"name": name, "color": [int(v) for v in color]},
        "class": name,
        "class_id": value,
    }
    geometry = shapely.to_geojson(placed)
    return f'{{"type": "Feature", "geometry": {geometry}, "properties": {json.dumps(properties)}}}'


def _write_collection(label_map: LabelMap, out: IO[str]) -> None:
    header: dict[str, Any] = {"type": "FeatureCollection"}
    crs = header_crs(label_map)
    if crs:
        header["crs"] = crs
    header["gigavim"] = label_map.provenance()
    out.write(json.dumps(header)[:-1] + ', "features": [\n')
    to_output, reproject = output_transform(label_map), to_crs84(label_map)
    first = True
    for value, geom in regions(label_map):
        if geom.is_empty:
            continue
        out.write(("" if first else ",\n") + _feature(label_map, value, geom, to_output, reproject))
        first = False
    out.write("\n]}\n")


def write_geojson(label_map: LabelMap, path: Path) -> None:
    """Write the class regions of ``label_map`` as a GeoJSON FeatureCollection at ``path``."""
    with open(path, "w", encoding="utf-8") as out:
        _write_collection(label_map, out)
