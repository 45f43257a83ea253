"""CSV output: one row per object (id + measurements), for pandas, R and spreadsheets.

CSV rather than Parquet because every analysis tool a pathologist or GIS user has opens it with
no extra dependency (``pandas.read_csv``, ``readr::read_csv``, QuPath, Excel). The columns are
those of the GeoJSON detections' measurements, units in their names; the centroid is in the same
coordinates as the GeoJSON (level-0 pixels for slides, the CRS for rasters). Rows are streamed
from the run's records file.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gigavim.errors import OutputError
from gigavim.io.writers.base import LabelMap


def write_object_table(label_map: LabelMap, path: Path) -> None:
    """Write the objects of ``label_map`` as a CSV table at ``path``."""
    objects = label_map.instances
    if objects is None:
        raise OutputError(f"{path}: a table of objects needs a model that separates objects "
                          f"({label_map.model.get('name', 'this model')} only labels classes)")
    with open(path, "w", encoding="utf-8", newline="") as out:
        table = csv.writer(out)
        table.writerow(["id", "class", *objects.columns])
        for record in objects.iter_records(geometry=False):
            table.writerow([record.id, objects.object_class,
                            *(record.measurements.get(c, "") for c in objects.columns)])
