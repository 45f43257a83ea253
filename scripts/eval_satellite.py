"""Held-out scores of the satellite models and their classical baselines, as the model cards show.

    python scripts/eval_satellite.py [--buildings MODEL.pt] [--water MODEL.pt] [--json OUT.json]

Buildings (SpaceNet-1 Rio, held-out tiles img52, img53, img61): pixel IoU/F1 of the building
objects' pixels (what the GeoJSON covers) from the summed confusion matrix, and object F1 at
IoU ≥ 0.5 (the SpaceNet convention) via
:class:`gigavim.instances.metrics.InstanceScores`: true buildings are the 8-connected components
of the mask, predicted ones what ``segment`` makes with the model's own ``instances`` settings
(three-class marker watershed, or connected components, with the model's own minimum area and
test-time augmentation);
true buildings under 5 m² (20 px, the SpaceNet rule) dropped. Baseline: a random-forest pixel classifier
on scikit-image's multiscale colour/edge/texture features (ilastik-style trainable
segmentation), trained on the same training tiles.

Water (Sen1Floods11 Spain_7370579 on the model's working grid, held-out right-most quarter of the
columns, as the recipe splits it): water IoU/F1. Baselines, on the same pixels:
NDWI = (B3 − B8)/(B3 + B8) > 0 (McFeeters 1996), NDWI above the Otsu threshold of the training
columns, and ``land-water`` on the chip's true-colour rendering (B4, B3, B2 at 0..0.3 → 0..255).
Needs scikit-learn for the random forest (``pip install scikit-learn``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from skimage.feature import multiscale_basic_features
from skimage.filters import threshold_otsu
from skimage.measure import label

from gigavim.instances.metrics import InstanceScores
from gigavim.instances.settings import default_settings, instances_from_settings
from gigavim.models.catalog import load_model
from gigavim.models.tta import with_tta
from gigavim.train.dataset import load_train_image
from gigavim.train.metrics import IGNORE_LABEL, confusion_matrix, scores
from gigavim.train.predict import predict_labels, predict_probabilities

REAL = Path("../shared/data/real/geo_labelled")
RIO = REAL / "spacenet1_rio"
S2 = REAL / "sen1floods11"
TRAIN_TILES = ("50", "51", "55", "57", "64", "58", "59", "60", "62")  # what the weights have seen
SELECTION_TILES = ("57",)  # left out of the last stage; weights and post-processing are chosen on it
HELD_OUT_TILES = ("52", "53", "61")
WATER_FRACTION = 0.25  # the recipe's --val-fraction: the right-most quarter of the columns
WATER_GAP = 16  # the recipe's --val-gap: columns left of the held-out part used by neither
MIN_AREA_M2 = 5.0  # SpaceNet ignores footprints under 20 px at 0.5 m


def rio_pair(tile: str) -> tuple[Path, Path]:
    """Image and building mask; the masks tag 0 as nodata, so they are read with
    ``label_nodata="none"`` (0 = no building, not "unlabelled")."""
    stem = f"3band_013022223130_Public_img{tile}"
    return RIO / "images" / f"{stem}.tif", RIO / "masks" / f"{stem}_buildingmask.tif"


def objects(mask: np.ndarray, min_area_px: int) -> np.ndarray:
    """Connected components (8-connected) of a binary mask, those under ``min_area_px`` dropped."""
    ids = label(mask, connectivity=2)
    if min_area_px > 1 and ids.any():
        small = np.bincount(ids.ravel()) < min_area_px
        small[0] = False
        ids[small[ids]] = 0
    return ids


def building_row(name: str, masks: dict[str, np.ndarray], ids: dict[str, np.ndarray],
                 truths: dict[str, np.ndarray], min_area_px: int) -> dict:
    """Pixel scores of the building ``masks`` and object scores of the ``ids`` (one id per
    predicted building) against each tile's truth components, pooled over the tiles."""
    cm = np.zeros((2, 2), np.int64)
    inst = InstanceScores()
    for tile, mask in masks.items():
        truth = truths[tile]
        cm += confusion_matrix(truth, mask.astype(np.uint8), 2)
        inst.add(objects(truth == 1, min_area_px), ids[tile], name=tile, ignore=truth == IGNORE_LABEL)
    s = scores(cm, ["background", "building"])["per_class"][1]
    pooled = inst.result()["pooled"]
    return {"method": name, "iou": s["iou"], "f1": s["dice"], "object_f1": pooled["object_f1"],
            "objects_tp_fp_fn": [pooled["tp"], pooled["fp"], pooled["fn"]]}


