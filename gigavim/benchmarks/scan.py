"""Benchmark the bidirectional selective scan at Vim-Ti shapes (section ``scan-cpu`` / ``scan-cuda``).

Paths timed, each computing Vim's ((scan_f + D u) + (scan_b + D_b u_b))/2 · silu(z) at
dim 384, d_state 16 (Δ bias + softplus, D, z):

* ``loop reference``: :func:`selective_scan_ref` twice (one Python step per token; small L only);
* ``chunked torch``: the PyTorch path of :func:`gigavim.kernels.bidirectional_scan` (CPU default;
  on CPU tensors its core runs as compiled numba loops, kernels/cpu_scan.py);
* ``chunked, eager blocks``: the same path with its eager PyTorch blocks (no numba; CPU only here);
* ``official-style unfused``: as hustvl/Vim runs it — a forward scan, a scan of flipped copies,
  the output flipped back, then the combine (with the device's single-direction scan);
* ``fused triton``: :func:`bidirectional_scan_triton` — both directions + gate in one output
  launch (GPU only: Triton's CPU interpreter is a correctness tool, so on CPU the rows say
  "skipped (no GPU)" instead of a number);
* ``sdpa``: ``F.scaled_dot_product_attention`` at the same token count and width (6 heads × 64).

On a GPU the Triton kernels are first checked against the loop reference and the chunked
PyTorch path at small sizes, then timed; each forward row also gives the fraction of the
hardware floor for one bidirectional scan layer (performance.md §5): max(12,288 exps / 3.86e12
per s, bytes / 3.0e12 B/s) per token, bytes = 3,136 elements × element size (6,272 B in bf16).
A long-sequence check compares the Triton scan at batch·dim·L > 2^31 with a carried-state re-run
of its tail through the chunked PyTorch path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gigavim.benchmarks.report import (
    BenchReport,
    Check,
    Column,
    Progress,
    bench_device,
    child_main,
    cpu_threads,
    device_kind,
    load_average,
    peak_rss_mib,
    run_child,
    show_row,
)
from gigavim.kernels import _bidirectional_torch, selective_scan_chunked, selective_scan_ref

DIM, D_STATE = 384, 16
MUFU_PER_S, HBM_B_PER_S = 3.86e12, 3.0e12
EXPS_PER_TOKEN = 2 * DIM * D_STATE
ELEMS_PER_TOKEN = 2 * (4 * DIM + 2 * D_STATE)  # u, Δ, z, y + B, C per direction (§5.4)
NO_GPU = "skipped (no GPU)"

Inputs = dict[str, Any]


def fmt_len(n: int) -> str:
    """4096 → 4K, 1048576 → 1M (how the tables name sequence lengths)."""
    return f"{n >> 20}M" if n % (1 << 20) == 0 else f"{n >> 10}K" if n % 1024 == 0 else str(n)


COLUMNS = [
    Column("backend", "backend"),
    Column("batch", "batch"),
    Column("length", "L", fmt_len),
    Column("tokens", "tokens"),
    Column("mode", "mode"),
    Column("ms", "ms", ".4g"),
    Column("tokens_per_s", "tokens/s", ".3g"),
    Column("vs_loop", "vs loop", lambda v: f"{v:.3g}×"),
    Column("floor_pct", "% of floor", lambda v: f"{v:.3g}%"),
    Column("peak_mib", "peak RSS MiB", ".0f"),
    Column("over_inputs", "peak − inputs, in (dim, L) tensors", ".2f"),
    Column("note", "note"),
]
MEMORY_MODE = "fwd, own process"
MEMORY_PATHS = {"fused numba": "chunked_torch", "unfused numba": "unfused_numba"}


def make_inputs(batch: int, length: int, device: str, dtype: torch.dtype, grad: bool = False) -> Inputs:
    """Both directions' scan inputs, Vim-Ti-like ranges."""
    g = torch.Generator(device=device).manual_seed(0)

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        t = (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * scale).to(dtype)
        return t.requires_grad_(grad)

    def a() -> torch.Tensor:
        return (-torch.rand(DIM, D_STATE, generator=g, device=device) * 8 - 0.5).requires_grad_(grad)

    def one() -> list[torch.Tensor]:
        return [
            r(batch, DIM, length),
            r(batch, DIM, length, scale=0.5),
            a(),
            r(batch, D_STATE, length),
            r(batch, D_STATE, length),
            r(DIM),
        ]

    f, b = one(), one()
    return {
        "f": f,
        "b": b,
        "z": r(batch, DIM, length),
        "bias": r(DIM, scale=0.3),
        "bias_b": r(DIM, scale=0.3),
    }


