"""Per-object measurements and outlines from an id map (skimage ``regionprops``, rasterio shapes).

The measurements are the ones QuPath computes for detected cells — area, perimeter,
circularity (4π·area/perimeter², at most 1), solidity, eccentricity, major and minor axis of
the fitted ellipse, mean haematoxylin optical density (colour deconvolution, slides only) and
the centroid — in physical units of the working grid: µm for slides, metres for rasters, pixels
for inputs without a pixel size (the unit is in each name: ``area_um2``, ``perimeter_m``). The
centroid and the outline are in the output's coordinates (level-0 pixels for slides, the CRS for
rasters), as the class polygons of the GeoJSON output are.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from shapely.affinity import affine_transform
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from skimage.measure import regionprops

from gigavim.instances.postprocess import haematoxylin_density

SIMPLIFY_PX = 0.5  # outline simplification in working pixels, as the class polygons


def column_names(unit: str, haematoxylin: bool) -> list[str]:
    """Measurement names in table order for objects measured in ``unit`` ("um", "m", "px")."""
    names = ["centroid_x", "centroid_y", f"area_{unit}2", f"perimeter_{unit}", "circularity",
             "solidity", "eccentricity", f"major_axis_{unit}", f"minor_axis_{unit}"]
    return names + (["hematoxylin_od_mean"] if haematoxylin else [])


def outlines(objects: np.ndarray) -> dict[int, BaseGeometry]:
    """Polygon of each object (working pixels of ``objects``, pixel edges), 4-connected."""
    pieces: dict[int, list[BaseGeometry]] = defaultdict(list)
    for geom, value in shapes(objects.astype(np.int32), mask=objects > 0, connectivity=4):
        pieces[int(value)].append(shape(geom))
    return {k: v[0] if len(v) == 1 else shapely.unary_union(v) for k, v in pieces.items()}


def placed(geom: BaseGeometry, to_output: Affine) -> str:
    """GeoJSON text of an outline simplified, moved to output coordinates, RFC 7946 ring order."""
    simplified = geom.simplify(SIMPLIFY_PX, preserve_topology=True)
    if not simplified.is_valid:
        simplified = shapely.make_valid(simplified)
    a, b, c, d, e, f = to_output[:6]
    moved = affine_transform(simplified, [a, b, d, e, c, f])
    return shapely.to_geojson(shapely.orient_polygons(moved, exterior_cw=False))


def measure_objects(objects: np.ndarray, unit: str, pixel_size: float, to_output: Affine,
                    rgb: np.ndarray | None = None) -> Iterator[tuple[int, dict[str, float], str]]:
    """(id, measurements, GeoJSON outline) of every object of an (h, w) id map, in id order.

    ``to_output`` maps pixel (x, y) of ``objects`` to output coordinates; ``pixel_size`` is
    ``unit`` per pixel; ``rgb`` (h, w, 3) uint8 adds the mean haematoxylin optical density.
    """
    hema = haematoxylin_density(rgb) if rgb is not None else None
    shapes_by_id = outlines(objects)
    names = column_names(unit, hema is not None)
    for p in regionprops(objects, intensity_image=hema):
        row, col = p.centroid
        x, y = to_output @ (col + 0.5, row + 0.5)
        perimeter = float(p.perimeter)
        circularity = min(1.0, 4 * math.pi * p.area / perimeter**2) if perimeter > 0 else 1.0
        values = [x, y, p.area * pixel_size**2, perimeter * pixel_size, circularity, p.solidity,
                  p.eccentricity, p.axis_major_length * pixel_size, p.axis_minor_length * pixel_size]
        if hema is not None:
            values.append(float(p.intensity_mean))
        measurements = {k: float(v) if k.startswith("centroid") else round(float(v), 4)
                        for k, v in zip(names, values, strict=True)}  # a degree CRS needs every digit
        yield int(p.label), measurements, placed(shapes_by_id[p.label], to_output)
