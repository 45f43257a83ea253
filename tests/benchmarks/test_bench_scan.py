"""The scan benchmark's own plumbing: where a CPU and a GPU run land, and how it waits for the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gigavim.benchmarks import scan
from gigavim.benchmarks.report import publish


def _no_cases(dtype: torch.dtype) -> scan.Plan:
    return scan.Plan(dtype, [], (1,), 1.0, 0.0, 1, [], [], None)


def test_cpu_and_gpu_scan_runs_keep_their_own_sections_and_figures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU run with --write-docs must not replace the CPU table (nor its figure), and back."""
    monkeypatch.setattr(scan, "kernel_checks", lambda device: [])
    monkeypatch.setattr(scan, "long_sequence_check",
                        lambda *a: scan.Check("triton-long-sequence", True, "long"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100")
    doc = tmp_path / "docs" / "benchmarks.md"
    for device, dtype in (("cpu", torch.float32), ("cuda", torch.bfloat16), ("cpu", torch.float32)):
        publish(scan._run(device, True, 1, _no_cases(dtype), None), doc)
    text = doc.read_text()
    assert text.count("<!-- BEGIN scan-cpu -->") == 1 and text.count("<!-- BEGIN scan-cuda -->") == 1
    assert "— NVIDIA H100" in text and "— CPU" in text
    assert (doc.parent / "bench_scan-cpu.png").is_file() and (doc.parent / "bench_scan-cuda.png").is_file()


def test_timing_waits_for_the_device_it_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--device cuda:1``: synchronising the current device (0) would time launches, not work."""
    synced: list[object] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    scan.time_call(lambda: None, "cuda:1", min_total_s=0.0, max_reps=2)
    assert synced and all(str(d) == "cuda:1" for d in synced)
