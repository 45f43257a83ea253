"""The layout helpers the fused CPU path relies on: same values as F.linear, contiguous results."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gigavim.models.layers import channels_first_linear, token_major_linear


def test_channels_first_linear_reads_a_token_major_view_in_place() -> None:
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 50, 8, generator=gen, dtype=torch.float64)  # (B, L, C) memory
    weight = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    out = channels_first_linear(weight, tokens.transpose(1, 2))  # a (B, C, L) view
    assert out.shape == (3, 5, 50) and out.is_contiguous()
    torch.testing.assert_close(out, F.linear(tokens, weight).transpose(1, 2))


def test_token_major_linear_of_channel_first_input() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 40, generator=gen, dtype=torch.float64)  # (B, C, L), contiguous
    weight = torch.randn(6, 8, generator=gen, dtype=torch.float64)
    out = token_major_linear(x, weight)
    assert out.shape == (2, 40, 6) and out.is_contiguous()
    torch.testing.assert_close(out, F.linear(x.transpose(1, 2), weight))
