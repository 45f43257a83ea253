"""Segmentation metrics from a confusion matrix: per-class IoU and Dice, pixel accuracy.

Everything is derived from one integer confusion matrix so that "overall" numbers over many
images are exact (sum the matrices, then compute), not an average of per-image ratios.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IGNORE_LABEL = 255
"""Label value that marks pixels with no ground truth (excluded from loss and metrics)."""


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore: int | None = IGNORE_LABEL) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class.

    Pixels whose truth equals ``ignore`` (or lies outside 0..K-1) are not counted.
    """
    truth = np.asarray(truth).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.shape} vs {pred.shape}")
    keep = (truth >= 0) & (truth < num_classes)
    if ignore is not None:
        keep &= truth != ignore
    truth, pred = truth[keep], np.clip(pred[keep], 0, num_classes - 1)
    counts = np.bincount(truth * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def scores(cm: np.ndarray, classes: list[str] | None = None) -> dict[str, Any]:
    """Per-class IoU and Dice, pixel accuracy and the matrix itself (JSON-serialisable).

    A class absent from both truth and prediction has IoU/Dice ``None`` (undefined), and is left
    out of the means.
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    names = classes or [str(i) for i in range(k)]
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    total = cm.sum()
    per_class = []
    for i in range(k):
        union = tp[i] + fp[i] + fn[i]
        iou = None if union == 0 else float(tp[i] / union)
        dice = None if union == 0 else float(2 * tp[i] / (2 * tp[i] + fp[i] + fn[i]))
        per_class.append({"class": names[i], "iou": iou, "dice": dice,
                          "support": int(cm[i].sum())})
    defined = [c for c in per_class if c["iou"] is not None]
    return {
        "pixels": int(total),
        "pixel_accuracy": None if total == 0 else float(tp.sum() / total),
        "mean_iou": float(np.mean([c["iou"] for c in defined])) if defined else None,
        "mean_dice": float(np.mean([c["dice"] for c in defined])) if defined else None,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
