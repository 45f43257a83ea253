"""``gigavim bench``: quick runs report real measurements; a missing GPU is one clear line."""

from __future__ import annotations

import json

import pytest
import torch

from gigavim.benchmarks import report as report_mod
from gigavim.benchmarks.gpu_check import STEPS as GPU_STEPS

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")


@pytest.fixture
def docs_untouched():
    """The repository's docs/benchmarks.md must not change when --no-write-docs is given."""
    doc = report_mod.DOC
    before = doc.read_bytes() if doc.exists() else None
    yield
    assert (doc.read_bytes() if doc.exists() else None) == before


def test_quick_scan_on_cpu_reports_measured_rows_and_no_fake_triton(gigavim, docs_untouched):
    result = gigavim("bench", "scan", "--device", "cpu", "--quick", "--no-write-docs", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1  # one JSON object per benchmark
    data = json.loads(lines[0])
    assert (data["benchmark"], data["device"], data["quick"], data["ok"]) == ("scan", "cpu", True, True)
    rows = data["rows"]
    for row in rows:
        assert {"backend", "batch", "length", "tokens", "mode", "ms", "tokens_per_s", "note"} <= row.keys()
        assert row["tokens"] == row["batch"] * row["length"]
    measured = {(r["backend"], r["mode"]) for r in rows if r["tokens_per_s"]}
    assert {
        ("loop reference", "fwd"),
        ("fused numba", "fwd"),  # CPU inference
        ("unfused numba", "fwd"),
        ("chunked torch", "fwd+bwd"),  # training (autograd path)
        ("sdpa", "fwd"),
        ("fused numba", "fwd, own process"),  # peak memory
    } <= measured
    for r in rows:
        if r["tokens_per_s"]:
            assert r["tokens_per_s"] == pytest.approx(r["tokens"] / (r["ms"] / 1e3))
    triton = [r for r in rows if r["backend"] == "fused triton"]
    assert triton, "the Triton rows say why they have no number"
    assert all(
        r["tokens_per_s"] is None and r["ms"] is None and r["note"] == "skipped (no GPU)" for r in triton
    )
    # CPU: % of the exp floor measured beside each case, for the numba paths' forward rows only
    no_floor = ("loop reference", "sdpa", "fused triton")
    assert all(r["floor_pct"] is None for r in rows if r["backend"] in no_floor)
    assert all(r["floor_pct"] > 0 for r in rows if r["backend"] == "fused numba core, one direction")


@NO_GPU
def test_cuda_without_a_gpu_is_one_line_and_a_failure(gigavim, docs_untouched):
    result = gigavim("bench", "scan", "--device", "cuda", "--quick")
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "gigavim: error: --device cuda: no CUDA GPU is available on this machine"
    ]


def test_quick_model_bench_measures_throughput_and_says_when_docs_cannot_be_written(
    gigavim, monkeypatch, docs_untouched
):
    monkeypatch.setattr(report_mod, "source_checkout_doc", lambda: None)  # as from an installed wheel
    result = gigavim("bench", "model", "--device", "cpu", "--quick", "--write-docs", "--json")
    assert result.returncode == 0, result.stderr
    assert "docs/benchmarks.md not found" in result.stderr
    data = json.loads(result.stdout)
    assert data["section"] == "model-cpu"
    (row,) = data["rows"]
    assert row["size"] == 224 and row["tokens"] == 197  # 14×14 patches + the class token
    assert row["seconds"] > 0 and row["tokens_per_s"] == pytest.approx(row["batch"] * 197 / row["seconds"])
    assert 0 < row["forward_extra_mib"] < row["peak_mib"]


def _fake_scan(failed_check: bool):
    """A scan run that returns at once (what the CLI does with a report, not the timings)."""
    from gigavim.benchmarks.report import BenchReport, Check, Column

    def run(device: str, quick: bool, threads: int, progress) -> BenchReport:
        checks = [Check.within("triton-fwd-vs-loop-reference", 0.5 if failed_check else 1e-7, 1e-3, "fwd")]
        return BenchReport(
            name="scan",
            section="scan",
            title="Scan",
            columns=[Column("backend", "backend")],
            rows=[{"backend": "fused triton"}],
            checks=checks,
            device=device,
            quick=quick,
            machine={"cpu": "test"},
        )

    return run


