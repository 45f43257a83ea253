"""Box filtering (mean of k×k blocks): the engine's integer downsampling and the masks' overviews."""

from __future__ import annotations

import numpy as np


def box_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k×k blocks of an (h·k, w·k, ...) array as float32 (no float64 copy).

    The k² strided views are added one by one: ~10× faster than ``reshape(...).mean(axis=(1, 3))``
    (numpy reduces two non-adjacent axes slowly). Integers and booleans are summed exactly in an
    integer type (:func:`box_sum`), so the result equals that float32 mean bit for bit; floats sum
    in float32.
    """
    h, w = a.shape[0] // k, a.shape[1] // k
    a = a[:h * k, :w * k]
    if not np.issubdtype(a.dtype, np.floating):
        return mean_of_sums(box_sum(a, k), k * k)
    acc = np.zeros((h, w, *a.shape[2:]), dtype=np.float32)
    for dy in range(k):  # this order of additions, so float results stay as they were
        for dx in range(k):
            acc += a[dy::k, dx::k]
    acc /= k * k
    return acc


def box_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Exact integer sums over k×k blocks of an integer or boolean (h·k, w·k, ...) array: uint16
    for bool/uint8 with k ≤ 16 (sums ≤ 65,280), else int64. Whole rows first (contiguous), then
    columns (~1.5× faster than block by block)."""
    if k == 2 and a.dtype == np.uint8 and a.ndim == 3 and a.flags.c_contiguous:
        from gigavim.io.box_kernel import box_sum_2x2_uint8

        return box_sum_2x2_uint8(a)  # the same sums in one compiled pass (~3× faster)
    h, w = a.shape[0] // k, a.shape[1] // k
    a = a[:h * k, :w * k]
    small = a.dtype == np.bool_ or (a.dtype == np.uint8 and k <= 16)
    acc_dtype = np.uint16 if small else np.int64
    rows = a[0::k].astype(acc_dtype)
    for dy in range(1, k):
        rows += a[dy::k]
    acc = rows[:, 0::k].copy()
    for dx in range(1, k):
        acc += rows[:, dx::k]
    return acc


def mean_of_sums(sums: np.ndarray, count: int) -> np.ndarray:
    """Integer block sums of ``count`` values each → their float32 means, as :func:`box_mean`
    computes them (the engine's 8-bit tiles travel as sums and are normalised through a table
    built with this very function, so both roads give the same bits)."""
    out = sums.astype(np.float32)
    out /= count
    return out


def box_mean_padded(a: np.ndarray, k: int) -> np.ndarray:
    """:func:`box_mean` of ``a`` zero-padded at its far edges to a multiple of k, as
    ``skimage.measure.block_reduce(a, (k, k, ...), np.mean)`` computes it (partial edge blocks are
    averaged with zeros), ~10× faster."""
    ph, pw = -a.shape[0] % k, -a.shape[1] % k
    if ph or pw:
        a = np.pad(a, [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2))
    return box_mean(a, k)
