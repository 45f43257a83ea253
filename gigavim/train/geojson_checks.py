"""Read a GeoJSON / QuPath annotation file and refuse what cannot be burnt into labels.

Label files come from other tools and hands; anything malformed is one
:class:`~gigavim.errors.InputError` naming the file (and the feature) instead of a traceback
deep inside shapely or GDAL, or a label map silently burnt from garbage:

* unparsable text, absurd nesting, a top level that is not a FeatureCollection, Feature,
  geometry or QuPath array; ``features`` that is not a list of objects;
* a ``crs`` member that is not ``{"type": "name", "properties": {"name": ...}}`` or names a CRS
  PROJ does not know;
* a geometry that is not a GeoJSON object (e.g. WKT text), of unknown type, with malformed,
  non-finite (NaN/Infinity) or absurdly large coordinates;
* a file with no geometry at all (empty, ``null``, only null geometries): scoring or training
  against all-background would be silently wrong, so an image without objects needs a label
  image instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gigavim.errors import InputError

#: Coordinates beyond this are no place on Earth (metres or degrees) nor on any slide (pixels).
MAX_COORDINATE = 1e12
_GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                   "GeometryCollection")


def read_geojson(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """(features that have a geometry, CRS name or None), every geometry checked."""
    try:
        data = json.loads(path.read_text())
    except RecursionError as exc:
        raise InputError(f"{path}: not a readable GeoJSON file (nested too deeply)") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    features, crs = _features(data, path)
    kept = []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict):
            raise InputError(f"{path}: feature {i} is not a GeoJSON object")
        geom = feat.get("geometry")
        if geom is None:
            continue
        check_geometry(geom, f"{path}: feature {i}")
        props = feat.get("properties")
        if props is not None and not isinstance(props, dict):
            raise InputError(f"{path}: feature {i}: 'properties' must be an object")
        kept.append(feat)
    if not kept:
        raise InputError(f"{path}: has no annotations (no feature with a geometry); an image "
                         "without objects needs a label image (all background) instead")
    return kept, crs


def check_geometry(geom: Any, where: str) -> None:
    """A GeoJSON geometry shapely accepts, with finite coordinates of sane size."""
    import shapely
    from shapely.errors import GEOSException
    from shapely.geometry import shape

    if not isinstance(geom, dict):
        hint = " (WKT text is not GeoJSON)" if isinstance(geom, str) else ""
        raise InputError(f"{where}: geometry is not a GeoJSON object{hint}")
    if geom.get("type") not in _GEOMETRY_TYPES:
        raise InputError(f"{where}: unknown geometry type {str(geom.get('type'))[:40]!r}")
    try:
        parsed = shape(geom)
        coords = shapely.get_coordinates(parsed)
    except (GEOSException, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError) as exc:
        raise InputError(f"{where}: invalid {geom['type']} geometry ({_short(exc)})") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in coords.ravel().tolist()):
        raise InputError(f"{where}: coordinates must be finite numbers within ±{MAX_COORDINATE:g} "
                         "(found NaN, Infinity or a huge value)")


def _features(data: Any, path: Path) -> tuple[list[Any], str | None]:
    if isinstance(data, list):  # QuPath "export as array"
        return data, None
    if not isinstance(data, dict):
        raise InputError(f"{path}: no GeoJSON features found (the file holds a {type(data).__name__})")
    crs = _crs_name(data.get("crs"), path)
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if features is None:
            features = []
        if not isinstance(features, list):
            raise InputError(f"{path}: 'features' must be a list, not {type(features).__name__}")
        return features, crs
    if kind == "Feature":
        return [data], crs
    if "coordinates" in data or kind == "GeometryCollection":
        return [{"type": "Feature", "geometry": data, "properties": {}}], crs
    raise InputError(f"{path}: no GeoJSON features found")


def _crs_name(crs: Any, path: Path) -> str | None:
    """The legacy GeoJSON ``crs`` member's name, checked to be a CRS PROJ knows."""
    if crs is None:
        return None
    name = crs.get("properties", {}).get("name") if isinstance(crs, dict) and isinstance(
        crs.get("properties", {}), dict) else None
    if not isinstance(name, str):
        raise InputError(f"{path}: the 'crs' member must look like {{\"type\": \"name\", \"properties\": "
                         "{\"name\": \"EPSG:32631\"}}")
    name = name.replace("urn:ogc:def:crs:OGC:1.3:CRS84", "OGC:CRS84")
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        CRS.from_user_input(name)
    except CRSError:
        raise InputError(f"{path}: unknown CRS {name[:80]!r} in the 'crs' member") from None
    return name


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]
