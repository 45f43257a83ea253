"""``bench gpu-check``: its steps in order, one failing step never hides the others, the budget."""

from __future__ import annotations

import inspect

from gigavim.benchmarks import gpu_check, module
from gigavim.benchmarks.report import BenchReport, Check


def test_kernels_are_checked_first_and_every_step_is_a_benchmark_taking_its_arguments():
    assert [s.benchmark for s in gpu_check.STEPS] == ["scan", "model", "segment", "whole-image"]
    for step in gpu_check.STEPS:
        params = inspect.signature(module(step.benchmark).run).parameters
        assert {"device", "progress", *step.kwargs} <= params.keys(), step.name


def _report(name: str, passed: bool = True) -> BenchReport:
    return BenchReport(name=name, section=name, title=name, columns=[], rows=[{"x": 1}],
                       checks=[Check("kernel", passed, "kernel vs reference")], machine={})


class _Fake:
    """Stands in for the benchmark modules: records calls, fails or fails its checks on request."""

    def __init__(self, broken: str = "", wrong: str = "") -> None:
        self.calls: list[tuple[str, dict]] = []
        self.broken, self.wrong = broken, wrong

    def __call__(self, name: str):
        fake = self

        class Module:
            @staticmethod
            def run(**kwargs):
                fake.calls.append((name, kwargs))
                if name == fake.broken:
                    raise RuntimeError("CUDA out of memory\nsecond line")
                return _report(name, passed=name != fake.wrong)

        return Module


def test_a_failing_step_is_reported_and_the_next_steps_still_run():
    fake, published = _Fake(broken="model", wrong="scan"), []
    outcomes = gpu_check.run("cuda", publish=published.append, load=fake)
    assert [name for name, _ in fake.calls] == ["scan", "model", "segment", "whole-image"]
    assert all(kwargs["device"] == "cuda" for _, kwargs in fake.calls)
    assert dict(fake.calls)["segment"]["sizes"] == (20000,)
    assert [r.name for r in published] == ["scan", "segment", "whole-image"]  # not the failed one
    text = gpu_check.summary(outcomes)
    assert "model" in text and "ERROR" in text and "RuntimeError: CUDA out of memory" in text
    assert "second line" not in text
    assert "FAILED: kernel" in text  # scan's failed kernel check
    assert text.splitlines()[-1] == "  verdict: NOT OK: kernels + scan, model"


def test_steps_past_the_budget_are_skipped_and_said_so():
    fake = _Fake()
    outcomes = gpu_check.run("cuda", load=fake, budget_s=-1)
    assert fake.calls == []
    assert all(o.skipped for o in outcomes)
    assert "SKIPPED" in gpu_check.summary(outcomes)


def test_all_steps_passing_is_an_ok_verdict():
    outcomes = gpu_check.run("cuda", load=_Fake())
    assert all(o.ok for o in outcomes)
    assert gpu_check.summary(outcomes).endswith("verdict: all steps OK")
