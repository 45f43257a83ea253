"""Random scan inputs shaped like one Vim direction, and the error measure the kernel tests use."""

from __future__ import annotations

import torch


def scan_inputs(batch: int = 2, dim: int = 6, d_state: int = 4, length: int = 37,
                dtype: torch.dtype = torch.float64, seed: int = 0) -> dict[str, torch.Tensor]:
    """u, delta, A, B, C, D, z, delta_bias, initial_state with Vim-like ranges (A < 0, small Δ)."""
    g = torch.Generator().manual_seed(seed)
    device = torch.get_default_device()  # CUDA under the ``kernel_device`` fixture on a GPU

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64, device="cpu") * scale).to(device, dtype)

    return {
        "u": r(batch, dim, length),
        "delta": r(batch, dim, length, scale=0.5),
        "A": (-torch.rand(dim, d_state, generator=g, dtype=torch.float64, device="cpu") * 4 - 0.1
              ).to(device, dtype),
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


def scan_in_two_pieces(scan, x: dict[str, torch.Tensor], cut: int, reverse: bool):
    """Run ``scan(inputs, initial_state) -> (y, last_state)`` over x[..., :cut] and x[..., cut:]
    with the state carried between them, in processing order (the last piece first when
    ``reverse``, as the backward branch meets it); returns (y of the whole sequence, last state)."""

    def piece(sl, state):
        p = {k: (v[..., sl] if v is not None and v.dim() == 3 and k != "initial_state" else v)
             for k, v in x.items()}
        return scan(p, state)

    first, second = slice(0, cut), slice(cut, None)
    if reverse:
        y2, h = piece(second, x["initial_state"])
        y1, h = piece(first, h)
    else:
        y1, h = piece(first, x["initial_state"])
        y2, h = piece(second, h)
    return torch.cat([y1, y2], -1), h
