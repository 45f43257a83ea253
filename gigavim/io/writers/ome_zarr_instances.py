"""OME-Zarr instance labels: the object id map as a second NGFF label image.

Beside ``labels/segmentation`` (class ids) an instance model's output holds
``labels/<objects>`` (e.g. ``labels/nuclei``): uint32, 0 = no object, each object its own id
(the ``object_id`` of the GeoJSON detections and the ``id`` of the CSV table), with the same
scales and mode-downsampled pyramid as the class labels. napari, QuPath and vizarr list both
under the image's labels; no per-id colours are stored (viewers colour ids themselves).
"""

from __future__ import annotations

import numpy as np
import zarr
from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

from gigavim.io.writers.base import LabelMap
from gigavim.io.writers.ome_zarr import CHUNK, FORMAT, _axes, _write_pyramid, level0_of, physical_pixel
from gigavim.io.writers.pyramid import halve_labels, level_count


def write_instance_labels(root: zarr.Group, label_map: LabelMap) -> None:
    """Add ``labels/<objects>`` to an OME-Zarr written by ``write_ome_zarr`` (if any objects)."""
    objects = label_map.instances
    if objects is None:
        return
    unit, pixel = physical_pixel(label_map)
    group = root.require_group(f"labels/{objects.name}")
    ids = level0_of(objects.labels, (CHUNK, CHUNK), np.uint32)
    datasets = _write_pyramid(group, ids, halve_labels, level_count(label_map.shape), pixel)
    write_multiscales_metadata(group, datasets, fmt=FORMAT, axes=_axes(unit, False), name=objects.name)
    write_label_metadata(root["labels"], objects.name, fmt=FORMAT, source={"image": "../../"})
    root.attrs["gigavim"] = {**root.attrs["gigavim"], "instances": f"labels/{objects.name}",
                             "object_class": objects.object_class, "objects": objects.count}
