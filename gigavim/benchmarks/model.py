"""Vim against DeiT (the Vim paper's Fig. 1): forward time, tokens/s and peak memory vs image size.

Vim-Ti (and -S) against timm's DeiT-Ti (and -S) with its default fused attention
(``F.scaled_dot_product_attention``), ``forward_features``, batch 1 and a batch, from 224² up to
the largest size whose predicted forward time fits the budget. Every case runs in its own child
process (its peak memory is its own): on CPU the peak resident set (``VmHWM``, reset once the
model and input exist, so the peak is the forward's), on CUDA ``torch.cuda.max_memory_allocated``
(bf16 autocast, as the engine runs). "Forward extra" = peak − memory in use before the forward,
i.e. the activations. Rounds interleave Vim and DeiT size by size and the table keeps each case's
median over rounds, so both models see the same load on a shared host; the ratios (Vim/DeiT at the
same size and batch) are the numbers to read. The time exponent is the least-squares slope of
log time against log tokens from 512² up. Section ``model-cpu`` / ``model-cuda``; timm is the
``bench`` extra's, never a runtime dependency.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gigavim.benchmarks.report import (
    BenchReport,
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

MODELS: dict[str, tuple[str, str, dict[str, int]]] = {
    # name: (family, registered name (gigavim for vim, timm for deit), overrides)
    "vim-ti": ("vim", "vim_tiny_patch16_224", {}),
    "deit-ti": ("deit", "deit_tiny_patch16_224", {}),
    "vim-s": ("vim", "vim_small_patch16_224", {}),
    "deit-s": ("deit", "deit_small_patch16_224", {}),
    "vim-small-test": ("vim", "vim_tiny_patch16_224", {"embed_dim": 96, "depth": 12}),
}
PAIRS = {"vim-ti": "deit-ti", "vim-s": "deit-s"}  # Vim model → the DeiT it is compared with
FIT_FROM = 512  # sizes below are dominated by per-call overheads: left out of the exponent fit


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    models: tuple[str, ...]
    sizes: tuple[int, ...]
    batches: tuple[int, ...]
    rounds: int
    repeats: int
    budget_s: float  # largest predicted seconds per forward a case may take
    repeat_up_to: int | None = None  # rounds after the first measure sizes up to this only (None: all)


def plan_for(device: str, quick: bool) -> Plan:
    if quick:
        return Plan(("vim-small-test",), (224,), (1,), 1, 1, 30.0)
    if device.startswith("cuda"):
        return Plan(("vim-ti", "deit-ti", "vim-s", "deit-s"), (224, 512, 1024, 2048, 3072, 4096, 6144),
                    (1, 8), 3, 5, 10.0)
    # a 2-core host, ~12 min when quiet: 2048² once, the rest in two interleaved rounds; the 45 s
    # budget admits DeiT-Ti at 2048² (~25-35 s) and the batch-8 Ti pair at 1024²
    return Plan(("vim-ti", "deit-ti", "vim-s", "deit-s"), (224, 512, 1024, 2048), (1, 8), 2, 1, 45.0,
                repeat_up_to=1024)


COLUMNS = [
    Column("model", "model"),
    Column("batch", "batch"),
    Column("size", "input", lambda v: f"{v}²"),
    Column("tokens", "tokens / image"),
    Column("seconds", "s / batch", ".4g"),
    Column("tokens_per_s", "tokens/s", ".0f"),
    Column("peak_mib", "peak MiB", ".0f"),
    Column("forward_extra_mib", "forward extra MiB", ".0f"),
    Column("time_vs_deit", "time vs DeiT", lambda v: f"{v:.2f}×"),
    Column("memory_vs_deit", "extra memory vs DeiT", lambda v: f"{v:.2f}×"),
    Column("spread", "spread over rounds", lambda v: f"{v:.0%}"),
    Column("note", "note"),
]


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak_rss() -> bool:
    """Hand freed heap memory back to the OS, then reset this process's VmHWM to its current RSS
    (Linux ``clear_refs`` 5); False if unsupported. Without the trim, the timed forward would reuse
    the warm-up's freed (still resident) heap and its activations would not show in the peak."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build(model_key: str, size: int):
    """(network of ``model_key`` for ``size``² inputs, classifier-free, eval mode; where it came from)."""
    family, name, overrides = MODELS[model_key]
    if family == "vim":
        from gigavim.models import create_model

        return create_model(name, num_classes=0, **overrides).eval(), "gigavim"
    from gigavim.benchmarks.deit import create_deit

    net, source = create_deit(name, size)
    return net.eval(), source


