"""``gigavim bench gpu-check``: everything a lent GPU should tell us, in one command of ~8 minutes.

Steps, in order (kernels' correctness first: the timings of a wrong kernel mean nothing):

1. ``scan`` on CUDA: the Triton kernels checked against the loop reference and the chunked
   PyTorch path (incl. a > 2^31-element launch), then timed against SDPA;
2. ``model`` on CUDA (bf16): the Vim backbone forward (and whatever peers ``bench model`` compares);
3. ``segment`` on CUDA: a synthetic 20k² slide at 2 and 0.5 µm/px (engine throughput, peak RSS);
4. ``whole-image`` on CUDA: whole-image context vs tiles at 4k² and 8k².

Each step is one benchmark of :mod:`gigavim.benchmarks` with GPU-sized arguments; its section of
docs/benchmarks.md is rewritten as it finishes (``--write-docs``), and a compact summary (one line
per step: seconds, rows, checks) ends the run. A step that fails is reported and the next one runs;
once the budget is spent the remaining steps are skipped (and said so). ``--dry-run`` lists the
steps without a GPU, so the plan can be checked anywhere.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gigavim.benchmarks.report import BenchReport, Progress

BUDGET_S = 8 * 60


@dataclass(frozen=True)
class Step:
    """One benchmark with the arguments that fit it into the GPU check."""

    name: str
    benchmark: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    def command(self, device: str) -> str:
        extra = "".join(f" {k}={v!r}" for k, v in self.kwargs.items())
        return f"gigavim bench {self.benchmark} --device {device}" + (f"  ({extra.strip()})" if extra else "")


STEPS = (
    Step("kernels + scan", "scan", {}, "Triton kernels vs the reference first, then scan timings"),
    Step("model", "model", {}, "Vim forward in bf16 (and the peers bench model compares)"),
    Step("segment", "segment", {"sizes": (20000,), "mpps": (2.0, 0.5)}, "engine throughput and RSS"),
    Step("whole-image", "whole-image", {"sides": (4000, 8000)}, "whole-image context vs tiles"),
)


@dataclass
class Outcome:
    """What one step did: its report (when it ran), seconds, and why it failed or was skipped."""

    step: Step
    seconds: float = 0.0
    report: BenchReport | None = None
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None and (self.report is None or self.report.ok)

    def line(self) -> str:
        head = f"{self.step.name:<15}"
        if self.skipped:
            return f"{head} SKIPPED ({self.skipped})"
        if self.error:
            return f"{head} ERROR after {self.seconds:.0f} s: {self.error}"
        assert self.report is not None
        checks = self.report.checks
        failed = [c.name for c in checks if not c.passed]
        verdict = (f"{len(checks) - len(failed)}/{len(checks)} checks pass" if checks else "no checks")
        if failed:
            verdict += f" — FAILED: {', '.join(failed)}"
        return f"{head} {self.seconds:5.0f} s, {len(self.report.rows)} rows, {verdict}"


def plan(device: str = "cuda") -> list[str]:
    """The steps as lines (what ``--dry-run`` prints)."""
    return [f"{i}. {s.name}: {s.command(device)} — {s.why}" for i, s in enumerate(STEPS, 1)]


def run(
    device: str,
    *,
    publish: Callable[[BenchReport], Path | None] | None = None,
    progress: Progress | None = None,
    budget_s: float = BUDGET_S,
    steps: tuple[Step, ...] = STEPS,
    load: Callable[[str], Any] | None = None,
) -> list[Outcome]:
    """Run every step on ``device`` (a CUDA device), publishing each report as it lands."""
    from gigavim.benchmarks import module

    load = load or module
    started = time.perf_counter()
    outcomes = []
    for step in steps:
        outcome = Outcome(step)
        outcomes.append(outcome)
        if time.perf_counter() - started > budget_s:
            outcome.skipped = f"the {budget_s / 60:.0f}-minute budget is spent"
            continue
        if progress:
            progress(f"gpu-check: {step.name} ({step.command(device)})")
        t0 = time.perf_counter()
        try:
            outcome.report = load(step.benchmark).run(device=device, progress=progress, **step.kwargs)
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if progress:
                progress(traceback.format_exc())
        outcome.seconds = time.perf_counter() - t0
        if outcome.report is not None and publish is not None:
            publish(outcome.report)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    """The compact end-of-run summary: one line per step and a verdict."""
    lines = ["gpu-check summary:"] + [f"  {o.line()}" for o in outcomes]
    bad = [o.step.name for o in outcomes if not o.ok]
    lines.append("  verdict: " + ("all steps OK" if not bad else f"NOT OK: {', '.join(bad)}"))
    return "\n".join(lines)
