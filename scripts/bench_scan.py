"""Benchmark the bidirectional selective scan at Vim-Ti shapes; writes section ``scan``.

    python scripts/bench_scan.py            # GPU if there is one, else a small CPU run
    python scripts/bench_scan.py --quick    # smaller sizes (a smoke test of the script)

Paths timed, each computing Vim's ((scan_f + D u) + (scan_b + D_b u_b))/2 · silu(z) at
dim 384, d_state 16 (Δ bias + softplus, D, z):

* ``loop reference``: :func:`selective_scan_ref` twice (one Python step per token; small L only);
* ``chunked torch``: the PyTorch path of :func:`gigavim.kernels.bidirectional_scan` (CPU default;
  on CPU tensors its core runs as compiled numba loops, kernels/cpu_scan.py);
* ``chunked, eager blocks``: the same path with its eager PyTorch blocks (no numba; CPU only here);
* ``official-style unfused``: as hustvl/Vim runs it — a forward scan, a scan of flipped copies,
  the output flipped back, then the combine (with the device's single-direction scan);
* ``fused triton``: :func:`bidirectional_scan_triton` — both directions + gate in one output
  launch (GPU only: Triton's CPU interpreter is a correctness tool);
* ``sdpa``: ``F.scaled_dot_product_attention`` at the same token count and width (6 heads × 64).

On a GPU each forward row also gives the fraction of the hardware floor for one bidirectional
scan layer (performance.md §5): max(12,288 exps / 3.86e12 per s, bytes / 3.0e12 B/s) per token,
bytes = 3,136 elements × element size (6,272 B in bf16). A long-sequence check compares the
Triton scan at batch·dim·L > 2^31 with a carried-state re-run of its tail through the chunked
PyTorch path.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from gigavim.kernels import _bidirectional_torch, selective_scan_chunked, selective_scan_ref

from gigavim.bench import machine_line, markdown_table, update_section

DIM, D_STATE = 384, 16
MUFU_PER_S, HBM_B_PER_S = 3.86e12, 3.0e12
EXPS_PER_TOKEN = 2 * DIM * D_STATE
ELEMS_PER_TOKEN = 2 * (4 * DIM + 2 * D_STATE)  # u, Δ, z, y + B, C per direction (§5.4)
PLOT = Path(__file__).resolve().parents[1] / "docs" / "bench_scan.png"


def make_inputs(batch: int, length: int, device: str, dtype: torch.dtype, grad: bool = False):
    """Both directions' scan inputs, Vim-Ti-like ranges."""
    g = torch.Generator(device=device).manual_seed(0)

    def r(*shape, scale=1.0):
        t = (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * scale).to(dtype)
        return t.requires_grad_(grad)

    def a():
        return (-torch.rand(DIM, D_STATE, generator=g, device=device) * 8 - 0.5).requires_grad_(grad)

    one = lambda: [r(batch, DIM, length), r(batch, DIM, length, scale=0.5), a(),  # noqa: E731
                   r(batch, D_STATE, length), r(batch, D_STATE, length), r(DIM)]
    f, b = one(), one()
    return {"f": f, "b": b, "z": r(batch, DIM, length), "bias": r(DIM, scale=0.3),
            "bias_b": r(DIM, scale=0.3)}


def loop_reference(x):
    f, b = x["f"], x["b"]
    y_f = selective_scan_ref(*f, None, x["bias"], True)
    y_b = selective_scan_ref(*b, None, x["bias_b"], True, reverse=True)
    return (y_f + y_b) * 0.5 * F.silu(x["z"])


def chunked_torch(x):
    return _bidirectional_torch(*x["f"], *x["b"], x["z"], x["bias"], x["bias_b"], None, None, True)[0]


def eager_blocks(x):
    """The chunked path with its eager PyTorch blocks (the fallback without numba; GPU's torch path)."""
    from gigavim.kernels import chunked

    chunked._FORCE_EAGER = True
    try:
        return chunked_torch(x)
    finally:
        chunked._FORCE_EAGER = False


def unfused(scan: Callable) -> Callable:
    """hustvl/Vim's bimamba-v2 path: scan, scan of flipped copies, flip back, combine."""

    def run(x):
        f, b = x["f"], x["b"]
        y_f = scan(*f, None, x["bias"], True)
        flipped = [b[0].flip(-1), b[1].flip(-1), b[2], b[3].flip(-1), b[4].flip(-1), b[5]]
        y_b = scan(*flipped, None, x["bias_b"], True).flip(-1)
        return (y_f + y_b) * 0.5 * F.silu(x["z"])

    return run


def fused_triton(x):
    from gigavim.kernels.scan_fwd import bidirectional_scan_triton

    return bidirectional_scan_triton(*x["f"], *x["b"], z=x["z"], delta_bias=x["bias"],
                                     delta_bias_b=x["bias_b"], delta_softplus=True)


