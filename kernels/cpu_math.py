"""Elementwise maths for the compiled CPU scan loops (numba): exp, softplus and SiLU.

In float64 these are libm's (the exactness tests compare float64 against the loop reference
at 1e-12). In float32 they are plain arithmetic, so LLVM vectorises the loops around them
(libm calls are not vectorised without Intel's SVML):

* ``fast_exp2`` / ``fast_exp``: 2^y (exp(x) = 2^(x·log2 e)), y clamped to [-127, 128], as
  2^-m · 2^f with m = rint(-y) and |f| ≤ 1/2; 2^f is a degree-7 polynomial (rel. error ~1e-7)
  and 2^-m is built in the float's exponent bits ((127 - m) << 23, a bit cast): no table, so no
  memory access whatever y is. Bits 0 and 255 give 0.0 and +inf, so exp(≤ -88) = 0 and
  exp(≥ 88.8) = inf as in libm; a NaN passes the clamp (written so the comparison fails) and
  stays NaN through the polynomial (the fastmath flags here exclude ``nnan``).
* ``fast_softplus``: x if x > 20 (PyTorch's threshold) else max(x, 0) + log1p(exp(-|x|)), the
  log1p as 2·atanh(w / (2 + w)) by its odd series (w ∈ (0, 1], 8 terms).
* ``fast_silu``: z / (1 + exp(-z)).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from llvmlite import ir
from numba import types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import intrinsic, overload

__all__ = ["FASTMATH", "LOG2E", "fast_exp", "fast_exp2", "fast_silu", "fast_softplus"]

LOG2E = 1.4426950408889634

# numba's pedantic SSA check flags the inlined exp2 overload's phi nodes on the first (uncached)
# compile. The compiled code is right (tested against the float64 reference); users should not
# see compiler internals on stderr before their result.
warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)

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


def fast_exp2(y):  # pragma: no cover - replaced by the overload inside compiled code
    """2^y: see module doc (the scan pre-scales A by log2 e and calls this, one multiply less)."""
    return math.exp(y * math.log(2.0))


def fast_softplus(x):  # pragma: no cover - replaced by the overload inside compiled code
    """log(1 + exp(x)) with PyTorch's threshold 20."""
    return x if x > 20.0 else math.log1p(math.exp(x))


def fast_silu(x):  # pragma: no cover - replaced by the overload inside compiled code
    """x · sigmoid(x)."""
    return x / (1.0 + math.exp(-x))


def _is_f64(x) -> bool:
    return isinstance(x, types.Float) and x.bitwidth == 64


@overload(fast_exp2, inline="always", fastmath=FASTMATH)
def _fast_exp2(y):
    if _is_f64(y):
        return lambda y: math.exp(y * 0.6931471805599453)

    def exp2_32(y):  # pragma: no cover - compiled
        # clamp written so a NaN fails the test and passes through (maxps/minps operand order)
        lo = np.float32(-127.0) if y < np.float32(-127.0) else y
        yc = np.float32(128.0) if lo > np.float32(128.0) else lo
        m = np.int32(np.rint(-yc))  # in [-128, 127]
        z = (yc + np.float32(m)) * np.float32(0.6931471805599453)  # f·ln 2, |f| ≤ 1/2
        p = np.float32(1 / 5040)
        p = p * z + np.float32(1 / 720)
        p = p * z + np.float32(1 / 120)
        p = p * z + np.float32(1 / 24)
        p = p * z + np.float32(1 / 6)
        p = p * z + np.float32(0.5)
        p = p * z + np.float32(1.0)
        p = p * z + np.float32(1.0)
        return p * _int32_bits_as_float32((np.int32(127) - m) << np.int32(23))

    return exp2_32


@overload(fast_exp, inline="always", fastmath=FASTMATH)
def _fast_exp(x):
    if _is_f64(x):
        return lambda x: math.exp(x)
    return lambda x: fast_exp2(x * np.float32(LOG2E))  # pragma: no cover - compiled


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
