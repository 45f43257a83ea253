"""The bundled models: listed, loaded offline from the package, and each one segments a sample
of the kind of input it is the default for, with a sensible result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr

from gigavim import segment
from gigavim.errors import ModelError
from gigavim.models.catalog import (
    DEFAULT_MODELS,
    bundled_dir,
    default_model_name,
    list_models,
    load_model,
)

BUNDLED = ("tissue", "nuclei-he", "nuclei-he-20x", "land-water")


def test_every_bundled_model_ships_in_the_package_and_is_trained() -> None:
    rows = {r["name"]: r for r in list_models()}
    for name in BUNDLED:
        assert (bundled_dir() / f"{name}.pt").is_file()
        bundle = load_model(name)  # no network: a file inside the installed package
        assert bundle.meta.name == name and bundle.meta.trained
        assert rows[name]["size_bytes"] < 5_000_000 and rows[name]["trained"] is True
        assert bundle.meta.training["steps"] > 0
    # nuclei-he is trained on all its data; its held-out (leave-one-organ-out) scores come from
    # the recipe's fold models and are in docs/models.md.
    for name in ("tissue", "land-water"):
        assert load_model(name).meta.training["validation"]["scores"]["mean_iou"] > 0.8


def test_defaults_per_input_kind() -> None:
    assert default_model_name("slide") == "tissue"
    assert default_model_name("raster") == "land-water"
    assert set(DEFAULT_MODELS.values()) <= set(BUNDLED)
    assert load_model(None, input_kind="raster").meta.name == "land-water"


def test_unknown_name_lists_known_models() -> None:
    with pytest.raises(ModelError, match=r"known models: .*land-water.*tissue"):
        load_model("no-such-model")


def _ome_labels(path: Path) -> np.ndarray:
    return zarr.open_group(str(path), mode="r")["labels/segmentation/0"][:]


def test_tissue_model_on_the_sample_slide(tmp_path: Path) -> None:
    from gigavim.data import sample_slide

    out = tmp_path / "tissue.zarr"
    segment(sample_slide(), [out])  # the default for slides
    labels = _ome_labels(out)
    tissue = (labels == 1).mean()
    assert 0.25 < tissue < 0.6  # the sample is a strip of skin on glass (~40 % of the area)
    h, w = labels.shape
    assert (labels[: h // 10, : w // 5] == 0).mean() > 0.9  # the top-left corner is glass


@pytest.mark.parametrize("model", ["nuclei-he", "nuclei-he-20x"])
def test_nuclei_model_on_an_annotated_tile(real_data: Path, tmp_path: Path, model: str) -> None:
    from skimage.io import imread
    from skimage.transform import resize

    tiles = real_data / "nuclei_miccai2015"
    out = tmp_path / "nuclei.zarr"
    # a 20x tile (0.5 µm/px, recorded nowhere in the PNG): resampled to each model's own grid
    segment(tiles / "image02.png", [out], model=model, image_mpp=0.5)
    truth = imread(tiles / "image02_label.png") > 0
    labels = _ome_labels(out)
    assert labels.shape == tuple(round(n * 0.5 / load_model(model).meta.mpp) for n in truth.shape)
    pred = resize(labels > 0, truth.shape, order=0) > 0  # nucleus interior or boundary
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert dice > 0.6  # a tile the shipped models were trained on; held-out Dice is in docs/models.md


def test_land_water_model_on_the_world_map(real_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "world.tif"
    segment(real_data / "geo" / "world.rgb.tif", [out])  # the default for rasters
    with rasterio.open(out) as ds:
        labels = ds.read(1)
        assert ds.crs.to_epsg() == 4326
        row_col = {name: ds.index(lon, lat) for name, (lon, lat) in
                   {"Sahara": (15, 22), "Kansas": (-100, 40), "Pacific": (-150, 0),
                    "Indian Ocean": (80, -30)}.items()}
    assert labels[row_col["Sahara"]] == 1 and labels[row_col["Kansas"]] == 1
    assert labels[row_col["Pacific"]] == 0 and labels[row_col["Indian Ocean"]] == 0


def test_loading_a_bundled_model_does_not_import_sympy() -> None:
    """Shape checks build the network on the meta device; some meta ops import torch's symbolic
    shapes and sympy, 1.5 s of every `segment` on a 2-core CPU."""
    import subprocess
    import sys

    code = ("import sys; from gigavim.models.catalog import load_model; load_model('nuclei-he'); "
            "print('sympy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