def sdpa_inputs(batch: int, length: int, device: str, dtype: torch.dtype):
    q = torch.randn(batch, 6, length, DIM // 6, device=device, dtype=dtype)
    return {"q": q, "k": torch.randn_like(q), "v": torch.randn_like(q)}


def sdpa(x):
    return F.scaled_dot_product_attention(x["q"], x["k"], x["v"])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device: str, min_total_s: float = 1.0, max_reps: int = 10) -> float:
    """Seconds per call: one warm-up (compiles kernels), then the best of repeats until ``min_total_s``
    has passed (at least one, at most ``max_reps``): the best is the least disturbed by other jobs."""
    fn()
    _sync(device)
    best, total, reps = math.inf, 0.0, 0
    while reps < max_reps and (reps == 0 or total < min_total_s):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        dt = time.perf_counter() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best


def floor_s_per_token(dtype: torch.dtype) -> float:
    """Hardware floor of one bidirectional scan layer on H100 (performance.md §5.4–5.5)."""
    elem = torch.finfo(dtype).bits // 8
    return max(EXPS_PER_TOKEN / MUFU_PER_S, ELEMS_PER_TOKEN * elem / HBM_B_PER_S)


class Runner:
    """Runs (path, batch, L, mode) cases, skipping those a smaller run says exceed the budget."""

    def __init__(self, device: str, dtype: torch.dtype, budget_s: float):
        self.device, self.dtype, self.budget_s = device, dtype, budget_s
        self.rows: list[list[object]] = []
        self.last: dict[tuple[str, int, str], tuple[int, float]] = {}
        self.ref_tps: dict[tuple[int, int, str], float] = {}

    def case(self, name: str, fn: Callable, batch: int, length: int, mode: str, max_len: int | None = None,
             sdpa_case: bool = False) -> None:
        key = (name, batch, mode)
        if max_len is not None and length > max_len:
            return
        if key in self.last:
            prev_len, prev_s = self.last[key]
            scale = (length / prev_len) ** (2 if sdpa_case else 1)
            est = prev_s * scale * (3 if mode == "fwd" else 2)
            if est > self.budget_s:
                self._row(name, batch, length, mode, None, f"skipped (est. {prev_s * scale:.3g} s per call)")
                return
        try:
            x = (sdpa_inputs if sdpa_case else make_inputs)(batch, length, self.device, self.dtype,
                                                           *([] if sdpa_case else [mode != "fwd"]))
            if mode == "fwd":
                with torch.no_grad():
                    sec = time_call(lambda: fn(x), self.device)
            else:
                leaves = [t for t in _leaves(x) if t.requires_grad]

                def step():
                    out = fn(x)
                    torch.autograd.grad(out.float().square().mean(), leaves)

                sec = time_call(step, self.device, max_reps=3)
        except torch.cuda.OutOfMemoryError:
            self._row(name, batch, length, mode, None, "OOM")
            _free(self.device)
            return
        except Exception as err:  # one failing case must not lose the rest of the table
            self._row(name, batch, length, mode, None, f"error: {type(err).__name__}: {str(err)[:80]}")
            _free(self.device)
            return
        self.last[key] = (length, sec)
        self._row(name, batch, length, mode, sec, "")
        _free(self.device)

    def _row(self, name, batch, length, mode, sec, note):
        tokens = batch * length
        tps = tokens / sec if sec else None
        if name == "loop reference" and tps:
            self.ref_tps[(batch, length, mode)] = tps
        ref = self.ref_tps.get((batch, length, mode))
        speedup = f"{tps / ref:.3g}×" if tps and ref and name != "loop reference" else ""
        floor = ""
        if tps and self.device == "cuda" and name != "sdpa" and mode == "fwd":
            floor = f"{100 * floor_s_per_token(self.dtype) * tokens / sec:.3g}%"
        row = [name, batch, _fmt_len(length), mode, f"{sec * 1e3:.4g}" if sec else "",
               f"{tps:.3g}" if tps else "", speedup, floor, note]
        self.rows.append(row)
        print(" | ".join(str(v) for v in row), flush=True)


def _leaves(x) -> list[torch.Tensor]:
    out = []
    for v in x.values():
        out.extend(v if isinstance(v, list) else [v])
    return out


