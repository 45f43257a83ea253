"""docs/benchmarks.md sections and the report a benchmark returns."""

from __future__ import annotations

import json
from pathlib import Path

from gigavim.benchmarks.report import BenchReport, Check, Column, publish, update_section

DOC = """# Benchmarks

<!-- BEGIN alpha -->
## alpha
old alpha
<!-- END alpha -->

<!-- BEGIN beta -->
## beta
| keep | me |
<!-- END beta -->
"""


def test_update_section_replaces_only_its_own_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    update_section("alpha", "## alpha\nnew alpha $1 \\1", doc)  # regex specials stay literal
    text = doc.read_text()
    assert "new alpha $1 \\1" in text and "old alpha" not in text
    assert "<!-- BEGIN beta -->\n## beta\n| keep | me |\n<!-- END beta -->" in text
    assert text.startswith("# Benchmarks\n")
    update_section("gamma", "## gamma", doc)  # a new section is appended, the rest untouched
    again = doc.read_text()
    assert again.startswith(text.rstrip()) and again.rstrip().endswith("<!-- END gamma -->")
    assert again.count("<!-- BEGIN alpha -->") == 1


def _report(rows, checks=()):
    return BenchReport(
        name="demo",
        section="demo-cpu",
        title="Demo",
        columns=[
            Column("backend", "backend"),
            Column("tokens_per_s", "tokens/s", ".3g"),
            Column("length", "L", lambda n: f"{n >> 10}K"),
        ],
        rows=rows,
        intro="what was run.",
        checks=list(checks),
        machine={"cpu": "test"},
    )


def test_report_renders_markdown_and_json_from_the_same_rows():
    report = _report(
        [
            {"backend": "chunked", "tokens_per_s": 12345.6, "length": 4096},
            {"backend": "triton", "tokens_per_s": None, "length": 4096},
        ],
        [Check("fwd", True, "fwd vs reference: 1e-6")],
    )
    md = report.markdown()
    assert md.startswith("## Demo (`demo-cpu`)\n\n`gigavim bench demo --write-docs` — what was run.")
    assert "| chunked | 1.23e+04 | 4K |" in md and "| triton |  | 4K |" in md  # None → empty cell
    assert "fwd vs reference: 1e-6 → PASS" in md and "Machine: cpu test" in md
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rows"][0] == {"backend": "chunked", "tokens_per_s": 12345.6, "length": 4096}
    assert data["ok"] is True and data["columns"]["tokens_per_s"] == "tokens/s"
    failed = _report([], [Check.within("bwd", 2e-3, 1e-3, "bwd vs reference")])
    assert not failed.ok and failed.checks[0].line() == "bwd vs reference: max rel. error 2.00e-03 → FAIL"


def test_section_names_the_command_that_re_runs_it():
    report = _report([])
    report.device, report.quick = "cuda", True
    assert report.command == "gigavim bench demo --device cuda --quick --write-docs"
    assert report.markdown().startswith("## Demo (`demo-cpu`)\n\n`gigavim bench demo --device cuda --quick")


def test_publish_writes_the_figure_beside_the_doc_and_links_it(tmp_path):
    doc = tmp_path / "docs" / "benchmarks.md"
    report = _report([{"backend": "chunked", "tokens_per_s": 1.0, "length": 1024}])

    def plot(rep: BenchReport, png: Path) -> Path:
        png.write_bytes(b"png")
        return png

    report.plot = plot
    publish(report, doc)
    text = doc.read_text()
    assert (tmp_path / "docs" / "bench_demo-cpu.png").read_bytes() == b"png"
    assert "<!-- BEGIN demo-cpu -->" in text and "![demo](bench_demo-cpu.png)" in text


def test_cpu_simd_names_the_widest_vector_extension() -> None:
    from gigavim.benchmarks.report import cpu_simd

    assert cpu_simd({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"}) == "AVX-512"
    assert cpu_simd({"sse4_2", "avx", "avx2", "fma"}) == "AVX2"
    assert cpu_simd({"fp", "asimd"}) == "NEON"
    assert cpu_simd(set()) == "unknown"
