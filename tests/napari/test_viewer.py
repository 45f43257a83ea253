"""A real napari window: the sample slide, the segment widget's result as overlay, a screenshot.

Needs a display with OpenGL (Qt's offscreen platform has none). CI gets one from Xvfb: with the
``pytest-xvfb`` plugin and Debian's ``xvfb`` installed plain ``pytest`` starts it, or run the
suite under ``xvfb-run -a``. Set ``GIGAVIM_NAPARI_SCREENSHOT=path.png`` to keep the picture.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from gigavim.data import sample_slide

napari = pytest.importorskip("napari", reason="napari not installed (pip install -e '.[napari]')")

pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen",
    reason="needs a display with OpenGL: install Debian's xvfb (+ pytest-xvfb) or run under xvfb-run -a",
)


def _wait_for(condition, timeout_s: float = 120.0) -> None:
    """Run the Qt event loop until ``condition()`` holds (the worker reports through it)."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the segment widget"
        QApplication.processEvents()
        time.sleep(0.05)


def _settle(seconds: float = 0.5) -> None:
    """Let Qt lay the window out again (a removed dock widget frees its width lazily)."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)


def test_widget_segments_the_open_slide_and_the_overlay_shows(tmp_path: Path) -> None:
    from gigavim.napari._viewer import open_viewer
    from gigavim.napari._widget import segment_widget

    viewer = open_viewer(sample_slide(), show=True)
    try:
        widget = segment_widget()
        dock = viewer.window.add_dock_widget(widget)
        widget.image.value = viewer.layers["CMU-1-Small-Region.svs"]
        widget.model.value = "tissue"
        widget.resolution.value = 8.0
        assert widget.context.value == "tile"  # the default; the choice reaches gigavim.segment
        assert list(widget.context.choices) == ["tile", "image"]
        widget.context.value = "image"
        widget.output.value = tmp_path / "seg.ome.zarr"
        widget()
        _wait_for(lambda: any(isinstance(layer, napari.layers.Labels) for layer in viewer.layers))
        labels = next(layer for layer in viewer.layers if isinstance(layer, napari.layers.Labels))
        assert labels.scale[-2:] == pytest.approx((8.0, 8.0))
        assert zarr.open_group(tmp_path / "seg.ome.zarr", mode="r").attrs["gigavim"]["settings"][
            "context"] == "image"
        # napari's own File > Open route finds the plugin's reader through the npe2 manifest
        opened = viewer.open(tmp_path / "seg.ome.zarr", plugin="gigavim")
        # the widget writes no copy of the slide (it is open already): the labels alone
        assert [type(layer).__name__ for layer in opened] == ["Labels"]
        assert opened[0].scale[-2:] == pytest.approx((8.0, 8.0))
        for layer in opened:
            viewer.layers.remove(layer)

        viewer.window.remove_dock_widget(dock)  # give the canvas the whole window back
        _settle()
        viewer.reset_view()
        with_overlay = viewer.screenshot(canvas_only=True, flash=False)
        labels.visible = False
        slide_only = viewer.screenshot(canvas_only=True, flash=False)
        labels.visible = True
    finally:
        viewer.close()
    if os.environ.get("GIGAVIM_NAPARI_SCREENSHOT"):
        import imageio.v3 as iio

        iio.imwrite(os.environ["GIGAVIM_NAPARI_SCREENSHOT"], with_overlay)

    rgb = slide_only[..., :3].astype(np.int16)
    assert rgb.std() > 20, "the slide did not render (blank canvas)"
    assert (rgb.sum(-1) > 600).mean() > 0.1, "expected the slide's white background on screen"
    changed = np.abs(with_overlay[..., :3].astype(np.int16) - rgb).sum(-1) > 30
    assert 0.05 < changed.mean() < 0.9, "the tissue overlay should tint part of the slide, not all"
