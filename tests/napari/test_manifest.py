"""The npe2 manifest is valid, installed under the entry point, and every command imports."""

from __future__ import annotations

import importlib
from pathlib import Path

import gigavim.napari
import pytest

MANIFEST = Path(gigavim.napari.__file__).with_name("napari.yaml")


def test_manifest_validates_and_every_command_resolves() -> None:
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install -e '.[napari]')")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "gigavim"  # must equal the distribution name
    assert {r.command for r in manifest.contributions.readers} == {
        "gigavim.get_image_reader", "gigavim.get_zarr_reader"}
    if importlib.util.find_spec("napari") is None:
        pytest.skip("napari not installed: the widget module imports it")
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name


def test_installed_entry_point_finds_the_manifest() -> None:
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install -e '.[napari]')")
    manifest = npe2.PluginManifest.from_distribution("gigavim")
    assert manifest.contributions.sample_data[0].key == "cmu1-small-region"


def test_sample_data_is_the_bundled_slide() -> None:
    from gigavim.napari._sample_data import sample_slide_layers

    from gigavim.data import sample_slide

    [(data, kwargs, layer_type)] = sample_slide_layers()
    assert layer_type == "image" and kwargs["metadata"]["path"] == str(sample_slide())
    assert data.shape == (2967, 2220, 3)
