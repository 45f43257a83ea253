"""`evaluate` scores objects (AJI, PQ, object F1) for models that make them, and the baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.io import imsave

from gigavim.errors import UsageError
from gigavim.models.bundle import ModelBundle, ModelMeta
from gigavim.train.evaluate import evaluate, evaluate_baseline
from gigavim.train.instance_labels import interior_boundary_classes


class Oracle(torch.nn.Module):
    """Logits read straight from the pixels: channel 0 = interior, 1 = boundary, 2 = background
    (each 0 or 255), so the model outputs exactly the classes painted into the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20.0 * torch.stack([x[:, 2], x[:, 0], x[:, 1]], dim=1)


def oracle_bundle(instances: dict | None = None) -> ModelBundle:
    meta = ModelMeta(name="oracle", classes=["background", "nucleus", "nucleus-boundary"],
                     colors=[(0, 0, 0), (255, 0, 0), (255, 255, 0)], arch={"size_multiple": 1},
                     mean=[0.0] * 3, std=[1.0] * 3, tile=32, overlap=8, trained=True,
                     instances=instances if instances is not None else {
                         "method": "three-class-watershed", "object_class": "nucleus", "interior": 1,
                         "boundary": 2, "foreground_threshold": 0.5, "marker_threshold": 0.5,
                         "min_marker_px": 1, "min_area_um2": 0, "boundary_um": 1})
    return ModelBundle(Oracle(), meta)


def _truth() -> np.ndarray:
    ids = np.zeros((40, 50), np.uint16)
    ids[5:15, 5:15] = 1
    ids[5:15, 15:26] = 2  # touches nucleus 1
    ids[25:35, 30:42] = 3
    return ids


def _paint(ids: np.ndarray) -> np.ndarray:
    cls = interior_boundary_classes(ids.astype(np.int32), 1)
    rgb = np.zeros((*ids.shape, 3), np.uint8)
    rgb[..., 0] = 255 * (cls == 1)
    rgb[..., 1] = 255 * (cls == 2)
    rgb[..., 2] = 255 * (cls == 0)
    return rgb


def _pair(tmp_path: Path, image_ids: np.ndarray, truth_ids: np.ndarray, name: str) -> tuple[str, str]:
    imsave(tmp_path / f"{name}.png", _paint(image_ids), check_contrast=False)
    imsave(tmp_path / f"{name}_label.png", truth_ids, check_contrast=False)
    return str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}_label.png")


def test_a_perfect_model_scores_one_and_touching_nuclei_stay_apart(tmp_path: Path) -> None:
    result = evaluate(oracle_bundle(), [_pair(tmp_path, _truth(), _truth(), "a")])
    objects = result["overall"]["instances"]
    assert objects["pooled"]["aji"] == pytest.approx(1.0)
    assert objects["pooled"]["pq"] == pytest.approx(1.0)
    assert objects["pooled"]["object_f1"] == 1.0 and objects["pooled"]["tp"] == 3
    assert objects["objects"]["per_class"][1]["dice"] == 1.0
    assert result["overall"]["per_class"][2]["class"] == "nucleus-boundary"  # 3-class pixel scores too


def test_a_missed_nucleus_counts_as_a_false_negative(tmp_path: Path) -> None:
    seen = _truth()
    seen[seen == 3] = 0  # the model does not see nucleus 3
    result = evaluate(oracle_bundle(), [_pair(tmp_path, seen, _truth(), "b")])
    pooled = result["overall"]["instances"]["pooled"]
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (2, 0, 1)
    assert pooled["object_f1"] == pytest.approx(4 / 5)
    area = (_truth() > 0).sum()
    assert pooled["aji"] == pytest.approx((area - 120) / area)  # nucleus 3 (120 px) adds to the union only
    assert result["images"][0]["instances"]["fn"] == 1


def test_objects_are_scored_only_when_asked_or_declared(tmp_path: Path) -> None:
    pair = _pair(tmp_path, _truth(), _truth(), "c")
    with pytest.raises(UsageError, match=r"c_label\.png: label value 3 is not a class id"):
        evaluate(oracle_bundle(), [pair], instances=False)  # instance ids are not class ids
    painted = str(tmp_path / "classes.png")
    imsave(painted, interior_boundary_classes(_truth().astype(np.int32), 1), check_contrast=False)
    plain = evaluate(oracle_bundle(), [(pair[0], painted)], instances=False)
    assert "instances" not in plain["overall"] and plain["overall"]["mean_iou"] == 1.0
    bare = oracle_bundle(instances={})
    assert evaluate(bare, [pair], instances=True)["overall"]["instances"]["pooled"]["tp"] == 3


def test_the_baseline_is_scored_by_the_same_code(tmp_path: Path) -> None:
    ids = np.zeros((60, 60), np.uint16)
    yy, xx = np.mgrid[:60, :60]
    ids[(yy - 20) ** 2 + (xx - 20) ** 2 < 64] = 1
    ids[(yy - 40) ** 2 + (xx - 42) ** 2 < 64] = 2
    rgb = np.full((60, 60, 3), (235, 200, 220), np.uint8)  # pink eosin background
    rgb[ids > 0] = (60, 40, 140)  # dark purple haematoxylin nuclei
    imsave(tmp_path / "he.png", rgb, check_contrast=False)
    imsave(tmp_path / "he_label.png", ids, check_contrast=False)
    result = evaluate_baseline([(str(tmp_path / "he.png"), str(tmp_path / "he_label.png"), 0.5)], mpp=0.5)
    pooled = result["overall"]["instances"]["pooled"]
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (2, 0, 0)
    assert pooled["aji"] > 0.8