def test_write_docs_rewrites_only_this_benchmarks_section(gigavim, monkeypatch, tmp_path):
    from gigavim.benchmarks import scan

    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    doc.write_text(
        "# Benchmarks\n\n<!-- BEGIN scan -->\nold\n<!-- END scan -->\n\n"
        "<!-- BEGIN model-cpu -->\nkept\n<!-- END model-cpu -->\n"
    )
    monkeypatch.setattr(scan, "run", _fake_scan(failed_check=False))
    monkeypatch.setattr(report_mod, "source_checkout_doc", lambda: doc)
    result = gigavim("bench", "scan", "--device", "cpu", "--write-docs")
    assert result.returncode == 0, result.stderr
    text = doc.read_text()
    assert "\nold\n" not in text and "<!-- BEGIN model-cpu -->\nkept\n<!-- END model-cpu -->" in text
    assert "`gigavim bench scan --write-docs`" in text and "| fused triton |" in text
    assert "fwd: max rel. error 1.00e-07 → PASS" in result.stdout


def test_a_failed_kernel_check_fails_the_command(gigavim, monkeypatch, docs_untouched):
    from gigavim.benchmarks import scan

    monkeypatch.setattr(scan, "run", _fake_scan(failed_check=True))
    result = gigavim("bench", "scan", "--device", "cpu", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["ok"] is False  # the numbers still come out, marked
    assert result.stderr.strip().splitlines()[-1] == (
        "gigavim: error: 1 kernel check(s) failed: triton-fwd-vs-loop-reference"
    )


def test_quick_whole_image_bench_measures_both_contexts_in_their_own_processes(gigavim, docs_untouched):
    from gigavim.models.catalog import load_model

    result = gigavim("bench", "whole-image", "--device", "cpu", "--quick", "--no-write-docs", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["benchmark"], data["section"], data["ok"]) == ("whole-image", "whole-image-cpu", True)
    assert data["command"] == "gigavim bench whole-image --quick --write-docs"
    tile, image = data["rows"]
    assert (tile["context"], image["context"]) == ("tile", "image")
    for key in ("side", "mpp", "shape", "tokens", "tiles"):
        assert tile[key] == image[key]  # the same slide and working image, only the context differs
    rows, cols = load_model("tissue").net.backbone.grid(*tile["shape"])
    assert tile["tokens"] == rows * cols  # the sequence whole-image mode streams
    for row in (tile, image):
        assert 0 < row["inference_s"] < row["seconds"]
        assert 0 < row["rss_imports_mib"] < row["peak_rss_mib"]  # each child's own VmHWM, not the parent's


# -- gpu-check ----------------------------------------------------------------------------
def test_dry_run_lists_the_steps_without_a_gpu(gigavim):
    result = gigavim("bench", "gpu-check", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "gpu-check steps:"
    assert lines[1].startswith("1. kernels + scan: gigavim bench scan --device cuda")
    assert len(lines) == 1 + len(GPU_STEPS)


@NO_GPU
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_without_a_gpu_it_is_one_line_and_a_failure(gigavim, device: str):
    result = gigavim("bench", "gpu-check", "--device", device)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "gigavim: error: --device cuda: no CUDA GPU is available on this machine"
    ]


def test_on_the_cpu_it_refuses_in_one_line(gigavim):
    result = gigavim("bench", "gpu-check", "--device", "cpu")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "gigavim: error: gpu-check runs on a CUDA GPU, not --device cpu (--dry-run lists its steps)"
    ]


@pytest.mark.parametrize("how", ["option", "env"])
def test_a_tiatoolbox_python_that_does_not_run_is_one_line_before_any_work(gigavim, monkeypatch, how,
                                                                            tmp_path):
    missing = str(tmp_path / "no-venv" / "python")
    option = ["--tia-python", missing] if how == "option" else []
    if how == "env":
        monkeypatch.setenv("GIGAVIM_TIA_PYTHON", missing)
    result = gigavim("bench", "engines", "--quick", *option)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"gigavim: error: --tia-python {missing}: does not run as Python "
        f"([Errno 2] No such file or directory: '{missing}')"
    ]
