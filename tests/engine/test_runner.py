"""``Predictor.probabilities``: the one place logits become the class probabilities the engine stores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gigavim.engine.runner import Predictor
from gigavim.errors import ModelError
from gigavim.models.bundle import ModelBundle, ModelMeta


def _predictor(classes: int, out_channels: int) -> Predictor:
    meta = ModelMeta(name="probe", classes=[f"c{i}" for i in range(classes)],
                     colors=[(i, i, i) for i in range(classes)], arch={}, trained=False)
    return Predictor(ModelBundle(nn.Conv2d(3, out_channels, 1), meta))


def test_k_logits_are_softmaxed_over_the_class_axis() -> None:
    logits = torch.randn(2, 3, 4, 5)
    probs = _predictor(3, 3).probabilities(logits)
    assert torch.allclose(probs, torch.softmax(logits, dim=1))
    assert torch.allclose(probs.sum(1), torch.ones(2, 4, 5))


def test_a_single_binary_logit_becomes_background_and_foreground() -> None:
    logits = torch.tensor([[[[-2.0, 0.0, 3.0]]]])  # (1, 1, 1, 3)
    probs = _predictor(2, 1).probabilities(logits)
    assert probs.shape == (1, 2, 1, 3)
    assert torch.allclose(probs[:, 1], torch.sigmoid(logits[:, 0]))
    assert torch.allclose(probs[:, 0], 1 - torch.sigmoid(logits[:, 0]))


def test_channels_that_match_no_class_count_name_the_model() -> None:
    with pytest.raises(ModelError, match="'probe' outputs 4 channels but declares 3 classes"):
        _predictor(3, 4).probabilities(torch.zeros(1, 4, 2, 2))
