"""Box filtering (mean of k×k blocks): the engine's integer downsampling and the masks' overviews."""

from __future__ import annotations

import numpy as np


def box_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k×k blocks of an (h·k, w·k, ...) array as float32 (no float64 copy).

    The k² strided views are added one by one: ~10× faster than ``reshape(...).mean(axis=(1, 3))``
    (numpy reduces two non-adjacent axes slowly). Integers and booleans are summed exactly in an
    integer type, so the result equals that float32 mean bit for bit; floats sum in float32.
    """
    h, w = a.shape[0] // k, a.shape[1] // k
    a = a[:h * k, :w * k]
    if np.issubdtype(a.dtype, np.floating):
        acc_dtype: type = np.float32
    else:  # bool/uint8: k ≤ 16 fits uint16; anything else an int64 (exact for any k here)
        small = a.dtype == np.bool_ or (a.dtype == np.uint8 and k <= 16)
        acc_dtype = np.uint16 if small else np.int64
    if acc_dtype is np.float32:  # this order of additions, so float results stay as they were
        acc = np.zeros((h, w, *a.shape[2:]), dtype=acc_dtype)
        for dy in range(k):
            for dx in range(k):
                acc += a[dy::k, dx::k]
    else:  # exact integer sums in any order: whole rows first (contiguous), then columns (~1.5×)
        rows = a[0::k].astype(acc_dtype)
        for dy in range(1, k):
            rows += a[dy::k]
        acc = rows[:, 0::k].copy()
        for dx in range(1, k):
            acc += rows[:, dx::k]
    out = acc if acc.dtype == np.float32 else acc.astype(np.float32)
    out /= k * k
    return out


def box_mean_padded(a: np.ndarray, k: int) -> np.ndarray:
    """:func:`box_mean` of ``a`` zero-padded at its far edges to a multiple of k, as
    ``skimage.measure.block_reduce(a, (k, k, ...), np.mean)`` computes it (partial edge blocks are
    averaged with zeros), ~10× faster."""
    ph, pw = -a.shape[0] % k, -a.shape[1] % k
    if ph or pw:
        a = np.pad(a, [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2))
    return box_mean(a, k)
