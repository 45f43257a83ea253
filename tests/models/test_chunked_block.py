"""Chunked CPU inference of Vim blocks equals the whole-sequence forward (states carried exactly)."""

from __future__ import annotations

import pytest
import torch

import gigavim.models.vim as vim_module
from gigavim import kernels
from gigavim.models import vim_from_official_config
from gigavim.models.chunked_block import chunk_bounds, chunked_kernels
from gigavim.models.vim import VisionMamba

pytestmark = pytest.mark.skipif(kernels.fused_cpu(torch.zeros(1)) is None,
                                reason="numba not installed: no fused CPU path to chunk")


@pytest.fixture(autouse=True)
def one_thread():
    """Many small kernel calls: thread-pool hand-offs would dominate on a loaded 2-core host."""
    import numba

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


@pytest.fixture
def count_chunked(monkeypatch):
    """Counts the blocks that really ran chunked (an unchunked run would make equality trivial)."""
    calls = []
    original = vim_module.forward_chunked

    def counting(block, residual, fused):
        calls.append(residual.shape[1])
        return original(block, residual, fused)

    monkeypatch.setattr(vim_module, "forward_chunked", counting)
    return calls


def _perturbed_model(dtype: torch.dtype) -> VisionMamba:
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, patch_size=8, stride=8, depth=2, embed_dim=32, num_classes=0)
    with torch.no_grad():  # no zero biases or identical A rows to hide a wrong carry
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.to(dtype).eval()


@pytest.mark.parametrize("chunk", [2, 5, 40])
def test_chunked_equals_whole_sequence_float64(chunk, count_chunked):
    """91 tokens (a middle class token) in chunks shorter than the conv, not dividing L, one short."""
    model = _perturbed_model(torch.float64)
    x = torch.randn(2, 3, 80, 72, dtype=torch.float64)
    with torch.no_grad():
        model.set_inference_chunk(None)
        whole = model.forward_features(x)
        assert not count_chunked
        model.set_inference_chunk(chunk)
        chunked = model.forward_features(x)
    assert count_chunked == [91, 91]
    assert (chunked - whole).abs().max() < 1e-12


def test_chunked_float32_matches_within_rounding(count_chunked):
    model = _perturbed_model(torch.float32)
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        model.set_inference_chunk(None)
        whole = model.forward_features(x)
        model.set_inference_chunk(7)
        chunked = model.forward_features(x)
    assert count_chunked
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_chunked_matches_official_golden_vectors(golden, count_chunked):
    model = vim_from_official_config(golden["config"]).to(torch.float64).eval()
    model.load_state_dict(golden["state_dict"], strict=True)
    model.set_inference_chunk(5)  # L = 17: chunks 5, 5, 5, 2
    with torch.no_grad():
        features = model.forward_features(golden["input"])
    assert count_chunked == [17, 17]
    assert (features - golden["features"]).abs().max() < 1e-10


def test_chunking_only_for_long_sequences_without_grad():
    block = _perturbed_model(torch.float32).layers[0]
    block.chunk_tokens = 8
    long, short = torch.randn(1, 9, 32), torch.randn(1, 8, 32)
    assert chunked_kernels(block, long) is None  # gradients wanted: the autograd path
    with torch.no_grad():
        assert chunked_kernels(block, long) is not None
        assert chunked_kernels(block, short) is None
        block.train()
        block.drop_path.p = 0.1  # drop path is per sample over the whole sequence: not chunked
        assert chunked_kernels(block, long) is None


def test_chunk_bounds_cover_the_sequence_once():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(8, 4) == [(0, 4), (4, 8)]
