"""Elementwise maths for the compiled CPU scan loops (numba): exp, softplus and SiLU.

In float64 these are libm's (the exactness tests compare float64 against the loop reference
at 1e-12). In float32 they are plain arithmetic, so LLVM vectorises the loops around them
(libm calls are not vectorised without Intel's SVML):

* ``fast_exp``: exp(x) = 2^y, y = x·log2 e clamped to [-127, 128], as 2^-m · 2^f with
  m = trunc(-y) and f ∈ (-1, 1); 2^f is a degree-9 polynomial (rel. error ~1e-7) and 2^-m is
  built in the float's exponent bits ((127 - m) << 23, a bit cast): no table, so no memory
  access whatever x is. Bits 0 and 255 give 0.0 and +inf, so exp(≤ -88) = 0 and
  exp(≥ 88.8) = inf as in libm; NaN stays NaN (an explicit select, kept under the fastmath
  flags used here, which exclude ``nnan``).
* ``fast_softplus``: x if x > 20 (PyTorch's threshold) else max(x, 0) + log1p(exp(-|x|)), the
  log1p as 2·atanh(w / (2 + w)) by its odd series (w ∈ (0, 1], 8 terms).
* ``fast_silu``: z / (1 + exp(-z)).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

__all__ = ["FASTMATH", "fast_exp", "fast_silu", "fast_softplus"]

# Vectorised sums and FMAs; NaN/inf semantics unchanged (no nnan/ninf), so NaN checks survive.
FASTMATH = {"reassoc", "contract"}


@intrinsic
def _int32_bits_as_float32(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (LLVM ``bitcast``; vectorises)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if value.type != ir.IntType(32):
            value = builder.trunc(value, ir.IntType(32)) if value.type.width > 32 else builder.sext(
                value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


def fast_exp(x):  # pragma: no cover - replaced by the overload inside compiled code
    """exp(x): libm's in float64, the vectorisable polynomial in float32 (see module doc)."""
    return math.exp(x)


def fast_softplus(x):  # pragma: no cover - replaced by the overload inside compiled code
    """log(1 + exp(x)) with PyTorch's threshold 20."""
    return x if x > 20.0 else math.log1p(math.exp(x))


def fast_silu(x):  # pragma: no cover - replaced by the overload inside compiled code
    """x · sigmoid(x)."""
    return x / (1.0 + math.exp(-x))


def _is_f64(x) -> bool:
    return isinstance(x, types.Float) and x.bitwidth == 64


@overload(fast_exp, inline="always", fastmath=FASTMATH)
def _fast_exp(x):
    if _is_f64(x):
        return lambda x: math.exp(x)

    def exp32(x):  # pragma: no cover - compiled
        y = x * np.float32(1.4426950408889634)
        # NaN fails both tests and becomes -127 here (a safe exponent); restored at the end
        y = y if y > np.float32(-127.0) else np.float32(-127.0)
        y = y if y < np.float32(128.0) else np.float32(128.0)
        m = np.int32(-y)  # in [-128, 127]
        z = (y + np.float32(m)) * np.float32(0.6931471805599453)  # f·ln 2, |f| < 1
        p = np.float32(1 / 362880)
        p = p * z + np.float32(1 / 40320)
        p = p * z + np.float32(1 / 5040)
        p = p * z + np.float32(1 / 720)
        p = p * z + np.float32(1 / 120)
        p = p * z + np.float32(1 / 24)
        p = p * z + np.float32(1 / 6)
        p = p * z + np.float32(0.5)
        p = p * z + np.float32(1.0)
        p = p * z + np.float32(1.0)
        r = p * _int32_bits_as_float32((np.int32(127) - m) << np.int32(23))
        return r if x == x else x

    return exp32


@overload(fast_softplus, inline="always", fastmath=FASTMATH)
def _fast_softplus(x):
    if _is_f64(x):
        return lambda x: x if x > 20.0 else math.log1p(math.exp(x))

    def softplus32(x):  # pragma: no cover - compiled
        w = fast_exp(-abs(x))  # (0, 1]
        s = w / (np.float32(2.0) + w)  # (0, 1/3]
        s2 = s * s
        q = np.float32(1 / 15)
        q = q * s2 + np.float32(1 / 13)
        q = q * s2 + np.float32(1 / 11)
        q = q * s2 + np.float32(1 / 9)
        q = q * s2 + np.float32(1 / 7)
        q = q * s2 + np.float32(1 / 5)
        q = q * s2 + np.float32(1 / 3)
        q = q * s2 + np.float32(1.0)
        sp = max(x, np.float32(0.0)) + np.float32(2.0) * s * q
        return x if x > np.float32(20.0) else sp

    return softplus32


@overload(fast_silu, inline="always", fastmath=FASTMATH)
def _fast_silu(x):
    if _is_f64(x):
        return lambda x: x / (1.0 + math.exp(-x))

    def silu32(x):  # pragma: no cover - compiled
        return x / (np.float32(1.0) + fast_exp(-x))

    return silu32
