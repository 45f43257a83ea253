"""The input contract: stored, derived for old bundles, applied by normalize, shown by `models`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gigavim.cli import main
from gigavim.models import build_segmenter
from gigavim.models.bundle import ModelBundle, ModelMeta, load_bundle_file
from gigavim.models.contract import InputContract, derive_contract

ARCH = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 32,
                     "cls_token": "none", "pos_embed_mode": "sincos", "in_chans": 2},
        "head": {"kind": "light"}, "num_classes": 2}


def test_old_bundle_without_contract_gets_rgb_uint8_over_255() -> None:
    meta = ModelMeta.from_dict({"name": "old", "classes": ["a", "b"], "colors": [[0, 0, 0], [1, 1, 1]],
                                "arch": {}, "bands": 3, "input_scale": 1 / 255})
    c = meta.contract()
    assert c.derived and c.bands == ["red", "green", "blue"] and c.dtype == "uint8"
    assert c.value_range == [[0.0, 255.0]] * 3
    assert c.scaling == {"method": "fixed", "scale": pytest.approx(1 / 255)}
    assert c.summary() == "3 bands (red, green, blue); uint8 0–255; v × 1/255"


def test_derived_contract_of_a_non_8bit_scale_has_no_dtype_and_its_range() -> None:
    c = derive_contract(2, 1 / 4000)
    assert c.dtype is None and c.bands == ["band1", "band2"] and c.value_range == [[0.0, 4000.0]] * 2


def test_percentile_contract_normalises_each_band_by_its_range(tmp_path) -> None:
    """(v - low) / (high - low) per band, then mean/std: low → (0-m)/s, high → (1-m)/s; saved and loaded."""
    contract = InputContract(bands=["VV", "VH"], dtype="float32", sensor="Sentinel-1",
                             value_range=[[-25.0, 0.0], [-30.0, -5.0]],
                             scaling={"method": "percentile", "percentiles": [1, 99],
                                      "low": [-25.0, -30.0], "high": [0.0, -5.0]})
    torch.manual_seed(0)
    meta = ModelMeta(name="s1", classes=["a", "b"], colors=[(0, 0, 0), (1, 1, 1)], arch=ARCH, bands=2,
                     mean=[0.5, 0.25], std=[0.5, 0.25], input_contract=contract.to_dict())
    bundle = load_bundle_file(ModelBundle(build_segmenter(**ARCH), meta).save(tmp_path / "m.pt"))
    assert bundle.meta.contract() == contract and not bundle.meta.contract().derived
    tiles = np.array([[-25.0, -30.0], [0.0, -5.0], [-12.5, -17.5]], np.float32).reshape(1, 3, 1, 2)
    x = bundle.normalize(tiles)[0, :, :, 0].numpy()  # (bands, 3)
    np.testing.assert_allclose(x[0], [(0 - 0.5) / 0.5, (1 - 0.5) / 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(x[1], [(0 - 0.25) / 0.25, (1 - 0.25) / 0.25, (0.5 - 0.25) / 0.25], atol=1e-6)
    assert bundle.meta.contract().summary() == ("2 bands (VV, VH) (Sentinel-1); float32 -30–0; "
                                                "per-band p1–p99 of training → 0–1")


def test_fixed_contract_scale_replaces_input_scale() -> None:
    meta = ModelMeta(name="s2", classes=["a", "b"], colors=[(0, 0, 0), (1, 1, 1)], arch=ARCH, bands=1,
                     mean=[0.0], std=[1.0], input_contract=InputContract(
                         bands=["B8"], dtype="uint16", value_range=[[0, 10000]],
                         scaling={"method": "fixed", "scale": 1e-4}).to_dict())
    bundle = ModelBundle(torch.nn.Identity(), meta)
    assert bundle.normalize(np.full((1, 2, 2, 1), 5000, np.uint16)).flatten().tolist() == [0.5] * 4


def test_bad_percentile_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="2 'low' values for 3 bands"):
        InputContract(bands=["a", "b", "c"], scaling={"method": "percentile", "low": [0, 0], "high": [1, 1]})
    with pytest.raises(ValueError, match="unknown scaling"):
        InputContract(bands=["a"], scaling={"method": "zscore"})


def test_models_command_shows_each_bundled_models_contract(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the table on a wide terminal: cells not folded
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for row in rows.values():
        contract = row["input"]
        assert contract["bands"] and contract["scaling"]["method"] in ("fixed", "percentile")
        assert "nodata" in contract and isinstance(contract["summary"], str)
    assert rows["tissue"]["input"]["bands"] == ["red", "green", "blue"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "red, green, blue" in out and "uint8 0–255" in out and "v × 1/255" in out


@pytest.mark.parametrize("scaling", [{"method": "fixed", "scale": 1 / 255},
                                     {"method": "percentile", "percentiles": [1, 99],
                                      "low": [3.0, 10.0, 0.0], "high": [250.0, 200.0, 255.0]}])
def test_8bit_channels_last_tiles_normalise_bit_for_bit_as_the_arithmetic(scaling) -> None:
    """The engine's 8-bit path (a table of the 256 values per band) must give exactly what the
    arithmetic gives, in both layouts, and follow a contract changed after the first call."""
    contract = InputContract(bands=["red", "green", "blue"], dtype="uint8", value_range=[[0, 255]] * 3,
                             scaling=scaling)
    meta = ModelMeta(name="rgb", classes=["a", "b"], colors=[(0, 0, 0), (1, 1, 1)], arch={},
                     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], input_contract=contract.to_dict())
    bundle = ModelBundle(torch.nn.Identity(), meta)
    tiles = np.random.default_rng(0).integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)
    nchw = bundle.normalize_array(tiles)  # the arithmetic, on contiguous planes
    fast = bundle.normalize_array(tiles, channels_last=True)
    assert fast.shape == nchw.shape and fast.strides[-3] == 4  # (B, bands, h, w) view of NHWC memory
    assert np.array_equal(fast, nchw)
    bundle.meta.std = [0.5, 0.5, 0.5]  # a new normalisation: the table must not be stale
    assert np.array_equal(bundle.normalize_array(tiles, channels_last=True), bundle.normalize_array(tiles))


@pytest.mark.parametrize("sum_count", [4, 9, 256])
def test_block_sums_normalise_bit_for_bit_as_their_float32_means(sum_count) -> None:
    """Slide tiles box-downsampled by k travel as uint16 sums of k² bytes: the table over every
    sum must give exactly what normalising the float32 block means gives (box_mean's values)."""
    from gigavim.io.box import mean_of_sums

    meta = ModelMeta(name="rgb", classes=["a", "b"], colors=[(0, 0, 0), (1, 1, 1)], arch={},
                     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    bundle = ModelBundle(torch.nn.Identity(), meta)
    rng = np.random.default_rng(sum_count)
    sums = rng.integers(0, 255 * sum_count + 1, (2, 120, 150, 3)).astype(np.uint16)
    sums[0, 0, :3] = [0, 255 * sum_count, 1]  # both ends of the table
    expected = bundle.normalize_array(mean_of_sums(sums, sum_count))
    fast = bundle.normalize_array(sums, channels_last=True, sum_count=sum_count)
    assert fast.strides[-3] == 4 and np.array_equal(fast, expected)
    assert np.array_equal(bundle.normalize_array(sums, sum_count=sum_count), expected)
