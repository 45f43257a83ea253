"""Every benchmark name is a CLI choice and a module with a typed ``run`` (no drift between them)."""

from __future__ import annotations

import inspect

import pytest

from gigavim.benchmarks import DEVICE_AWARE, NAMES, module
from gigavim.cli.bench import Benchmark


def test_cli_choices_are_the_benchmarks_plus_all_and_the_gpu_check():
    assert [b.value for b in Benchmark] == [*NAMES, "all", "gpu-check"]


@pytest.mark.parametrize("name", NAMES)
def test_each_name_imports_a_module_whose_run_takes_what_the_cli_passes(name: str):
    params = inspect.signature(module(name).run).parameters
    assert {"quick", "progress"} <= params.keys()
    assert ("device" in params) == (name in DEVICE_AWARE)


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="one of scan, model, segment, whole-image, readers, writers"):
        module("whole_image")
