"""AJI / PQ / object F1 against hand-counted cases."""

import numpy as np
import pytest

from gigavim.instances.metrics import InstanceScores


def _square(shape, y, x, size, value, out=None):
    out = np.zeros(shape, np.int32) if out is None else out
    out[y:y + size, x:x + size] = value
    return out


def test_identical_maps_score_one():
    truth = _square((20, 20), 2, 2, 4, 1)
    _square((20, 20), 10, 10, 5, 2, truth)
    scores = InstanceScores()
    s = scores.add(truth, truth.copy() * 7)  # ids need not agree, only the objects
    d = s.to_dict()
    assert d["tp"] == 2 and d["fp"] == 0 and d["fn"] == 0
    assert d["aji"] == pytest.approx(1.0) and d["pq"] == pytest.approx(1.0)


def test_merged_prediction_is_penalised_in_every_score():
    # two 4x4 nuclei side by side; the prediction is one blob covering both
    truth = _square((10, 12), 2, 1, 4, 1)
    _square((10, 12), 2, 5, 4, 2, truth)
    pred = np.zeros_like(truth)
    pred[2:6, 1:9] = 1
    d = InstanceScores().add(truth, pred).to_dict()
    # IoU of each truth with the blob is 16/32 = 0.5: matched once (one-to-one), the other is missed
    assert d["tp"] == 1 and d["fn"] == 1 and d["fp"] == 0
    assert d["object_f1"] == pytest.approx(2 / 3)
    assert d["sq"] == pytest.approx(0.5) and d["pq"] == pytest.approx(2 / 3 * 0.5)
    # AJI: both truths pair with the blob: C = 16 + 16, U = 32 + 32
    assert d["aji"] == pytest.approx(0.5)


def test_unmatched_prediction_adds_to_aji_union_and_fp():
    truth = _square((10, 10), 0, 0, 4, 1)
    pred = truth.copy()
    pred[8:10, 8:10] = 5  # a 4-px false positive
    d = InstanceScores().add(truth, pred).to_dict()
    assert d["fp"] == 1 and d["tp"] == 1
    assert d["aji"] == pytest.approx(16 / 20)


def test_pooled_sums_counts_and_mean_averages_images():
    scores = InstanceScores()
    truth = _square((10, 10), 0, 0, 4, 1)
    scores.add(truth, truth)
    scores.add(truth, np.zeros_like(truth))
    r = scores.result()
    assert r["mean"]["object_f1"] == pytest.approx(0.5)
    assert r["pooled"]["tp"] == 1 and r["pooled"]["fn"] == 1
    assert r["pooled"]["aji"] == pytest.approx(16 / 32)


def test_ignore_mask_excludes_pixels():
    truth = _square((10, 10), 0, 0, 4, 1)
    pred = truth.copy()
    pred[6:, 6:] = 2
    ignore = np.zeros(truth.shape, bool)
    ignore[5:, 5:] = True
    d = InstanceScores().add(truth, pred, ignore=ignore).to_dict()
    assert d["fp"] == 0 and d["aji"] == pytest.approx(1.0)
