"""Confusion matrix and scores on hand-made masks, checked against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from gigavim.train.metrics import IGNORE_LABEL, confusion_matrix, scores


def test_binary_scores_match_hand_computation() -> None:
    truth = np.array([[0, 0, 1, 1],
                      [0, 1, 1, 1],
                      [0, 0, 0, IGNORE_LABEL]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 0, 1, 1],
                     [0, 0, 0, 1]])
    cm = confusion_matrix(truth, pred, 2)
    # 11 labelled pixels: background 6 (5 right, 1 called 1), foreground 5 (4 right, 1 missed).
    assert cm.tolist() == [[5, 1], [1, 4]]
    s = scores(cm, ["background", "object"])
    assert s["pixels"] == 11
    assert s["pixel_accuracy"] == pytest.approx(9 / 11)
    bg, fg = s["per_class"]
    assert bg["iou"] == pytest.approx(5 / 7) and bg["dice"] == pytest.approx(10 / 12)
    assert fg["iou"] == pytest.approx(4 / 6) and fg["dice"] == pytest.approx(8 / 10)
    assert s["mean_iou"] == pytest.approx((5 / 7 + 4 / 6) / 2)
    assert bg["support"] == 6 and fg["support"] == 5


def test_three_classes_and_absent_class() -> None:
    truth = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 1, 1, 1, 0, 0])
    cm = confusion_matrix(truth, pred, 3)
    assert cm.tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 0]]
    s = scores(cm)
    assert s["per_class"][2]["iou"] is None  # never present nor predicted: undefined, not 0 or 1
    assert s["mean_iou"] == pytest.approx((2 / 4 + 2 / 4) / 2)


def test_overall_is_from_summed_matrices_not_mean_of_ratios() -> None:
    a = confusion_matrix(np.array([1, 1, 0, 0]), np.array([1, 1, 0, 0]), 2)  # perfect, 4 px
    b = confusion_matrix(np.array([1] * 8), np.array([1] * 4 + [0] * 4), 2)  # half right, 8 px
    fg = scores(a + b)["per_class"][1]
    assert fg["iou"] == pytest.approx(6 / 10)  # not (1.0 + 0.5) / 2
