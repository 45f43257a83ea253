"""Compile every Triton kernel variant for a GPU target, on a machine without a GPU.

Triton's interpreter checks what the kernels compute, not that they lower to GPU code (types,
layouts, control flow). ``python -m gigavim.kernels.compile_check [sm]`` runs the real compiler
down to a cubin for ``sm`` (default 90, H100). It must run with ``TRITON_INTERPRET`` unset: under
the interpreter ``@triton.jit`` functions cannot be compiled.
"""

from __future__ import annotations

import itertools
import sys

import triton
from gigavim.kernels import conv1d, scan_bwd, scan_fwd
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

# Pointer arguments that carry activations (compiled as bf16, the GPU dtype); the rest are fp32.
_ACTIVATIONS = {"u_ptr", "dl_ptr", "B_ptr", "C_ptr", "ub_ptr", "dlb_ptr", "Bb_ptr", "Cb_ptr", "out_ptr",
                "z_ptr", "x_ptr", "dy_ptr"}


def _variants():
    yield from ((scan_fwd._chunk_state_kernel, dict(BLOCK_D=32, BLOCK_N=16, REVERSE=r, SOFTPLUS=True,
                                                      HAS_BIAS=True)) for r in (False, True))
    for r, i in itertools.product((False, True), repeat=2):
        yield scan_fwd._state_pass_kernel, dict(BLOCK_D=32, BLOCK_N=16, REVERSE=r, HAS_INIT=i, STORE_FINAL=i)
    for bidir, multi, rev in itertools.product((False, True), repeat=3):
        if not (bidir and rev):
            yield scan_fwd._chunk_output_kernel, dict(
                BLOCK_D=32, BLOCK_N=16, REVERSE=rev, BIDIR=bidir, SOFTPLUS=True, HAS_BIAS=True,
                HAS_D=True, HAS_Z=True, MULTI=multi, HAS_INIT=True, STORE_LAST=True)
    for r in (False, True):
        yield scan_bwd._adjoint_chunk_kernel, dict(T=16, BLOCK_D=16, BLOCK_N=16, REVERSE=r, SOFTPLUS=True,
                                                   HAS_BIAS=True)
        yield scan_bwd._scan_bwd_kernel, dict(T=16, BLOCK_D=16, BLOCK_N=16, REVERSE=r, SOFTPLUS=True,
                                              HAS_BIAS=True, HAS_D=True, WRITE_Y=True)
    yield from ((conv1d._conv_kernel, dict(WIDTH=4, BLOCK_D=32, BLOCK_L=64, REVERSE=r, HAS_BIAS=True,
                                            HAS_INIT=True, SILU=True)) for r in (False, True))


def compile_all(sm: int = 90) -> list[str]:
    """Compile each variant to a cubin for ``sm``; returns one line per kernel variant."""
    target = GPUTarget("cuda", sm, 32)
    lines = []
    for fn, constexprs in _variants():
        signature = {
            name: "constexpr" if name in constexprs
            else ("*bf16" if name in _ACTIVATIONS else "*fp32") if name.endswith("_ptr") else "i32"
            for name in fn.arg_names
        }
        kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                                target=target, options={"num_warps": 4})
        if "cubin" not in kernel.asm:
            raise RuntimeError(f"{fn.__name__}: no cubin produced")
        flags = ",".join(k for k, v in constexprs.items() if v is True)
        lines.append(f"{fn.__name__}[{flags}]: sm_{sm} cubin {len(kernel.asm['cubin'])} B")
    return lines


if __name__ == "__main__":
    for line in compile_all(int(sys.argv[1]) if len(sys.argv) > 1 else 90):
        print(line)
