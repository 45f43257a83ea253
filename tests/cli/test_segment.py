"""``gigavim segment`` end to end: a real (tiny, untrained) Vim bundle file, real inputs, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import torch
import zarr

from gigavim.cli import main
from gigavim.models.bundle import ModelBundle, ModelMeta
from gigavim.models.factory import build_segmenter

TINY_VIM = {"backbone": {"embed_dim": 32, "depth": 2, "patch_size": 16, "stride": 16, "cls_token": "none",
                         "pos_embed_mode": "sincos"},
            "head": {"kind": "light"}, "num_classes": 2}


def _bundle_file(tmp_path: Path, *, input_kind: str = "slide", trained: bool = False) -> Path:
    torch.manual_seed(0)
    meta = ModelMeta(name="tiny-vim", classes=["background", "tissue"], colors=[(0, 0, 0), (230, 60, 120)],
                     arch=TINY_VIM, input_kind=input_kind, mpp=8.0 if input_kind == "slide" else None,
                     tile=256, overlap=32, trained=trained)
    return ModelBundle(build_segmenter(**TINY_VIM).eval(), meta).save(tmp_path / "tiny-vim.pt")


def test_segment_the_sample_slide_to_all_three_formats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _bundle_file(tmp_path)
    outs = [tmp_path / "s.ome.zarr", tmp_path / "s.tif", tmp_path / "s.geojson"]
    args = ["segment", "--sample", "--model", str(model), "--allow-untrained", "--json"]
    assert main([*args, *(a for o in outs for a in ("-o", str(o)))]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "untrained" in captured.err  # a warning, not silence
    assert summary["trained"] is False and summary["mpp"] == pytest.approx(8.0)
    assert summary["shape"] == [round(2967 * 0.499 / 8), round(2220 * 0.499 / 8)]
    assert summary["outputs"] == [str(o) for o in outs] and all(o.exists() for o in outs)
    labels = zarr.open_group(str(outs[0]), mode="r")["labels/segmentation/0"]
    assert list(labels.shape) == summary["shape"]
    with rasterio.open(outs[1]) as ds:
        assert ds.shape == tuple(summary["shape"])
    features = json.loads(outs[2].read_text())["features"]
    assert all(f["properties"]["classification"]["name"] in ("background", "tissue") for f in features)


def test_untrained_model_without_the_flag_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _bundle_file(tmp_path)
    code = main(["segment", "--sample", "--model", str(model), "-o", str(tmp_path / "x.tif")])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "--allow-untrained" in err and "Traceback" not in err
    assert not (tmp_path / "x.tif").exists()


def test_existing_output_needs_overwrite(
    tmp_path: Path, real_data: Path, capsys: pytest.CaptureFixture
) -> None:
    model = _bundle_file(tmp_path, input_kind="raster")
    out = tmp_path / "rgb.tif"
    args = ["segment", str(real_data / "geo" / "RGB.byte.tif"), "-o", str(out), "--model", str(model),
            "--allow-untrained", "--tile", "512", "--overlap", "64"]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert "RGB.byte.tif" in line and "MP/s" in line and "foreground" in line and str(out) in line
    assert main(args) != 0
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("args, message", [
    (["bad_input/broken.svs"], "broken.svs"),
    (["bad_input/unreadable.svs", "--level", "0"], "unreadable.svs"),  # opens, pixels corrupt
    (["bad_input/corrupt.tif"], "corrupt.tif"),
    (["bad_input/all-nodata.tif"], "all-nodata.tif"),
    (["wsi/CMU-1-Small-Region.svs", "--mpp", "1", "--level", "0"], "only one of"),
    (["wsi/CMU-1-Small-Region.svs", "--device", "cuda"], "cuda"),
    (["wsi/CMU-1-Small-Region.svs", "--overlap", "900"], "--overlap"),
    (["wsi/CMU-1-Small-Region.svs", "--workers", "0"], "--workers"),
])
def test_bad_requests_fail_with_one_line(tmp_path: Path, real_data: Path, capsys: pytest.CaptureFixture,
                                         args: list[str], message: str) -> None:
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model = _bundle_file(tmp_path)
    code = main(["segment", str(real_data / args[0]), *args[1:], "--model", str(model), "--allow-untrained",
                 "-o", str(tmp_path / "out.tif")])
    err = capsys.readouterr().err
    assert code != 0 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny-vim.pt"]  # no output, no work dir left


def test_truncated_slide_fails_with_one_line(tmp_path: Path, real_data: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    data = (real_data / "wsi" / "CMU-1-Small-Region.svs").read_bytes()
    truncated = tmp_path / "truncated.svs"
    truncated.write_bytes(data[: len(data) // 2])
    code = main(["segment", str(truncated), "--model", str(_bundle_file(tmp_path)), "--allow-untrained",
                 "-o", str(tmp_path / "t.tif")])
    err = capsys.readouterr().err
    assert code != 0 and "truncated.svs" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "t.tif").exists() and not (tmp_path / "t.tif.gigavim-work").exists()


def test_input_or_sample_is_required(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["segment", "-o", str(tmp_path / "a.tif")]) != 0
    assert "--sample" in capsys.readouterr().err


def test_sample_with_the_bundled_models(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The defaults end to end: bundled ``tissue`` model segments, and masks, the sample slide."""
    out = tmp_path / "sample.tif"
    assert main(["segment", "--sample", "-o", str(out), "--tissue-model", "tissue", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "tissue" and summary["trained"] is True
    assert summary["mpp"] == pytest.approx(4.0)  # the model's training resolution
    assert 0.25 < summary["foreground_fraction"] < 0.5  # a skin section on a wide margin of glass
    with rasterio.open(out) as ds:
        assert ds.shape == tuple(summary["shape"])