def loop_reference(x: Inputs) -> torch.Tensor:
    y_f = selective_scan_ref(*x["f"], None, x["bias"], True)
    y_b = selective_scan_ref(*x["b"], None, x["bias_b"], True, reverse=True)
    return (y_f + y_b) * 0.5 * F.silu(x["z"])


def chunked_torch(x: Inputs) -> torch.Tensor:
    return _bidirectional_torch(*x["f"], *x["b"], x["z"], x["bias"], x["bias_b"], None, None, True)[0]


def unfused_numba(x: Inputs) -> torch.Tensor:
    """Inference through the autograd path's numba core with softplus, skip, gate and combine as
    separate PyTorch ops (what CPU inference ran before the fused kernel)."""
    from gigavim.kernels import chunked

    chunked._FORCE_UNFUSED = True
    try:
        return chunked_torch(x)
    finally:
        chunked._FORCE_UNFUSED = False


def fused_core(x: Inputs) -> torch.Tensor:
    """The fused kernel's core alone: one direction, no softplus, skip or gate (vs the exp floor)."""
    u, dl, A, B, C, _ = x["f"]
    return selective_scan_chunked(u, dl, A, B, C)


def eager_blocks(x: Inputs) -> torch.Tensor:
    """The chunked path with its eager PyTorch blocks (the fallback without numba; GPU's torch path)."""
    from gigavim.kernels import chunked

    chunked._FORCE_EAGER = True
    try:
        return chunked_torch(x)
    finally:
        chunked._FORCE_EAGER = False


def unfused(scan: Callable[..., torch.Tensor]) -> Callable[[Inputs], torch.Tensor]:
    """hustvl/Vim's bimamba-v2 path: scan, scan of flipped copies, flip back, combine."""

    def run(x: Inputs) -> torch.Tensor:
        f, b = x["f"], x["b"]
        y_f = scan(*f, None, x["bias"], True)
        flipped = [b[0].flip(-1), b[1].flip(-1), b[2], b[3].flip(-1), b[4].flip(-1), b[5]]
        y_b = scan(*flipped, None, x["bias_b"], True).flip(-1)
        return (y_f + y_b) * 0.5 * F.silu(x["z"])

    return run


def fused_triton(x: Inputs) -> torch.Tensor:
    from gigavim.kernels.scan_fwd import bidirectional_scan_triton

    return bidirectional_scan_triton(
        *x["f"], *x["b"], z=x["z"], delta_bias=x["bias"], delta_bias_b=x["bias_b"], delta_softplus=True
    )


