"""A gigavim output of an instance model opens with its object ids as a second labels layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from engine.fakes import FunctionSource, nuclei_bundle, nuclei_scene
from gigavim.napari._reader import zarr_layers

from gigavim.engine import segment


def test_object_ids_are_a_labels_layer_beside_the_classes(tmp_path: Path) -> None:
    out = tmp_path / "nuclei.ome.zarr"
    result = segment(FunctionSource(300, 320, nuclei_scene((150, 160), half=120, bar=False)), [out],
                     model=nuclei_bundle(tile=128, overlap=16))
    layers = {kwargs["name"]: (data, kind) for data, kwargs, kind in zarr_layers(out, image=False)}
    data, kind = layers["nuclei.ome.zarr nuclei"]
    assert kind == "labels" and "nuclei.ome.zarr segmentation" in layers
    full = np.asarray(data[0] if isinstance(data, list) else data)
    assert len(np.unique(full)) == result.objects + 1 > 10
