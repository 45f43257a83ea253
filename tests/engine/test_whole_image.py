"""segment(..., context="image"): the whole image as one sequence, through the normal outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import zarr

from gigavim.cli import main
from gigavim.data import sample_slide
from gigavim.engine import segment
from gigavim.engine.plan import resolve_resolution
from gigavim.engine.reader import TileReader
from gigavim.errors import ModelError, UsageError
from gigavim.io import open_image
from gigavim.io.base import Window
from gigavim.models.catalog import load_model

from .fakes import ArraySource, tiny_bundle


def _ome(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    root = zarr.open_group(str(path), mode="r")
    probs = root["probabilities/0"][:] if "probabilities" in root else None
    return root["labels/segmentation/0"][:], probs, dict(root.attrs["gigavim"])


def _single_pass(path: Path, model: str) -> tuple[torch.Tensor, np.ndarray]:
    """Logits of the bundle's net on the whole working-resolution image (read as tile mode
    reads a tile), and which pixels hold data."""
    bundle = load_model(model)
    with open_image(path) as src:
        res = resolve_resolution(src, model_mpp=bundle.meta.mpp, model_gsd_m=bundle.meta.gsd_m)
        pixels, valid = TileReader(src, res).read(Window(0, 0, *res.shape))
    with torch.inference_mode():
        return bundle.net.eval()(bundle.normalize(pixels[None]))[0], valid


def _clear(logits: torch.Tensor) -> np.ndarray:
    """Pixels whose top class wins by a margin (float32 near-ties may go either way)."""
    top2 = logits.topk(2, dim=0).values
    return (top2[0] - top2[1] > 1e-3).numpy()


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("whole") / "sample.ome.zarr"
    result = segment(sample_slide(), [out, out.with_suffix("").with_suffix(".geojson")],
                     model="tissue", context="image", probabilities=True)
    return out, result.to_dict()


def test_labels_equal_the_single_pass_over_the_whole_slide(sample_run: tuple[Path, dict]) -> None:
    out, summary = sample_run
    labels, probs, meta = _ome(out)
    logits, valid = _single_pass(sample_slide(), "tissue")
    assert labels.shape == tuple(summary["shape"]) == tuple(logits.shape[1:])
    assert summary["tiles_foreground"] == summary["tiles_total"]  # no background rule in play here
    clear = _clear(logits) & valid
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(labels[clear], logits.argmax(0).numpy()[clear])
    expected_p = torch.softmax(logits, 0).numpy()[:, valid]
    assert np.abs(probs[:, valid].astype(np.float32) / 255 - expected_p).max() <= 0.5 / 255 + 1e-3
    assert (labels[~valid] == 0).all()  # off the scanned area: background, as in tile mode
    assert meta["settings"]["context"] == "image"
    assert set(np.unique(labels)) == {0, 1}


def test_geojson_is_written_from_the_same_labels(sample_run: tuple[Path, dict]) -> None:
    out, _ = sample_run
    features = json.loads(out.with_suffix("").with_suffix(".geojson").read_text())["features"]
    assert features and all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in features)


def test_resume_continues_an_interrupted_run(tmp_path: Path, sample_run: tuple[Path, dict]) -> None:
    out = tmp_path / "resumed.ome.zarr"
    calls = []

    def interrupt(p) -> None:
        calls.append(p)
        if p.tiles_done == p.tiles_total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        segment(sample_slide(), [out], model="tissue", context="image", probabilities=True,
                progress=interrupt)
    seen = []
    segment(sample_slide(), [out], model="tissue", context="image", probabilities=True, resume=True,
            progress=seen.append)
    assert calls[0].tiles_done == 0 < calls[0].tiles_total  # the total first, as tile mode reports
    assert seen[0].tiles_done > 1  # finished layers were kept
    assert seen[0].pixels_done == 0  # ...and are not this run's work (MP/s would be inflated)
    assert seen[-1].tiles_done == seen[-1].tiles_total
    labels, probs, _ = _ome(out)
    want_labels, want_probs, _ = _ome(sample_run[0])
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(probs, want_probs)  # the same numbers, as in tile mode


def test_raster_nodata_keeps_the_nodata_label(tmp_path: Path, real_data: Path) -> None:
    path = real_data / "geo" / "RGB.byte.tif"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    out = tmp_path / "scene.tif"
    segment(path, [out], context="image")
    with rasterio.open(out) as ds, rasterio.open(path) as src:
        labels = ds.read(1)
        assert ds.nodata == 255 and ds.crs == src.crs and ds.transform == src.transform
        nodata = (src.read() == 0).all(axis=0)
    np.testing.assert_array_equal(labels == 255, nodata)
    assert set(np.unique(labels[~nodata])) <= {0, 1}
    logits, valid = _single_pass(path, "land-water")
    np.testing.assert_array_equal(valid, ~nodata)
    clear = _clear(logits) & valid
    np.testing.assert_array_equal(labels[clear], logits.argmax(0).numpy()[clear])


def test_cli_context_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli.ome.zarr"
    assert main(["segment", "--sample", "--context", "image", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["outputs"] == [str(out)] and summary["context"] == "image"
    assert _ome(out)[2]["settings"]["context"] == "image"


def test_unknown_context_is_a_one_line_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UsageError, match="--context"):
        segment(sample_slide(), [tmp_path / "x.ome.zarr"], context="sequence")
    assert main(["segment", "--sample", "--context", "sequence", "-o", str(tmp_path / "y.ome.zarr")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gigavim: error:") and "--context" in err[0]


def test_a_model_that_cannot_stream_is_refused_and_leaves_no_work_dir(tmp_path: Path) -> None:
    out = tmp_path / "conv.ome.zarr"
    with pytest.raises(ModelError, match="cannot run with whole-image context") as err:
        segment(sample_slide(), [out], model=tiny_bundle(mpp=8.0), context="image")
    assert "\n" not in str(err.value) and "'tiny-conv'" in str(err.value)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_model_that_cannot_stream_is_refused_before_any_pixel_is_read(tmp_path: Path) -> None:
    """Even on blank glass (no tile to compute) image mode with such a model must not 'succeed'."""
    glass = ArraySource([np.full((256, 256, 3), 245, dtype=np.uint8)], mpp=8.0)
    out = tmp_path / "glass.ome.zarr"
    with pytest.raises(ModelError, match="'tiny-conv' cannot run with whole-image context"):
        segment(glass, [out], model=tiny_bundle(mpp=8.0), context="image")
    assert glass.reads == [] and not list(tmp_path.iterdir())


def test_streaming_files_are_gone_before_the_outputs_are_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once every block is journalled nothing reads them again (a resume neither): the outputs get
    the disk space, as in tile mode where the tile caches are gone by then."""
    import importlib

    segment_module = importlib.import_module("gigavim.engine.segment")  # the module, not the function
    seen: list[list[str]] = []
    real_write = segment_module.write_outputs

    def write_outputs(label_map: object, dests: list[Path], **kwargs: object) -> object:
        seen.append(sorted(p.name for p in dests[0].with_name(dests[0].name + ".gigavim-work").iterdir()))
        return real_write(label_map, dests, **kwargs)

    monkeypatch.setattr(segment_module, "write_outputs", write_outputs)
    out = tmp_path / "sample.ome.zarr"
    segment(sample_slide(), [out], model="tissue", context="image")
    assert seen and "whole-image" not in seen[0] and "labels.zarr" in seen[0]


def test_blank_glass_is_background_without_streaming(tmp_path: Path) -> None:
    """No foreground tile: nothing to stream; progress still gets its (empty) total, as in tile mode."""
    glass = ArraySource([np.full((512, 512, 3), 245, dtype=np.uint8)])
    out, seen = tmp_path / "glass.ome.zarr", []
    result = segment(glass, [out], model="tissue", context="image", progress=seen.append)
    assert [(p.tiles_done, p.tiles_total) for p in seen] == [(0, 0)]
    assert result.tiles_foreground == result.tiles_computed == 0
    assert (_ome(out)[0] == 0).all()


def test_resume_after_a_kill_while_the_valid_mask_was_being_created(tmp_path: Path) -> None:
    """A kill (or a full disk) can leave ``valid.npy`` without its header: it is rewritten with the
    embedding anyway, so a resume must start it again rather than fail on it."""
    out = tmp_path / "killed.ome.zarr"

    def kill(p) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        segment(sample_slide(), [out], model="tissue", context="image", progress=kill)
    valid = out.with_name(out.name + ".gigavim-work") / "whole-image" / "valid.npy"
    valid.write_bytes(b"")
    segment(sample_slide(), [out], model="tissue", context="image", resume=True)
    assert _ome(out)[0].any()