def measure(model_key: str, size: int | str, batch: int | str, repeats: int | str, threads: int | str,
            device: str = "cpu") -> dict[str, Any]:
    """One case in this process: a warm-up forward, then ``repeats`` timed ones (best kept)."""
    import torch

    size, batch, repeats, threads = int(size), int(batch), int(repeats), int(threads)
    cpu_threads(threads)  # numba's too: it would reset torch's to every core
    cuda = device.startswith("cuda")
    model, source = build(model_key, size)
    model = model.to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), autocast:
        out = model.forward_features(x)  # warm-up: compiles kernels, sizes caches
        del out
        gc.collect()
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device) / 2**20
        else:
            reset = _reset_peak_rss()
            base = _rss_now_mib()
        # one CPU thread: process CPU seconds (other jobs' time slices on a shared host not counted)
        clock = time.process_time if not cuda and threads == 1 else time.perf_counter
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(device)
            t0 = clock()
            out = model.forward_features(x)
            if cuda:
                torch.cuda.synchronize(device)
            times.append(clock() - t0)
            tokens = out.shape[1]
            del out
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = peak_rss_mib()
        if not reset:  # the process peak includes building the model: no forward extra to report
            base = math.nan
    best = min(times)
    return {"model": model_key, "source": source, "batch": batch, "size": size, "tokens": tokens,
            "seconds": best, "tokens_per_s": batch * tokens / best, "peak_mib": peak,
            "forward_extra_mib": max(0.0, peak - base) if base == base else None}


# time ∝ tokens^e assumed for a model before two of its sizes are measured (attention is
# quadratic, but DeiT's per-token MLP keeps its measured exponent near 1.6 up to 2048²)
PRIOR_EXPONENT = {"vim": 1.0, "deit": 1.6}