def model_buildings(bundle, rgb: np.ndarray, gsd: float) -> tuple[np.ndarray, np.ndarray]:
    """A model's building ids on one tile, as ``segment`` makes its objects (the bundle's
    ``instances`` settings: three-class watershed, or connected components), and their pixels."""
    probs = predict_probabilities(bundle, rgb, tile=bundle.meta.tile, overlap=bundle.meta.overlap)
    classes = list(bundle.meta.classes)
    ids = instances_from_settings(probs, dict(bundle.meta.instances or default_settings(classes)),
                                  gsd_m=gsd, classes=classes)
    return ids > 0, ids


def rio_images(tiles: tuple[str, ...], gsd_m: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pixels (H, W, 3) and labels on the model's working grid, as ``segment`` reads them."""
    out = {}
    for tile in tiles:
        image, mask = rio_pair(tile)
        im = load_train_image(image, mask, gsd_m=gsd_m, mode="binary", label_nodata="none")
        try:
            out[tile] = (np.asarray(im.image[0:im.shape[0], 0:im.shape[1]]), im.labels)
        finally:
            im.close()
    return out


def forest_baseline(train: dict, held_out: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random forest on multiscale features: 20k pixels per class from the training tiles."""
    from sklearn.ensemble import RandomForestClassifier

    def features(rgb: np.ndarray) -> np.ndarray:
        return multiscale_basic_features(rgb / 255.0, channel_axis=-1, sigma_min=1, sigma_max=16)

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for rgb, lab in train.values():
        f = features(rgb)
        for c in (0, 1):
            idx = np.flatnonzero(lab.ravel() == c)
            if idx.size:
                pick = rng.choice(idx, size=min(idx.size, 20000 // len(train) + 1), replace=False)
                xs.append(f.reshape(-1, f.shape[-1])[pick])
                ys.append(np.full(pick.size, c))
    forest = RandomForestClassifier(n_estimators=100, max_depth=16, n_jobs=1, random_state=seed,
                                    class_weight="balanced")
    forest.fit(np.concatenate(xs), np.concatenate(ys))
    return {t: forest.predict(features(rgb).reshape(-1, features(rgb).shape[-1])).reshape(lab.shape)
            for t, (rgb, lab) in held_out.items()}


def evaluate_buildings(model: str, with_baseline: bool) -> list[dict]:
    bundle = with_tta(load_model(model))  # the model's own test-time augmentation, as segment runs it
    gsd = bundle.meta.gsd_m or 0.5
    min_area_px = max(1, round(MIN_AREA_M2 / gsd**2))  # the truth's rule; the model's own is in its settings
    held_out = rio_images(HELD_OUT_TILES, gsd)
    truths = {t: lab for t, (_, lab) in held_out.items()}
    found = {t: model_buildings(bundle, rgb, gsd) for t, (rgb, _) in held_out.items()}
    rows = [building_row(bundle.meta.name, {t: m for t, (m, _) in found.items()},
                         {t: i for t, (_, i) in found.items()}, truths, min_area_px)]
    rows += [building_row(f"{bundle.meta.name}: img{t} alone", {t: found[t][0]}, {t: found[t][1]}, truths,
                          min_area_px) for t in HELD_OUT_TILES]
    if with_baseline:
        train = rio_images(TRAIN_TILES, gsd)
        forest = forest_baseline(train, held_out)
        rows.append(building_row("random forest, multiscale features", forest,
                                 {t: objects(m == 1, min_area_px) for t, m in forest.items()}, truths,
                                 min_area_px))
    return rows


def water_row(name: str, pred: np.ndarray, truth: np.ndarray) -> dict:
    s = scores(confusion_matrix(truth, pred, 2), ["background", "water"])
    w = s["per_class"][1]
    return {"method": name, "iou": w["iou"], "f1": w["dice"], "pixel_accuracy": s["pixel_accuracy"],
            "pixels": s["pixels"]}


def evaluate_water(model: str, with_baselines: bool) -> list[dict]:
    """Model and baselines on the same pixels: the chip on the model's working grid (as segment
    and training read it), held-out = its right-most quarter of columns, the recipe's split."""
    bundle = load_model(model)
    image, labels = S2 / "Spain_7370579_S2Hand.tif", S2 / "Spain_7370579_LabelHand.tif"
    im = load_train_image(image, labels, gsd_m=bundle.meta.gsd_m, mode="values")
    try:
        h, w = im.shape
        cut = round(w * (1 - WATER_FRACTION))
        pixels, truth_all = np.asarray(im.image[0:h, 0:w], np.float64), im.labels
        held = im.crop(0, h, cut, w)
        pred = predict_labels(bundle, held.image, tile=bundle.meta.tile, overlap=bundle.meta.overlap)
    finally:
        im.close()
    truth = truth_all[:, cut:]
    rows = [water_row(f"{bundle.meta.name} (held-out {w - cut} of {w} columns)", pred, truth)]
    if not with_baselines:
        return rows
    b3, b8 = pixels[..., 2], pixels[..., 7]
    ndwi = np.where(b3 + b8 > 0, (b3 - b8) / np.maximum(b3 + b8, 1), 0)
    train_cols = slice(0, cut - WATER_GAP)
    labelled = truth_all[:, train_cols] != IGNORE_LABEL
    otsu = threshold_otsu(ndwi[:, train_cols][labelled])
    rows.append(water_row("NDWI (B3, B8) > 0", (ndwi[:, cut:] > 0).astype(np.uint8), truth))
    rows.append(water_row(f"NDWI > Otsu threshold of the training columns ({otsu:.3f})",
                          (ndwi[:, cut:] > otsu).astype(np.uint8), truth))
    rows.append(land_water_on_true_colour(pixels[..., [3, 2, 1]], truth, cut))
    return rows


def land_water_on_true_colour(rgb_counts: np.ndarray, truth: np.ndarray, cut: int) -> dict:
    """The old raster default on what an RGB user would give it: B4, B3, B2 at 0..0.3 → 0..255."""
    rgb = np.clip(rgb_counts / 3000.0 * 255.0, 0, 255).round().astype(np.uint8)
    bundle = load_model("land-water")
    pred = predict_labels(bundle, rgb[:, cut:], tile=bundle.meta.tile, overlap=bundle.meta.overlap)
    water = (pred == bundle.meta.classes.index("water")).astype(np.uint8)
    return water_row("land-water on the true-colour rendering (B4, B3, B2)", water, truth)


def evaluate_land_water() -> list[dict]:
    """The old raster default on real scenes: its own map's held-out quarter, the Rio tiles (sea
    tiles img59–62 are all water, the building tiles land with a few pools) and the S2 chip."""
    bundle = load_model("land-water")
    water = bundle.meta.classes.index("water")
    geo = Path("../shared/data/real/geo")
    im = load_train_image(geo / "world.rgb.tif", geo / "world.byte.tif", mode="values")
    try:
        h, w = im.shape
        held = im.crop(0, h, round(w * 0.75), w)  # the quarter its recipe held out
        pred = predict_labels(bundle, held.image, tile=bundle.meta.tile, overlap=bundle.meta.overlap)
        truth = held.labels
    finally:
        im.close()
    rows = [water_row("world.rgb.tif, held-out eastern quarter (water IoU)", (pred == water).astype(np.uint8),
                      (truth == water).astype(np.uint8) + (truth == IGNORE_LABEL) * IGNORE_LABEL)]
    for name, tiles in (("Rio sea tiles img59-62: share called water", ("59", "60", "61", "62")),
                        ("Rio land tiles: share called water", ("50", "51", "52", "53", "55", "57", "64"))):
        called, valid = 0, 0
        for tile in tiles:
            image, mask = rio_pair(tile)
            t = load_train_image(image, mask, mode="binary", label_nodata="none")
            try:
                p = predict_labels(bundle, t.image, tile=bundle.meta.tile, overlap=bundle.meta.overlap)
                ok = t.labels != IGNORE_LABEL
                called += int(((p == water) & ok).sum())
                valid += int(ok.sum())
            finally:
                t.close()
        rows.append({"method": name, "share": called / valid, "pixels": valid})
    return rows


def markdown(rows: list[dict], keys: tuple[str, ...]) -> str:
    head = "| method | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys) + "\n"
    return head + "".join("| " + r["method"] + " | " + " | ".join(
        f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |\n" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", default="buildings-rgb", help="model name or bundle path")
    parser.add_argument("--water", default="water-s2", help="model name or bundle path")
    parser.add_argument("--only", choices=("buildings", "water", "land-water"), help="evaluate one task")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    result = {}
    if args.only in (None, "buildings"):
        result["buildings"] = evaluate_buildings(args.buildings, not args.no_baselines)
        print(markdown(result["buildings"], ("iou", "f1", "object_f1", "objects_tp_fp_fn")))
    if args.only in (None, "water"):
        result["water"] = evaluate_water(args.water, not args.no_baselines)
        print(markdown(result["water"], ("iou", "f1", "pixel_accuracy", "pixels")))
    if args.only == "land-water":
        result["land-water"] = evaluate_land_water()
        print(json.dumps(result["land-water"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