@contextmanager
def scan_backend(name: str) -> Iterator[None]:
    """Force the dispatch point's backend for a block, restoring the user's setting after."""
    before = os.environ.get("GIGAVIM_SCAN_BACKEND")
    os.environ["GIGAVIM_SCAN_BACKEND"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GIGAVIM_SCAN_BACKEND", None)
        else:
            os.environ["GIGAVIM_SCAN_BACKEND"] = before


def dispatched(x: Inputs) -> torch.Tensor:
    """The public dispatch point (autograd: the forward, then the backward of the chosen backend)."""
    from gigavim.kernels import bidirectional_scan

    return bidirectional_scan(*x["f"], *x["b"], z=x["z"], delta_bias=x["bias"], delta_bias_b=x["bias_b"])


def triton_autograd(x: Inputs) -> torch.Tensor:
    with scan_backend("triton"):
        return dispatched(x)


def sdpa_inputs(batch: int, length: int, device: str, dtype: torch.dtype) -> Inputs:
    q = torch.randn(batch, 6, length, DIM // 6, device=device, dtype=dtype)
    return {"q": q, "k": torch.randn_like(q), "v": torch.randn_like(q)}


def sdpa(x: Inputs) -> torch.Tensor:
    return F.scaled_dot_product_attention(x["q"], x["k"], x["v"])


def floor_s_per_token(dtype: torch.dtype) -> float:
    """The H100 floor of one bidirectional layer per token: MUFU exp2 or HBM bytes, whichever binds."""
    elem = torch.finfo(dtype).bits // 8
    return max(EXPS_PER_TOKEN / MUFU_PER_S, ELEMS_PER_TOKEN * elem / HBM_B_PER_S)


@dataclass(frozen=True)
class ScanPath:
    """One timed path: its name, function, longest L it may run at (None: any) and largest batch."""

    name: str
    fn: Callable[[Inputs], torch.Tensor] | None  # None: not runnable on this device (a skip row)
    max_len: int | None = None
    max_batch: int = 8
    exps_per_token: int = EXPS_PER_TOKEN  # for the CPU's % of floor (the core: one direction)


@dataclass(frozen=True)
class Plan:
    """What one run times: sizes, paths and how long each case may take."""

    dtype: torch.dtype
    lengths: list[int]
    batches: tuple[int, ...]
    budget_s: float
    min_total_s: float
    max_reps: int
    fwd: list[ScanPath]
    bwd: list[ScanPath]
    sdpa_max_len: int | None
    memory_lengths: tuple[int, ...] = ()  # CPU: L of the peak-memory rows (each in its own process)


def plan_for(device: str, quick: bool, budget_s: float | None) -> Plan:
    """GPU: L 4K…4M at batch 1 and 8 (quick: 4K, 64K); CPU: 1K…16K (quick: 256, 1K at batch 1)."""
    if device.startswith("cuda"):
        from gigavim.kernels.scan_fwd import selective_scan_triton

        return Plan(
            torch.bfloat16,
            [4096, 65536] if quick else [4096, 65536, 1 << 20, 1 << 22],
            (1, 8),
            budget_s or 20.0,
            0.2 if quick else 1.0,
            10,
            [
                ScanPath("loop reference", loop_reference, 4096),
                ScanPath("chunked torch", chunked_torch, 65536),
                ScanPath("official-style unfused", unfused(selective_scan_triton)),
                ScanPath("fused triton", fused_triton),
            ],
            [ScanPath("chunked torch", chunked_torch, 16384), ScanPath("fused triton", triton_autograd)],
            None,
        )
    return Plan(
        torch.float32,
        [256, 1024] if quick else [1024, 4096, 16384],
        (1,) if quick else (1, 8),
        budget_s or 12.0,
        0.05 if quick else 1.0,
        3 if quick else 10,
        [
            ScanPath("loop reference", loop_reference),
            ScanPath("fused numba", chunked_torch),
            ScanPath("fused numba core, one direction", fused_core, exps_per_token=EXPS_PER_TOKEN // 2),
            ScanPath("unfused numba", unfused_numba),
            ScanPath("chunked, eager blocks", eager_blocks, 4096),
            ScanPath("official-style unfused", unfused(selective_scan_chunked)),
            ScanPath("fused triton", None),
        ],
        # the loop reference's backward takes minutes at batch 8: batch 1, 1K tokens only (not in quick)
        [
            ScanPath("loop reference", loop_reference, 0 if quick else 1024, 1),
            ScanPath("chunked torch", chunked_torch),
            ScanPath("fused triton", None),
        ],
        4096,
        (4096,) if quick else (1 << 16, 1 << 18),
    )


_EXP_LOOP: Callable[..., Any] | None = None


def _exp_loop() -> Callable[..., Any]:
    """A numba loop doing nothing but the scan kernel's float32 exp (compiled on first use)."""
    global _EXP_LOOP
    if _EXP_LOOP is None:
        import numba
        import numpy as np

        from gigavim.kernels.cpu_math import FASTMATH, fast_exp2

        @numba.njit(parallel=True, fastmath=FASTMATH)
        def loop(y, reps, out):  # pragma: no cover - compiled
            for j in numba.prange(out.shape[0]):
                acc = np.zeros(y.shape[0], dtype=y.dtype)
                for _ in range(reps):
                    for i in range(y.shape[0]):
                        acc[i] += fast_exp2(y[i])
                out[j] = acc.sum()

        _EXP_LOOP = loop
    return _EXP_LOOP


def exp_floor(threads: int, reps: int = 40) -> float:
    """The exp-bound floor of this CPU: float32 exps per second on ``threads`` threads, with the exact
    exp the scan kernel uses, over an L1-resident array (best of 5 short runs; CPU time on one
    thread, as the scan cases are timed)."""
    import time

    import numpy as np

    loop = _exp_loop()
    y = -(np.arange(4096, dtype=np.float32) % 97) / np.float32(13.0)
    out = np.zeros(threads, dtype=np.float32)
    loop(y, 1, out)
    clock = time.process_time if threads == 1 else time.perf_counter
    best = math.inf
    for _ in range(5):
        t0 = clock()
        loop(y, reps, out)
        best = min(best, clock() - t0)
    return threads * y.shape[0] * reps / best


def _sync(device: str) -> None:
    """Wait for ``device`` itself (``cuda:1``), not the current device, before reading the clock."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _free(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def time_call(fn: Callable[[], object], device: str, min_total_s: float = 1.0, max_reps: int = 10,
              cpu_time: bool = False) -> float:
    """Seconds per call: one warm-up (compiles kernels), then the best of repeats until ``min_total_s``
    has passed (at least one, at most ``max_reps``): the best is the least disturbed by other jobs.
    ``cpu_time``: the process's CPU seconds instead of wall time (one thread on a shared host:
    other jobs' time slices are not counted)."""
    import time

    clock = time.process_time if cpu_time else time.perf_counter
    fn()
    _sync(device)
    best, total, reps = math.inf, 0.0, 0
    while reps < max_reps and (reps == 0 or total < min_total_s):
        t0 = clock()
        fn()
        _sync(device)
        dt = clock() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best


def _leaves(x: Inputs) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for v in x.values():
        out.extend(v if isinstance(v, list) else [v])
    return out


class Runner:
    """Runs (path, batch, L, mode) cases, skipping those a smaller run says exceed the budget."""

    def __init__(self, device: str, plan: Plan, progress: Progress | None = None, threads: int = 1):
        self.device, self.plan, self.progress, self.threads = device, plan, progress, threads
        self.cpu_time = not device.startswith("cuda") and threads == 1
        self.floor_exps: float | None = None  # the CPU's exp/s on all its threads, measured beside each case
        self.rows: list[dict[str, Any]] = []
        self.last: dict[tuple[str, int, str], tuple[int, float]] = {}
        self.ref_tps: dict[tuple[int, int, str], float] = {}

    def case(self, path: ScanPath, batch: int, length: int, mode: str, sdpa_case: bool = False) -> None:
        if (path.max_len is not None and length > path.max_len) or batch > path.max_batch:
            return
        if path.fn is None:
            self._row(path.name, batch, length, mode, None, NO_GPU)
            return
        key = (path.name, batch, mode)
        if key in self.last:
            prev_len, prev_s = self.last[key]
            scale = (length / prev_len) ** (2 if sdpa_case else 1)
            if prev_s * scale * (3 if mode == "fwd" else 2) > self.plan.budget_s:
                self._row(
                    path.name, batch, length, mode, None, f"skipped (est. {prev_s * scale:.3g} s per call)"
                )
                return
        if not self.device.startswith("cuda"):
            self.floor_exps = exp_floor(self.threads)  # side by side with the case it prices
        try:
            sec = self._time(path.fn, batch, length, mode, sdpa_case)
        except torch.cuda.OutOfMemoryError:
            self._row(path.name, batch, length, mode, None, "OOM")
            return
        except Exception as err:  # one failing case must not lose the rest of the table
            self._row(path.name, batch, length, mode, None, f"error: {type(err).__name__}: {str(err)[:80]}")
            return
        finally:
            _free(self.device)
        self.last[key] = (length, sec)
        self._row(path.name, batch, length, mode, sec, "", path.exps_per_token)

    def _time(
        self, fn: Callable[[Inputs], torch.Tensor], batch: int, length: int, mode: str, sdpa_case: bool
    ) -> float:
        p = self.plan
        if sdpa_case:
            x = sdpa_inputs(batch, length, self.device, p.dtype)
        else:
            x = make_inputs(batch, length, self.device, p.dtype, mode != "fwd")
        if mode == "fwd":
            with torch.no_grad():
                return time_call(lambda: fn(x), self.device, p.min_total_s, p.max_reps, self.cpu_time)
        leaves = [t for t in _leaves(x) if t.requires_grad]

        def step() -> None:
            out = fn(x)
            torch.autograd.grad(out.float().square().mean(), leaves)

        return time_call(step, self.device, p.min_total_s, min(3, p.max_reps), self.cpu_time)

    def _row(self, name: str, batch: int, length: int, mode: str, sec: float | None, note: str,
             exps_per_token: int = EXPS_PER_TOKEN) -> None:
        tokens = batch * length
        tps = tokens / sec if sec else None
        if name == "loop reference" and tps:
            self.ref_tps[(batch, length, mode)] = tps
        ref = self.ref_tps.get((batch, length, mode))
        floor = None
        if tps and self.device.startswith("cuda") and name != "sdpa" and mode == "fwd":
            floor = 100 * floor_s_per_token(self.plan.dtype) * tps
        elif tps and self.floor_exps and name not in ("sdpa", "loop reference") and mode == "fwd":
            floor = 100 * exps_per_token * tps / self.floor_exps
        row = {
            "backend": name,
            "batch": batch,
            "length": length,
            "tokens": tokens,
            "mode": mode,
            "ms": sec * 1e3 if sec else None,
            "tokens_per_s": tps,
            "vs_loop": tps / ref if tps and ref and name != "loop reference" else None,
            "floor_pct": floor,
            "note": note,
        }
        self.rows.append(row)
        show_row(self.progress, COLUMNS, row)


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    want = want.float()
    return ((got.float() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def kernel_checks(
    device: str, ref_len: int = 2048, fwd_len: int = 1 << 16, bwd_len: int = 1 << 13
) -> list[Check]:
    """On the GPU itself, before any timing: the fused Triton forward against the loop reference
    (fp32) and the chunked PyTorch path (bf16), and the Triton backward against the chunked
    PyTorch backward (fp32), bidirectional, Vim-Ti shapes."""
    checks = []
    try:
        x = make_inputs(1, ref_len, device, torch.float32)
        err = _rel(fused_triton(x), loop_reference(x))
        what = f"Fused Triton bidirectional forward vs the loop reference, fp32, L {fmt_len(ref_len)}"
        checks.append(Check.within("triton-fwd-vs-loop-reference", err, 1e-3, what))
        x = make_inputs(1, fwd_len, device, torch.bfloat16)
        err = _rel(fused_triton(x), chunked_torch(x))
        what = f"Fused Triton bidirectional forward vs chunked PyTorch, bf16, L {fmt_len(fwd_len)}"
        checks.append(Check.within("triton-fwd-vs-chunked", err, 3e-2, what))
        x = make_inputs(1, bwd_len, device, torch.float32, grad=True)
        leaves = [t for t in _leaves(x) if t.requires_grad]
        grads = {}
        for backend in ("triton", "torch"):
            with scan_backend(backend):
                y = dispatched(x)
            w = torch.linspace(-1, 1, y.numel(), device=device).reshape(y.shape)
            grads[backend] = torch.autograd.grad((y * w).sum(), leaves)
        err = max(_rel(a, b) for a, b in zip(grads["triton"], grads["torch"], strict=True))
        what = (
            f"Triton backward vs chunked PyTorch backward, fp32, L {fmt_len(bwd_len)}, {len(leaves)} inputs"
        )
        checks.append(Check.within("triton-bwd-vs-chunked", err, 1e-3, what))
    except Exception as err:  # report, keep the rest of the run
        checks.append(
            Check("kernel-checks", False, f"Kernel check failed: {type(err).__name__}: {str(err)[:200]}")
        )
    finally:
        _free(device)
    return checks


def long_sequence_check(device: str, dtype: torch.dtype, length: int, batch: int, tail: int) -> Check:
    """batch·dim·L > 2^31: the Triton scan's last ``tail`` tokens against the chunked torch path
    started from the state the Triton scan reaches before them (carried-state equivalence)."""
    from gigavim.kernels.scan_fwd import selective_scan_triton

    name = "triton-long-sequence"
    try:
        x = make_inputs(batch, length, device, dtype)
        u, dl, A, B, C, D = x["f"]
        args = (D, x["z"], x["bias"], True)
        y, h = selective_scan_triton(u, dl, A, B, C, *args, None, True)
        cut = length - tail
        _, h_cut = selective_scan_triton(
            u[..., :cut], dl[..., :cut], A, B[..., :cut], C[..., :cut], *args, None, True
        )
        y_t, h_t = selective_scan_chunked(
            u[..., cut:],
            dl[..., cut:],
            A,
            B[..., cut:],
            C[..., cut:],
            D,
            x["z"][..., cut:],
            x["bias"],
            True,
            h_cut,
            True,
        )
        err_y = _rel(y[..., cut:], y_t)
        err_h = _rel(h, h_t)
        return Check(
            name,
            err_y < 3e-2 and err_h < 1e-3,
            f"Long-sequence check (batch {batch} × dim {DIM} × L {fmt_len(length)} = "
            f"{batch * DIM * length / 2**31:.2f} × 2^31 elements, {dtype}): last {fmt_len(tail)} tokens "
            f"of the Triton scan vs the chunked PyTorch path from the carried state: max rel. error "
            f"y {err_y:.2e}, final state {err_h:.2e}",
        )
    except torch.cuda.OutOfMemoryError:
        return Check(name, False, f"Long-sequence check at batch {batch}, L {fmt_len(length)}: OOM")
    finally:
        _free(device)


def measure_memory(path: str, length: int | str, threads: int | str = 1) -> dict[str, Any]:
    """In this (child) process: one bidirectional forward at batch 1, L ``length``; its peak RSS and
    how far it rises above the inputs, counted in (dim, L) float32 tensors (each direction has u and
    Δ, plus z: five such inputs; the output is one more)."""
    import time
    from pathlib import Path

    length, threads = int(length), int(threads)
    cpu_threads(threads)
    fn = globals()[MEMORY_PATHS[path]]
    warm = make_inputs(1, 256, "cpu", torch.float32)
    with torch.no_grad():
        fn(warm)  # compile/load before the baseline
        x = make_inputs(1, length, "cpu", torch.float32)
        with open("/proc/self/statm") as fh:
            base = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
        except OSError:
            base = peak_rss_mib()
        t0 = time.perf_counter()
        fn(x)
        sec = time.perf_counter() - t0
    peak = peak_rss_mib()
    one = DIM * length * 4 / 2**20
    return {"backend": path, "batch": 1, "length": length, "tokens": length, "mode": MEMORY_MODE,
            "ms": sec * 1e3, "tokens_per_s": length / sec, "peak_mib": peak,
            "over_inputs": (peak - base) / one, "note": "wall time, one call"}


def memory_rows(lengths: list[int], threads: int, progress: Progress | None) -> list[dict[str, Any]]:
    """The fused and unfused CPU forwards, each length in its own process (peak RSS is its own)."""
    rows = []
    for length in lengths:
        for path in MEMORY_PATHS:
            try:
                rows.append(run_child(__name__, path, length, threads))
            except RuntimeError as err:
                rows.append({"backend": path, "batch": 1, "length": length, "tokens": length,
                             "mode": MEMORY_MODE, "note": f"error: {str(err).strip().splitlines()[-1][:80]}"})
            show_row(progress, COLUMNS, rows[-1])
    return rows


def run(
    device: str = "auto",
    quick: bool = False,
    threads: int = 1,
    budget_s: float | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Check (GPU) and time every scan path; ``quick`` = sizes that finish in seconds."""
    device = bench_device(device)
    before = cpu_threads(threads)
    try:
        return _run(device, quick, threads, plan_for(device, quick, budget_s), progress)
    finally:
        cpu_threads(*before)  # a library call leaves the caller's threads alone


def _run(device: str, quick: bool, threads: int, plan: Plan, progress: Progress | None) -> BenchReport:
    cuda = device.startswith("cuda")
    checks = kernel_checks(device) if cuda else []  # a wrong kernel's timings mean nothing: check first
    for c in checks:
        _say(progress, c.line())
    runner = Runner(device, plan, progress, threads)
    sdpa_path = ScanPath("sdpa", sdpa, plan.sdpa_max_len)
    for batch in plan.batches:
        for length in plan.lengths:
            for path in plan.fwd:
                runner.case(path, batch, length, "fwd")
            runner.case(sdpa_path, batch, length, "fwd", sdpa_case=True)
            for path in plan.bwd:
                runner.case(path, batch, length, "fwd+bwd")
    if plan.memory_lengths:
        runner.rows += memory_rows(list(plan.memory_lengths), threads, progress)
    if cuda:
        checks.append(
            long_sequence_check(device, plan.dtype, 1 << 20 if quick else 1 << 22, 6 if quick else 2, 1 << 16)
        )
        _say(progress, checks[-1].line())
    device_name = torch.cuda.get_device_name(device) if cuda else "CPU"
    return BenchReport(
        name="scan",
        section=f"scan-{device_kind(device)}",  # a GPU run keeps the CPU table, and back
        title=f"Bidirectional selective scan — {device_name}",
        columns=COLUMNS,
        rows=runner.rows,
        intro=(
            f"one Vim-Ti bidirectional scan layer (dim {DIM}, d_state {D_STATE}, Δ bias + softplus, D, "
            f"z gate), {str(plan.dtype).removeprefix('torch.')} inputs, best of up to {plan.max_reps} calls "
            f"(≥ {plan.min_total_s:g} s) after a warm-up; tokens/s = batch × L / time. `fwd+bwd` = "
            f"forward + gradients of every input. "
            + ("" if cuda else f"torch/numba threads: {threads}"
               + ("; times are process CPU seconds" if threads == 1 else "") + "; ")
            + f"load average at the end: {load_average():.1f} (other jobs share the host)."
        ),
        notes=_notes(cuda, plan),
        checks=checks,
        device=device,
        quick=quick,
        plot=plot,
    )


def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        progress(line)


def _notes(cuda: bool, plan: Plan) -> list[str]:
    if cuda:
        return [
            f"Kernel checks ran on the GPU before any timing. % of floor: the H100 floor of one "
            f"bidirectional layer, {floor_s_per_token(plan.dtype) * 1e9:.2f} ns per token (max of MUFU "
            "exp2 and HBM bytes, performance.md §5), × tokens / measured time.",
            "`fused triton` fwd+bwd: the fused forward, then the Triton backward of each direction "
            "(kernels/scan_bwd.py: states recomputed per 16-token tile, adjoint by a reverse scan).",
        ]
    return [
        "No GPU here: the fused Triton path is checked for correctness under Triton's interpreter "
        f'(tests/kernels) and timed only on a GPU (its rows say "{NO_GPU}"); `vs loop` = tokens/s '
        "relative to the loop reference at the same batch, L and mode.",
        "`fused numba` is what CPU inference runs (kernels/cpu_fused.py: softplus, D skip, gate and the "
        "two-direction combine inside the compiled loop, channels as vector lanes); `fused numba core, "
        "one direction` is its scan alone; `unfused numba` is the autograd path's numba core with "
        "softplus, skip, gate and combine as separate PyTorch ops (CPU inference before the fused "
        "kernel; `chunked torch` fwd+bwd is that path with gradients); `chunked, eager blocks` the same "
        "algorithm in eager PyTorch (the fallback without numba). Cases a smaller run predicts over the "
        "time budget are skipped; the loop reference's fwd+bwd runs only at 1K (not with --quick).",
        f"`{MEMORY_MODE}` rows: one bidirectional forward in a fresh process; `peak − inputs` is how far "
        "its peak RSS rises above the RSS once the inputs exist, in units of one (dim, L) float32 tensor "
        "(the output alone is 1). The fused path stays near 1 at every L: O(L·D) with no per-state or "
        "per-op full-size temporaries.",
        "% of floor (CPU): the exp-bound floor is measured beside every case — the kernel's own float32 "
        "exp in a loop over an L1-resident array, exps/s on the same threads — and the row's exps "
        f"(2 × {DIM} × {D_STATE} per token, half for the one-direction core) per second are divided by "
        "it. With one thread both are timed in process CPU time, so other jobs on the shared host "
        "change the ratio less than they change either number.",
    ]


def plot(report: BenchReport, png: Path) -> Path | None:
    """Forward tokens/s against L, one line per (backend, batch); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for row in report.rows:
        if row["mode"] == "fwd" and row["tokens_per_s"]:
            series.setdefault((row["backend"], row["batch"]), []).append((row["length"], row["tokens_per_s"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, batch), pts in sorted(series.items()):
        xs, ys = zip(*sorted(pts), strict=True)
        ax.plot(xs, ys, marker="o", label=f"{name}, batch {batch}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens per sequence (L)")
    ax.set_ylabel("tokens / s (forward, one bidirectional layer)")
    ax.set_title(
        f"{report.title.replace('Bidirectional selective scan', 'Bidirectional scan')}, "
        f"dim {DIM}, d_state {D_STATE}"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


if __name__ == "__main__":
    child_main(measure_memory)
