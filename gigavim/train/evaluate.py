"""``gigavim eval``: a model against ground-truth masks, per image and overall.

Every image's bands are checked against the model's input contract first, by the same code as
``segment`` (:func:`gigavim.engine.bands.match_bands`: one line naming the file, or an explicit
``bands`` mapping). Each
image is then read on the working grid ``segment`` uses for the model's resolution (window by
window, resampled by the engine's ``TileReader``), predicted with the in-memory tiled predictor
and compared with its mask put onto the same grid.
Overall scores come from the summed confusion matrix, so large images weigh by their pixel count.
Instance masks (0 = background, 1..N objects) count as foreground for binary models.

When the model makes objects (``ModelMeta.instances``, or ``instances=True``), the masks are
read as instance ids and the probabilities of each image go through the model's post-processing
in memory: the result adds per-object scores (AJI, PQ = DQ × SQ, object F1 at IoU ≥ 0.5, from
:class:`~gigavim.instances.metrics.InstanceScores`) and the pixel IoU/Dice of objects vs
background, per image, as the mean over images and pooled over all objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gigavim.errors import UsageError
from gigavim.models.bundle import ModelBundle, ModelMeta
from gigavim.models.streaming import check_streamable
from gigavim.train.dataset import load_train_image
from gigavim.train.labels import LabelNodata, check_class_ids
from gigavim.train.metrics import IGNORE_LABEL, confusion_matrix, scores
from gigavim.train.predict import predict_probabilities


def parse_pair(text: str) -> tuple[str, str]:
    """``IMAGE:MASK`` → (image, mask); the split is at the last ':' that leaves two parts."""
    if ":" not in text:
        raise UsageError(f"{text}: expected IMAGE:MASK (image path, a colon, the mask path)")
    image, mask = text.rsplit(":", 1)
    if not image or not mask:
        raise UsageError(f"{text}: expected IMAGE:MASK (image path, a colon, the mask path)")
    return image, mask


def instance_settings(bundle: ModelBundle, instances: bool | None) -> dict[str, Any] | None:
    """The model's object settings when objects are scored (``None``: the model's own choice)."""
    from gigavim.instances.settings import default_settings

    if instances is False:
        return None
    if bundle.meta.instances:
        return dict(bundle.meta.instances)
    return default_settings(list(bundle.meta.classes)) if instances else None


def label_mode(k: int, objects: dict[str, Any] | None) -> str:
    """How masks become class ids: instance ids → interior/boundary for a three-class object model."""
    from gigavim.instances.settings import DISTANCE, THREE_CLASS

    if objects and objects.get("method") in (THREE_CLASS, DISTANCE):
        return "boundary"
    return "binary" if k == 2 else "values"


def evaluate(bundle: ModelBundle, pairs: list[tuple[str, ...]], *, image_mpp: float | None = None,
             value_map: Mapping[int, int] | None = None, device: str = "cpu", context: str = "tile",
             on_image: Callable[[dict[str, Any]], None] | None = None,
             instances: bool | None = None, label_nodata: LabelNodata = "tag",
             bands: str | Sequence[int | str] | None = None,
             tta: int | bool | None = None, stain_norm: bool | None = None) -> dict[str, Any]:
    """Per-image and overall scores (see :func:`gigavim.train.metrics.scores`).

    ``bands``: as ``segment --bands`` (the same check and mapping: an image whose bands differ
    from the model's input contract is refused without it, before any image is read).

    ``context`` as in ``segment``: "tile" (the bundle's tile/overlap) or "image" (each image as
    one sequence; a model that cannot stream is refused before any image is read).
    ``instances``: score objects too (``None``: when the model has instances settings).
    A pair may carry a third element, that image's µm/px (instead of ``image_mpp``).
    ``label_nodata="none"``: the masks' nodata tags are ignored
    (:data:`~gigavim.train.labels.LabelNodata`).
    ``tta``: test-time augmentation views, as ``segment``'s (default: the model's).
    ``stain_norm``: re-stain each image like the model's training data, as ``segment`` does
    (estimated from the image's tiles; default: when the model has a reference stain).
    """
    from gigavim.instances.metrics import InstanceScores
    from gigavim.models.stain import wants_stain_norm
    from gigavim.models.tta import with_tta
    from gigavim.train.loop import pick_device

    torch_device = pick_device(device)
    bundle = with_tta(bundle, tta, context)
    restain = wants_stain_norm(bundle, stain_norm)
    meta = bundle.meta
    k = bundle.num_classes
    objects = instance_settings(bundle, instances)
    mode = label_mode(k, objects)
    if context == "image":
        check_streamable(bundle.net, meta.name)
    picked = [model_bands(image_path, meta, bands) for image_path, *_ in pairs]  # before any is read
    total = np.zeros((k, k), dtype=np.int64)
    object_scores = InstanceScores()
    object_pixels = np.zeros((2, 2), dtype=np.int64)
    per_image = []
    for (image_path, mask_path, *own_mpp), image_bands in zip(pairs, picked, strict=True):
        im = load_train_image(image_path, mask_path, bands=image_bands, mpp=meta.mpp, gsd_m=meta.gsd_m,
                              image_mpp=float(own_mpp[0]) if own_mpp else image_mpp, mode=mode,  # type: ignore[arg-type]
                              value_map=None if objects else value_map, class_names=meta.classes,
                              boundary_um=(objects or {}).get("boundary_um"), label_nodata=label_nodata)
        try:
            check_class_ids(im.labels, meta.classes, mask_path)
            truth_ids = _instance_truth(im, mask_path, label_nodata) if objects else None
            run = _restained(bundle, im.image, str(image_path)) if restain else bundle
            probs = predict_probabilities(run, im.image, tile=meta.tile, overlap=meta.overlap,
                                          device=torch_device, context=context)
        finally:
            im.close()
        cm = confusion_matrix(im.labels, probs.argmax(axis=0).astype(np.uint8), k)
        total += cm
        row = {"image": str(Path(image_path)), "mask": str(Path(mask_path)), **scores(cm, meta.classes)}
        if objects is not None and truth_ids is not None:
            pixels, score = _score_objects(probs, truth_ids, objects, im.pixel_size, object_scores,
                                           str(Path(image_path)), list(meta.classes))
            object_pixels += pixels
            row["instances"] = {**score, "objects": scores(pixels, ["background", _object_name(objects)])}
        per_image.append(row)
        if on_image:
            on_image(row)
    overall = scores(total, meta.classes)
    if objects is not None:
        summary = object_scores.result()
        overall["instances"] = {"settings": objects, "match_iou": summary["match_iou"],
                                "mean": summary["mean"], "pooled": summary["pooled"],
                                "objects": scores(object_pixels, ["background", _object_name(objects)])}
    return {"model": meta.name, "context": context, "tta": meta.tta, "stain_norm": restain,
            "classes": list(meta.classes),
            "images": per_image, "overall": overall}


def _restained(bundle: ModelBundle, image: Any, what: str) -> ModelBundle:
    """``bundle`` re-staining ``image`` (stain estimated from its tiles, as ``segment`` does)."""
    from gigavim.models.stain import with_stain_norm

    return with_stain_norm(bundle, *image_tiles(image, bundle.meta), what)


def image_tiles(image: Any, meta: ModelMeta) -> tuple[Callable[[Any], np.ndarray], list[Any]]:
    """A reader of ``image``'s windows and its tile windows for ``meta``'s tile and overlap (what
    a stain estimate samples, as ``segment`` samples a tile image's tiles)."""
    from gigavim.engine.plan import TileGrid

    grid = TileGrid(image.shape[:2], meta.tile, meta.overlap)
    return (lambda w: np.asarray(image[w.y:w.y + w.height, w.x:w.x + w.width]),
            [grid.tile_window(*t) for t in grid.tiles()])


def model_bands(image_path: str | Path, meta: ModelMeta,
                bands: str | Sequence[int | str] | None) -> list[int] | None:
    """``segment``'s band check and ``--bands`` mapping for one image (headers only): the
    0-based bands the model reads, or ``None`` for the image's own bands as they are."""
    from gigavim import open_image
    from gigavim.engine.bands import match_bands

    with open_image(image_path) as src:
        _, check = match_bands(src, meta, bands)
    return [b - 1 for b in check.bands] if check.mapped else None


def _object_name(objects: dict[str, Any]) -> str:
    return str(objects.get("object_class") or "object")


def _instance_truth(im: Any, mask_path: str, label_nodata: LabelNodata = "tag") -> np.ndarray:
    """The mask as instance ids on the image's working grid (``-1`` unlabelled)."""
    from gigavim.train.instance_labels import load_instance_map

    return load_instance_map(im.image.source, mask_path, resolution=im.image.resolution,
                             label_nodata=label_nodata)


def _score_objects(probs: np.ndarray, truth_ids: np.ndarray, objects: dict[str, Any],
                   pixel_size: dict[str, float], into: Any, name: str,
                   classes: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Post-process one image's probabilities and score its objects; returns the object-vs-
    background confusion matrix and the image's instance scores."""
    from gigavim.instances.settings import instances_from_settings

    pred_ids = instances_from_settings(probs, objects, mpp=pixel_size.get("mpp"),
                                       gsd_m=pixel_size.get("gsd_m"), classes=classes)
    return score_object_map(pred_ids, truth_ids, into, name)


def score_object_map(pred_ids: np.ndarray, truth_ids: np.ndarray, into: Any,
                     name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Score predicted ids against truth ids (``-1`` unlabelled, left out) into an
    :class:`~gigavim.instances.metrics.InstanceScores`; also the objects-vs-background confusion
    matrix. Models and the classical baseline are scored by this one function."""
    unlabelled = truth_ids < 0
    score = into.add(np.where(unlabelled, 0, truth_ids), pred_ids, name, ignore=unlabelled)
    truth_fg = np.where(unlabelled, IGNORE_LABEL, truth_ids > 0).astype(np.uint8)
    return confusion_matrix(truth_fg, (pred_ids > 0).astype(np.uint8), 2), score.to_dict()


def evaluate_baseline(pairs: list[tuple[str, ...]], *, mpp: float, image_mpp: float | None = None,
                      min_area_um2: float = 10.0) -> dict[str, Any]:
    """The classical haematoxylin baseline (:func:`~gigavim.instances.postprocess.haematoxylin_baseline`)
    on the same working grid (``mpp`` µm/px) and scored by the same code as a model's objects."""
    from gigavim.instances.metrics import InstanceScores
    from gigavim.instances.postprocess import haematoxylin_baseline

    object_scores = InstanceScores()
    object_pixels = np.zeros((2, 2), dtype=np.int64)
    per_image = []
    for image_path, mask_path, *own_mpp in pairs:
        im = load_train_image(image_path, mask_path, mpp=mpp,
                              image_mpp=float(own_mpp[0]) if own_mpp else image_mpp)
        try:
            truth_ids = _instance_truth(im, mask_path)
            rgb = np.asarray(im.image[0:im.shape[0], 0:im.shape[1]])[..., :3]
        finally:
            im.close()
        scale = 255.0 / float(np.iinfo(im.value_dtype).max) if im.value_dtype.kind == "u" else 1.0
        pred_ids = haematoxylin_baseline(np.clip(rgb * scale, 0, 255).astype(np.uint8),
                                         mpp=im.pixel_size["mpp"], min_area_um2=min_area_um2)
        pixels, score = score_object_map(pred_ids, truth_ids, object_scores, str(Path(image_path)))
        object_pixels += pixels
        per_image.append({"image": str(Path(image_path)), "mask": str(Path(mask_path)),
                          "instances": {**score, "objects": scores(pixels, ["background", "nucleus"])}})
    summary = object_scores.result()
    return {"model": "haematoxylin-baseline", "context": "image", "images": per_image,
            "overall": {"instances": {"match_iou": summary["match_iou"], "mean": summary["mean"],
                                      "pooled": summary["pooled"],
                                      "objects": scores(object_pixels, ["background", "nucleus"])}}}
