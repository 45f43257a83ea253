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


def test_prepared_tiles_equal_the_torch_normalisation_bit_for_bit() -> None:
    """Reader threads normalise with numpy; the values are those of the torch formula, padded."""
    import numpy as np

    meta = ModelMeta(name="probe", classes=["a", "b"], colors=[(0, 0, 0), (1, 1, 1)],
                     arch={"size_multiple": 8}, trained=False, mean=(0.1, 0.5, 0.9), std=(0.3, 0.7, 0.2))
    predictor = Predictor(ModelBundle(nn.Conv2d(3, 2, 1), meta))
    raw = np.random.default_rng(0).integers(0, 256, (2, 13, 10, 3)).astype(np.float32)
    raw[0, 0, 0, 1] = np.nan
    offset, scale = (torch.from_numpy(a)[None, :, None, None] for a in meta.contract().offset_scale())
    x = torch.from_numpy(np.ascontiguousarray(raw.transpose(0, 3, 1, 2)))
    want = (torch.nan_to_num((x - offset) * scale, nan=0.0) - torch.tensor(meta.mean)[None, :, None, None]) \
        / torch.tensor(meta.std)[None, :, None, None]
    got = predictor.prepare(raw)
    assert got.shape == (2, 3, 16, 16)  # edge-padded to the size multiple
    assert torch.equal(torch.from_numpy(got[:, :, :13, :10].copy()), want)
    assert np.array_equal(got[:, :, 13:, :10], np.repeat(got[:, :, 12:13, :10], 3, axis=2))


def test_the_three_steps_equal_one_call_and_refuse_nan_logits() -> None:
    import numpy as np

    predictor = _predictor(2, 2)
    raw = np.random.default_rng(1).integers(0, 256, (3, 6, 7, 3)).astype(np.uint8)
    staged = predictor.finish(predictor.forward(predictor.prepare(raw), 6, 7))
    assert staged.dtype == np.float16 and staged.shape == (3, 2, 6, 7)
    assert np.array_equal(staged, predictor(raw))
    with torch.inference_mode():
        want = torch.softmax(predictor.net(predictor.bundle.normalize(raw)), 1).half().numpy()
    assert np.abs(staged.astype(np.float32) - want).max() <= 1e-3
    with pytest.raises(ModelError, match="'probe' produced non-finite outputs"):
        predictor.finish(np.array([[[[np.nan]], [[0.0]]]], np.float32))


def test_batches_are_channels_last_and_give_the_nchw_result() -> None:
    """Prepared tiles are NHWC memory seen as NCHW; stacked per batch they stay so, and the
    network's output equals the one on a contiguous NCHW batch."""
    import numpy as np

    from gigavim.engine.runner import stacked_like

    predictor = _predictor(3, 3)
    raw = np.random.default_rng(2).integers(0, 256, (4, 9, 11, 3)).astype(np.float32)
    tiles = [predictor.prepare(r) for r in raw]
    batch = stacked_like(tiles[0], len(tiles))
    for i, t in enumerate(tiles):
        batch[i] = t
    assert torch.from_numpy(batch).is_contiguous(memory_format=torch.channels_last)
    got = predictor.forward(batch, 9, 11)
    with torch.inference_mode():
        want = predictor.net(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_tile_batches_run_vim_blocks_over_the_whole_sequence() -> None:
    """Chunked Vim blocks save memory on whole images only; on bounded tile batches they cost time."""
    from gigavim.models.vim import VisionMamba

    net = VisionMamba(img_size=32, patch_size=8, stride=8, depth=2, embed_dim=32, num_classes=0)
    assert all(block.chunk_tokens for block in net.layers)  # the library default chunks long inputs
    meta = ModelMeta(name="probe", classes=["a", "b"], colors=[(0, 0, 0), (1, 1, 1)], arch={}, trained=False)
    Predictor(ModelBundle(net, meta))
    assert all(block.chunk_tokens is None for block in net.layers)
