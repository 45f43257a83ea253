"""Random scan inputs shaped like one Vim direction, and the error measure the kernel tests use."""

from __future__ import annotations

import torch


def scan_inputs(batch: int = 2, dim: int = 6, d_state: int = 4, length: int = 37,
                dtype: torch.dtype = torch.float64, seed: int = 0) -> dict[str, torch.Tensor]:
    """u, delta, A, B, C, D, z, delta_bias, initial_state with Vim-like ranges (A < 0, small Δ)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    return {
        "u": r(batch, dim, length),
        "delta": r(batch, dim, length, scale=0.5),
        "A": (-torch.rand(dim, d_state, generator=g, dtype=torch.float64) * 4 - 0.1).to(dtype),
        "B": r(batch, d_state, length),
        "C": r(batch, d_state, length),
        "D": r(dim),
        "z": r(batch, dim, length),
        "delta_bias": r(dim, scale=0.3),
        "initial_state": r(batch, dim, d_state),
    }


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (float64)."""
    want = want.double()
    return ((got.double() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()
