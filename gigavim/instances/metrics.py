"""Instance-segmentation scores: AJI, panoptic quality (DQ × SQ) and object F1 at IoU ≥ 0.5.

These are the numbers nuclei papers (Kumar et al. 2017 for AJI; Kirillov et al. 2019 / HoVer-Net
for PQ) and SpaceNet (object F1 at IoU ≥ 0.5) report, computed from two integer label maps
(0 = background, each other value one object). `InstanceScores` accumulates images so a table
can give both the mean over images (as papers report) and pooled sums over all objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MATCH_IOU = 0.5


@dataclass
class Overlaps:
    """Pairwise pixel overlaps of two label maps (sparse: only pairs that touch)."""

    truth_ids: np.ndarray  # (T,) ids present in the truth
    pred_ids: np.ndarray  # (P,) ids present in the prediction
    truth_area: np.ndarray  # (T,)
    pred_area: np.ndarray  # (P,)
    pairs: np.ndarray  # (M, 2) indices into truth_ids / pred_ids of pairs that intersect
    inter: np.ndarray  # (M,) intersection areas

    @property
    def iou(self) -> np.ndarray:
        t, p = self.pairs[:, 0], self.pairs[:, 1]
        return self.inter / (self.truth_area[t] + self.pred_area[p] - self.inter)


def overlaps(truth: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None) -> Overlaps:
    """Sparse overlap table of two (H, W) label maps; pixels where `ignore` is true are left out."""
    truth = np.asarray(truth).ravel()
    pred = np.asarray(pred).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.shape} vs {pred.shape}")
    if ignore is not None:
        keep = ~np.asarray(ignore, bool).ravel()
        truth, pred = truth[keep], pred[keep]
    truth_ids, truth_inv, truth_area = np.unique(truth, return_inverse=True, return_counts=True)
    pred_ids, pred_inv, pred_area = np.unique(pred, return_inverse=True, return_counts=True)
    # drop background (id 0) from both tables; indices shift by one where it was present
    t0 = int(truth_ids.size > 0 and truth_ids[0] == 0)
    p0 = int(pred_ids.size > 0 and pred_ids[0] == 0)
    both = (truth != 0) & (pred != 0)
    codes = truth_inv[both].astype(np.int64) * max(pred_ids.size, 1) + pred_inv[both]
    pair_codes, inter = np.unique(codes, return_counts=True)
    pairs = np.stack([pair_codes // max(pred_ids.size, 1) - t0, pair_codes % max(pred_ids.size, 1) - p0],
                     axis=1).astype(np.int64)
    return Overlaps(truth_ids[t0:], pred_ids[p0:], truth_area[t0:].astype(np.int64),
                    pred_area[p0:].astype(np.int64), pairs.reshape(-1, 2), inter.astype(np.int64))


def match_instances(ov: Overlaps, threshold: float = MATCH_IOU) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches with IoU ≥ `threshold`, best IoU first: (pairs (M, 2), their IoUs)."""
    iou = ov.iou
    order = np.argsort(-iou, kind="stable")
    used_t: set[int] = set()
    used_p: set[int] = set()
    keep = []
    for k in order:
        if iou[k] < threshold:
            break
        t, p = int(ov.pairs[k, 0]), int(ov.pairs[k, 1])
        if t in used_t or p in used_p:
            continue
        used_t.add(t)
        used_p.add(p)
        keep.append(k)
    keep_arr = np.asarray(keep, dtype=np.int64)
    return ov.pairs[keep_arr].reshape(-1, 2), iou[keep_arr]


def aji_sums(ov: Overlaps) -> tuple[int, int]:
    """Aggregated Jaccard Index numerator and denominator (Kumar et al. 2017).

    Each true object is paired with the predicted object of highest IoU with it (if any touches
    it); intersections add to the numerator, unions to the denominator; every predicted object
    used by no pairing adds its area to the denominator.
    """
    inter_sum = 0
    union_sum = 0
    used = np.zeros(ov.pred_ids.size, bool)
    iou = ov.iou
    best_for_truth: dict[int, int] = {}
    for k in np.argsort(-iou, kind="stable"):
        best_for_truth.setdefault(int(ov.pairs[k, 0]), int(k))
    for t in range(ov.truth_ids.size):
        k = best_for_truth.get(t)
        if k is None:
            union_sum += int(ov.truth_area[t])
            continue
        p = int(ov.pairs[k, 1])
        inter = int(ov.inter[k])
        inter_sum += inter
        union_sum += int(ov.truth_area[t] + ov.pred_area[p] - inter)
        used[p] = True
    union_sum += int(ov.pred_area[~used].sum())
    return inter_sum, union_sum


@dataclass
class ImageInstanceScore:
    name: str
    truth_objects: int
    pred_objects: int
    tp: int
    iou_sum: float
    aji_inter: int
    aji_union: int

    @property
    def fp(self) -> int:
        return self.pred_objects - self.tp

    @property
    def fn(self) -> int:
        return self.truth_objects - self.tp

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.name, "truth_objects": self.truth_objects, "pred_objects": self.pred_objects,
                **_derived(self.tp, self.fp, self.fn, self.iou_sum, self.aji_inter, self.aji_union),
                "iou_sum": self.iou_sum, "aji_inter": self.aji_inter, "aji_union": self.aji_union}


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else float(a / b)


def _derived(tp: int, fp: int, fn: int, iou_sum: float, aji_inter: int, aji_union: int) -> dict[str, Any]:
    dq = _ratio(tp, tp + 0.5 * fp + 0.5 * fn)
    sq = _ratio(iou_sum, tp)
    return {
        "tp": tp, "fp": fp, "fn": fn,
        "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
        "object_f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "dq": dq, "sq": sq, "pq": None if dq is None or sq is None else dq * sq,
        "aji": _ratio(aji_inter, aji_union),
    }


@dataclass
class InstanceScores:
    """Accumulates instance scores over images; `result()` gives per-image, mean and pooled."""

    threshold: float = MATCH_IOU
    images: list[ImageInstanceScore] = field(default_factory=list)

    def add(self, truth: np.ndarray, pred: np.ndarray, name: str = "",
            ignore: np.ndarray | None = None) -> ImageInstanceScore:
        ov = overlaps(truth, pred, ignore)
        pairs, ious = match_instances(ov, self.threshold)
        inter, union = aji_sums(ov)
        score = ImageInstanceScore(name or f"image{len(self.images)}", int(ov.truth_ids.size),
                                   int(ov.pred_ids.size), len(pairs), float(ious.sum()), inter, union)
        self.images.append(score)
        return score

    def result(self) -> dict[str, Any]:
        """JSON-able: `per_image`, `mean` (average of per-image scores) and `pooled` (summed counts)."""
        per_image = [s.to_dict() for s in self.images]
        keys = ("object_f1", "dq", "sq", "pq", "aji", "precision", "recall")
        mean = {}
        for key in keys:
            values = [d[key] for d in per_image if d[key] is not None]
            mean[key] = float(np.mean(values)) if values else None
        tp = sum(s.tp for s in self.images)
        fp = sum(s.fp for s in self.images)
        fn = sum(s.fn for s in self.images)
        pooled = _derived(tp, fp, fn, sum(s.iou_sum for s in self.images),
                          sum(s.aji_inter for s in self.images), sum(s.aji_union for s in self.images))
        return {"match_iou": self.threshold, "images": len(self.images), "per_image": per_image,
                "mean": mean, "pooled": pooled}
