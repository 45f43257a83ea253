"""GeoJSON output of an instance model: one QuPath detection per object, with measurements.

QuPath imports a FeatureCollection whose features carry ``objectType: "detection"`` as
detections (its cells/nuclei), shows ``classification`` (name and colour) and lists
``measurements`` (name → number) in its measurement tables. The outline and centroid are in
level-0 pixels for slides and in the input CRS for rasters (named in the header as the class
polygons of :mod:`gigavim.io.writers.geojson` name it; a geographic CRS on a datum other than
WGS 84 is not reprojected to CRS84 here). The features are streamed from
the run's records file, so the collection is never held in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gigavim.io.writers.base import LabelMap
from gigavim.io.writers.geojson import header_crs


def write_detections(label_map: LabelMap, path: Path) -> None:
    """Write every object of ``label_map.instances`` as a GeoJSON detection at ``path``."""
    objects = label_map.instances
    header: dict[str, Any] = {"type": "FeatureCollection"}
    crs = header_crs(label_map)
    if crs:
        header["crs"] = crs
    header["gigavim"] = {**label_map.provenance(), "objects": objects.count,
                         "object_class": objects.object_class}
    classification = json.dumps({"name": objects.object_class, "color": [int(v) for v in objects.color]})
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(header)[:-1] + ', "features": [\n')
        for n, record in enumerate(objects):
            properties = (f'{{"objectType": "detection", "classification": {classification}, '
                          f'"object_id": {record.id}, "measurements": {json.dumps(record.measurements)}}}')
            out.write(("" if n == 0 else ",\n")
                      + f'{{"type": "Feature", "geometry": {record.geometry}, "properties": {properties}}}')
        out.write("\n]}\n")
