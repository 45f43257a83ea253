"""``gigavim eval``: a model against ground-truth masks, per image and overall.

Every image's band count is checked against the model first (one line naming the file). Each
image is then read on the working grid ``segment`` uses for the model's resolution (window by
window, resampled by the engine's ``TileReader``), predicted with the in-memory tiled predictor
and compared with its mask put onto the same grid.
Overall scores come from the summed confusion matrix, so large images weigh by their pixel count.
Instance masks (0 = background, 1..N objects) count as foreground for binary models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gigavim.errors import UsageError
from gigavim.models.bundle import ModelBundle, check_bands
from gigavim.models.streaming import check_streamable
from gigavim.train.dataset import image_bands, load_train_image
from gigavim.train.labels import check_class_ids
from gigavim.train.metrics import confusion_matrix, scores
from gigavim.train.predict import predict_labels


def parse_pair(text: str) -> tuple[str, str]:
    """``IMAGE:MASK`` → (image, mask); the split is at the last ':' that leaves two parts."""
    if ":" not in text:
        raise UsageError(f"{text}: expected IMAGE:MASK (image path, a colon, the mask path)")
    image, mask = text.rsplit(":", 1)
    if not image or not mask:
        raise UsageError(f"{text}: expected IMAGE:MASK (image path, a colon, the mask path)")
    return image, mask


def evaluate(bundle: ModelBundle, pairs: list[tuple[str, str]], *, image_mpp: float | None = None,
             value_map: Mapping[int, int] | None = None, device: str = "cpu", context: str = "tile",
             on_image: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Per-image and overall scores (see :func:`gigavim.train.metrics.scores`).

    ``context`` as in ``segment``: "tile" (the bundle's tile/overlap) or "image" (each image as
    one sequence; a model that cannot stream is refused before any image is read).
    """
    from gigavim.train.loop import pick_device

    torch_device = pick_device(device)
    meta = bundle.meta
    k = bundle.num_classes
    mode = "binary" if k == 2 else "values"
    if context == "image":
        check_streamable(bundle.net, meta.name)
    for image_path, _ in pairs:  # every image, before any is read
        check_bands(image_path, image_bands(image_path), meta)
    total = np.zeros((k, k), dtype=np.int64)
    per_image = []
    for image_path, mask_path in pairs:
        im = load_train_image(image_path, mask_path, mpp=meta.mpp, gsd_m=meta.gsd_m,
                              image_mpp=image_mpp, mode=mode, value_map=value_map,
                              class_names=meta.classes)
        try:
            check_class_ids(im.labels, meta.classes, mask_path)
            pred = predict_labels(bundle, im.image, tile=meta.tile, overlap=meta.overlap,
                                  device=torch_device, context=context)
        finally:
            im.close()
        cm = confusion_matrix(im.labels, pred, k)
        total += cm
        row = {"image": str(Path(image_path)), "mask": str(Path(mask_path)), **scores(cm, meta.classes)}
        per_image.append(row)
        if on_image:
            on_image(row)
    return {"model": meta.name, "context": context, "classes": list(meta.classes), "images": per_image,
            "overall": scores(total, meta.classes)}