def _predicted_s(model_key: str, batch: int, size: int,
                 done: dict[tuple[str, int], list[tuple[int, float]]]) -> float:
    """Seconds per forward at ``size``: the last measured size of this (model, batch) times the
    token ratio to the power of the model's fitted exponent.

    ``done`` maps (model, batch) to the (size, seconds) measured so far, smallest first. The
    exponent is fitted over this series (sizes ≥ FIT_FROM when two are), else over the model's
    batch-1 series (the batch changes the time, hardly the exponent), else the family's prior;
    clamped to [1, 2]. Fitting only the last two points, or assuming quadratic growth from one,
    predicted 400 s for Vim-Ti batch 8 at 1024² (it takes ~20 s) and skipped it.
    """
    series = done.get((model_key, batch), [])
    if not series:
        return 0.0
    s1, t1 = series[-1]
    exponent = None
    for pts in (series, done.get((model_key, 1), [])):
        big = [p for p in pts if p[0] >= FIT_FROM]
        exponent = fit_exponent([((s // 16) ** 2, t) for s, t in (big if len(big) > 1 else pts)])
        if exponent is not None:
            break
    if exponent is None:
        exponent = PRIOR_EXPONENT[MODELS[model_key][0]]
    return t1 * ((size / s1) ** 2) ** min(2.0, max(1.0, exponent))


def fit_exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log seconds against log tokens (None with fewer than two points)."""
    pts = [(math.log(n), math.log(t)) for n, t in points if t > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def run(device: str = "auto", quick: bool = False, threads: int = 1, progress: Progress | None = None,
        plan: Plan | None = None) -> BenchReport:
    """Measure every (model, batch, size) case of the plan in interleaved rounds; see module doc."""
    device = bench_device(device)
    plan = plan or plan_for(device, quick)
    unknown = [m for m in plan.models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    samples: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    skipped: dict[tuple[str, int, int], str] = {}
    for rnd in range(plan.rounds):
        done: dict[tuple[str, int], list[tuple[int, float]]] = {}
        for batch in plan.batches:
            for size in plan.sizes:
                for model_key in plan.models:
                    key = (model_key, batch, size)
                    if key in skipped or (rnd and plan.repeat_up_to and size > plan.repeat_up_to):
                        continue
                    est = _predicted_s(model_key, batch, size, done)
                    if est > plan.budget_s:
                        skipped[key] = f"skipped (est. {est:.3g} s per forward)"
                        continue
                    try:
                        row = run_child(__name__, model_key, size, batch, plan.repeats, threads, device)
                    except RuntimeError as err:
                        last = str(err).strip().splitlines()[-1][:100]
                        skipped[key] = "OOM" if "out of memory" in last.lower() else f"error: {last}"
                        continue
                    samples.setdefault(key, []).append(row)
                    done.setdefault((model_key, batch), []).append((size, row["seconds"]))
                    if progress is not None:
                        progress(f"round {rnd + 1}/{plan.rounds}: {model_key} batch {batch} {size}²: "
                                 f"{row['seconds']:.3g} s, peak {row['peak_mib']:.0f} MiB")
    from gigavim.models.chunked_block import CHUNK_TOKENS

    rows = _rows(plan, samples, skipped)
    for row in rows:
        show_row(progress, COLUMNS, row)
    cuda = device.startswith("cuda")
    where = ("bf16 autocast; peak = `torch.cuda.max_memory_allocated`" if cuda
             else f"float32, {threads} torch/numba thread(s)"
             + (", seconds = process CPU time" if threads == 1 else "")
             + "; peak = the child's VmHWM, reset before the timed forwards")
    return BenchReport(
        name="model",
        section=f"model-{device_kind(device)}",
        title=f"Vim vs DeiT forward on {device_kind(device).upper()}",
        columns=COLUMNS,
        rows=rows,
        device=device,
        quick=quick,
        intro=(
            f"`forward_features` in inference mode, {where}; each case in its own process, best of "
            f"{plan.repeats} after a warm-up, median over {plan.rounds} interleaved round(s) (Vim and DeiT "
            f"alternate size by size"
            + (f"; sizes above {plan.repeat_up_to}² in the first round only" if plan.repeat_up_to else "")
            + f"); sizes up to the largest predicted to fit {plan.budget_s:g} s per "
            f"forward. DeiT = timm's, or its built-in replica where timm does not import (the note "
            f"column says which), attention by SDPA. Scan backend: the `gigavim.kernels` "
            f"{'Triton' if cuda else 'CPU (fused numba)'} path"
            + ("" if cuda else f"; Vim blocks run in chunks of {CHUNK_TOKENS} tokens with carried states "
               f"on longer sequences (`gigavim.models.chunked_block`)")
            + ". Load average at the end: "
            f"{load_average():.1f} (other jobs share the host)."
        ),
        notes=_notes(rows, plan),
        plot=plot,
    )


def _rows(plan: Plan, samples: dict[tuple[str, int, int], list[dict[str, Any]]],
          skipped: dict[tuple[str, int, int], str]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}
    for (model_key, batch, size), got in samples.items():
        secs = [g["seconds"] for g in got]
        med = statistics.median(secs)
        extras = [g["forward_extra_mib"] for g in got if g["forward_extra_mib"] is not None]
        rows[(model_key, batch, size)] = {
            "model": model_key, "batch": batch, "size": size, "tokens": got[0]["tokens"], "seconds": med,
            "tokens_per_s": batch * got[0]["tokens"] / med,
            "peak_mib": statistics.median(g["peak_mib"] for g in got),
            "forward_extra_mib": statistics.median(extras) if extras else None,
            "spread": (max(secs) - min(secs)) / med if len(secs) > 1 else None,
            "note": "; ".join(n for n in (
                "timm" if got[0].get("source") == "timm" else
                "built-in replica (timm not importable)" if got[0].get("source") == "replica" else "",
                "1 round" if len(got) == 1 and plan.rounds > 1 else "") if n),
        }
    for key, note in skipped.items():
        if key not in rows:
            rows[key] = {"model": key[0], "batch": key[1], "size": key[2], "note": note}
    for (model_key, batch, size), row in rows.items():
        other = rows.get((PAIRS.get(model_key, ""), batch, size))
        if other and row.get("seconds") and other.get("seconds"):
            row["time_vs_deit"] = row["seconds"] / other["seconds"]
            if row.get("forward_extra_mib") and other.get("forward_extra_mib"):
                row["memory_vs_deit"] = row["forward_extra_mib"] / other["forward_extra_mib"]
    order = {m: i for i, m in enumerate(plan.models)}
    return sorted(rows.values(), key=lambda r: (r["batch"], r["size"], order[r["model"]]))


def exponents(rows: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """Fitted time exponent per (model, batch) over sizes ≥ FIT_FROM."""
    series: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for r in rows:
        if r.get("seconds") and r["size"] >= FIT_FROM:
            series.setdefault((r["model"], r["batch"]), []).append((r["tokens"], r["seconds"]))
    fitted = {k: fit_exponent(v) for k, v in series.items()}
    return {k: v for k, v in fitted.items() if v is not None}


def _notes(rows: list[dict[str, Any]], plan: Plan) -> list[str]:
    fits = exponents(rows)
    if not fits:
        return []
    ordered = sorted(fits.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    parts = [f"{m} batch {b}: tokens^{e:.2f}" for (m, b), e in ordered]
    return [f"Time ∝ tokens^exponent, least squares over sizes ≥ {FIT_FROM}²: " + "; ".join(parts) + ". "
            "`time vs DeiT` and `extra memory vs DeiT` compare a Vim row with its DeiT (Ti with Ti, "
            "S with S) at the same size and batch (< 1: Vim is faster / needs less); `spread` = "
            "(max − min) / median of the rounds' times."]


def plot(report: BenchReport, png: Path) -> Path | None:
    """Seconds and forward memory against tokens, log-log, one line per (model, batch)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in report.rows:
        if r.get("seconds"):
            series.setdefault((r["model"], r["batch"]), []).append(r)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.5))
    for (name, batch), pts in sorted(series.items()):
        pts = sorted(pts, key=lambda r: r["tokens"])
        style = "-" if name.startswith("vim") else "--"
        label = f"{name}, batch {batch}"
        xs = [p["tokens"] for p in pts]
        ax_t.plot(xs, [p["seconds"] / batch for p in pts], style, marker="o", label=label)
        mem = [(p["tokens"], p["forward_extra_mib"]) for p in pts if p.get("forward_extra_mib")]
        if mem:
            ax_m.plot(*zip(*mem, strict=True), style, marker="o", label=label)
    for ax, ylabel in ((ax_t, "seconds per image (forward)"), (ax_m, "forward extra memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens per image")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(report.title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


if __name__ == "__main__":
    child_main(measure)