def _free(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()


def _parse_len(s: str) -> int:
    return int(s[:-1]) << (20 if s.endswith("M") else 10) if s[-1] in "KM" else int(s)


def _fmt_len(n: int) -> str:
    return f"{n >> 20}M" if n % (1 << 20) == 0 else f"{n >> 10}K" if n % 1024 == 0 else str(n)


def long_sequence_check(device: str, dtype: torch.dtype, length: int, batch: int, tail: int) -> str:
    """batch·dim·L > 2^31: the Triton scan's last ``tail`` tokens against the chunked torch path
    started from the state the Triton scan reaches before them (carried-state equivalence)."""
    from gigavim.kernels.scan_fwd import selective_scan_triton

    try:
        x = make_inputs(batch, length, device, dtype)
        u, dl, A, B, C, D = x["f"]
        args = (D, x["z"], x["bias"], True)
        y, h = selective_scan_triton(u, dl, A, B, C, *args, None, True)
        cut = length - tail
        _, h_cut = selective_scan_triton(u[..., :cut], dl[..., :cut], A, B[..., :cut], C[..., :cut], *args,
                                         None, True)
        y_t, h_t = selective_scan_chunked(u[..., cut:], dl[..., cut:], A, B[..., cut:], C[..., cut:], D,
                                          x["z"][..., cut:], x["bias"], True, h_cut, True)
        err_y = ((y[..., cut:].float() - y_t.float()).abs().max() / y_t.float().abs().max()).item()
        err_h = ((h - h_t).abs().max() / h_t.abs().max()).item()
        ok = err_y < 3e-2 and err_h < 1e-3
        return (f"Long-sequence check (batch {batch} × dim {DIM} × L {_fmt_len(length)} = "
                f"{batch * DIM * length / 2**31:.2f} × 2^31 elements, {dtype}): last {_fmt_len(tail)} tokens "
                f"of the Triton scan vs the chunked PyTorch path from the carried state: max rel. error "
                f"y {err_y:.2e}, final state {err_h:.2e} → {'PASS' if ok else 'FAIL'}")
    except torch.cuda.OutOfMemoryError:
        return f"Long-sequence check at batch {batch}, L {_fmt_len(length)}: OOM"
    finally:
        _free(device)


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    want = want.float()
    return ((got.float() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def kernel_checks(device: str, fwd_len: int, bwd_len: int) -> list[str]:
    """On the GPU itself: the fused Triton forward and the Triton backward against the chunked
    PyTorch path (same fp32 maths, different code), bidirectional, Vim-Ti shapes."""
    from gigavim.kernels import bidirectional_scan

    lines = []
    try:
        x = make_inputs(1, fwd_len, device, torch.bfloat16)
        err = _rel(fused_triton(x), chunked_torch(x))
        lines.append(f"Fused Triton bidirectional forward vs chunked PyTorch, bf16, L {_fmt_len(fwd_len)}: "
                     f"max rel. error {err:.2e} → {'PASS' if err < 3e-2 else 'FAIL'}")
        x = make_inputs(1, bwd_len, device, torch.float32, grad=True)
        leaves = [t for t in _leaves(x) if t.requires_grad]
        grads = {}
        for backend in ("triton", "torch"):
            os.environ["GIGAVIM_SCAN_BACKEND"] = backend
            y = bidirectional_scan(*x["f"], *x["b"], z=x["z"], delta_bias=x["bias"], delta_bias_b=x["bias_b"])
            w = torch.linspace(-1, 1, y.numel(), device=device).reshape(y.shape)
            grads[backend] = torch.autograd.grad((y * w).sum(), leaves)
        os.environ.pop("GIGAVIM_SCAN_BACKEND")
        err = max(_rel(a, b) for a, b in zip(grads["triton"], grads["torch"], strict=True))
        lines.append(f"Triton backward vs chunked PyTorch backward, fp32, L {_fmt_len(bwd_len)}, all "
                     f"{len(leaves)} inputs: max rel. error {err:.2e} → {'PASS' if err < 1e-3 else 'FAIL'}")
    except Exception as err:  # report, keep the rest of the run
        lines.append(f"Kernel check failed: {type(err).__name__}: {str(err)[:200]}")
    finally:
        _free(device)
    return lines


def plot(rows: list[list[object]], device_name: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for name, batch, length, mode, _ms, tps, *_ in rows:
        if mode == "fwd" and tps:
            n = _parse_len(length)
            series.setdefault((name, batch), []).append((n, float(tps)))
    for (name, batch), pts in sorted(series.items()):
        xs, ys = zip(*sorted(pts), strict=True)
        ax.plot(xs, ys, marker="o", label=f"{name}, batch {batch}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens per sequence (L)")
    ax.set_ylabel("tokens / s (forward, one bidirectional layer)")
    ax.set_title(f"Bidirectional selective scan, dim {DIM}, d_state {D_STATE} — {device_name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return PLOT


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes only")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: stable on shared hosts)")
    p.add_argument("--budget", type=float, default=None, help="skip a case estimated above this many seconds")
    p.add_argument("--no-doc", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    args = p.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    if device == "cuda":
        dtype = torch.bfloat16
        lengths = [4096, 65536] if args.quick else [4096, 65536, 1 << 20, 1 << 22]
        budget = args.budget or 20.0
        from gigavim.kernels.scan_fwd import selective_scan_triton

        paths = [("loop reference", loop_reference, 4096), ("chunked torch", chunked_torch, 65536),
                 ("official-style unfused", unfused(selective_scan_triton), None),
                 ("fused triton", fused_triton, None)]
        bwd_paths = [("chunked torch", chunked_torch, 16384, 8), ("fused triton", _triton_autograd, None, 8)]
    else:
        dtype = torch.float32
        lengths = [1024, 4096] if args.quick else [1024, 4096, 16384]
        budget = args.budget or 12.0
        paths = [("loop reference", loop_reference, None), ("chunked torch", chunked_torch, None),
                 ("chunked, eager blocks", eager_blocks, None),
                 ("official-style unfused", unfused(selective_scan_chunked), None)]
        # the loop reference's backward takes minutes at batch 8: batch 1, 1K tokens only
        bwd_paths = [("loop reference", loop_reference, 1024, 1), ("chunked torch", chunked_torch, None, 8)]
    runner = Runner(device, dtype, budget)
    print("path | batch | L | mode | ms | tokens/s | vs loop | % of floor | note")
    for batch in (1, 8):
        for length in lengths:
            for name, fn, max_len in paths:
                runner.case(name, fn, batch, length, "fwd", max_len)
            runner.case("sdpa", sdpa, batch, length, "fwd", None if device == "cuda" else 4096,
                        sdpa_case=True)
            for name, fn, max_len, max_batch in bwd_paths:
                if batch <= max_batch:
                    runner.case(name, fn, batch, length, "fwd+bwd", max_len)

    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    check = ""
    if device == "cuda":
        checks = kernel_checks(device, 1 << 16, 1 << 13)
        checks.append(long_sequence_check(device, dtype, (1 << 22) if not args.quick else (1 << 20),
                                          2 if not args.quick else 6, 1 << 16))
        check = "\n\n".join(checks)
        print(check)
    table = markdown_table(["path", "batch", "L", "mode", "ms", "tokens/s", "vs loop", "% of floor", "note"],
                           runner.rows)
    png = plot(runner.rows, device_name)
    cmd = "python scripts/bench_scan.py" + (" --quick" if args.quick else "")
    notes = [
        f"## Bidirectional selective scan (`scan`) — {device_name}",
        "",
        f"`{cmd}` — one Vim-Ti bidirectional scan layer (dim {DIM}, d_state {D_STATE}, Δ bias + softplus, "
        f"D, z gate), {str(dtype).removeprefix('torch.')} inputs, best of up to 10 calls (≥ 1 s) "
        f"after a warm-up; tokens/s = batch × L / time. `fwd+bwd` = forward + gradients of every input. "
        f"{'torch threads: ' + str(args.threads) + '; ' if device == 'cpu' else ''}"
        f"load average at the end: {os.getloadavg()[0]:.1f} (other jobs share the host).",
        "",
        machine_line(),
        "",
        table,
        "",
    ]
    if device == "cuda":
        floor_ns = floor_s_per_token(dtype) * 1e9
        notes += [f"% of floor: the H100 floor of one bidirectional layer, {floor_ns:.2f} ns per token"
                  " (max of MUFU exp2 and HBM bytes, performance.md §5), × tokens / measured time.",
                  "", check, ""]
    else:
        notes += ["No GPU here: the fused Triton path is checked for correctness under Triton's interpreter "
                  "(tests/kernels) and timed only on a GPU; `vs loop` = tokens/s relative to the loop "
                  "reference at the same batch, L and mode.", ""]
    if device == "cuda":
        notes.append("`fused triton` fwd+bwd: the fused forward, then the Triton backward of each direction "
                     "(kernels/scan_bwd.py: states recomputed per 16-token tile, adjoint by a reverse scan).")
    else:
        notes.append("On CPU `chunked torch` runs its core as compiled numba loops (kernels/cpu_scan.py); "
                     "`chunked, eager blocks` is the same algorithm in eager PyTorch (the fallback without "
                     "numba). Cases a smaller run predicts over the time budget are skipped; the loop "
                     "reference's fwd+bwd runs only at 1K.")
    if png:
        notes += ["", f"![scan throughput]({png.name})"]
    if not args.no_doc:
        print("wrote", update_section("scan", "\n".join(notes)))


def _triton_autograd(x):
    from gigavim.kernels import bidirectional_scan

    os.environ["GIGAVIM_SCAN_BACKEND"] = "triton"
    return bidirectional_scan(*x["f"], *x["b"], z=x["z"], delta_bias=x["bias"], delta_bias_b=x["bias_b"])


if __name__ == "__main__":
    sys.exit(main())
