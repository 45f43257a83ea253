"""eval and train refuse images whose band count the model cannot use, before reading any pixels."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from engine.fakes import tiny_bundle
from rasterio.transform import Affine
from skimage.io import imsave

from gigavim.cli import main
from gigavim.errors import InputError, ModelError
from gigavim.train import TrainConfig, train
from gigavim.train.evaluate import evaluate

TINY_ARCH = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 32,
                          "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light"}}


def two_band_scene(folder: Path) -> tuple[str, str]:
    """A 2-band GeoTIFF (say red + near-infrared) and a matching 0/1 mask."""
    scene = folder / "scene.tif"
    profile = {"driver": "GTiff", "width": 40, "height": 32, "count": 2, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": Affine(10, 0, 500_000, 0, -10, 5_000_000)}
    with rasterio.open(scene, "w", **profile) as ds:
        ds.write(np.full((2, 32, 40), 9, dtype=np.uint8))
    mask = np.zeros((32, 40), np.uint8)
    mask[4:12, 4:20] = 1
    imsave(folder / "scene_mask.png", mask, check_contrast=False)
    return str(scene), str(folder / "scene_mask.png")


def rgb_tile(folder: Path, name: str = "rgb") -> tuple[str, str]:
    imsave(folder / f"{name}.png", np.full((32, 40, 3), 100, np.uint8), check_contrast=False)
    mask = np.zeros((32, 40), np.uint8)
    mask[10:20, 10:30] = 1
    imsave(folder / f"{name}_mask.png", mask, check_contrast=False)
    return str(folder / f"{name}.png"), str(folder / f"{name}_mask.png")


def test_eval_names_the_file_its_bands_and_the_model_before_reading_any_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []
    evaluate_module = importlib.import_module("gigavim.train.evaluate")  # the name is shadowed
    real_load = evaluate_module.load_train_image
    monkeypatch.setattr(evaluate_module, "load_train_image",
                        lambda path, *a, **kw: loaded.append(path) or real_load(path, *a, **kw))
    scene, mask = two_band_scene(tmp_path)
    with pytest.raises(ModelError) as err:
        evaluate(tiny_bundle(), [rgb_tile(tmp_path), (scene, mask)])
    assert str(err.value).startswith(f"{scene}: has 2 bands (gray, undefined) but model 'tiny-conv' "
                                     "wants 3 bands (red, green, blue)")
    assert loaded == []  # the good first image was not even read: the check comes first


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err.strip()


def test_eval_and_segment_refuse_a_band_mismatch_with_the_same_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene, mask = two_band_scene(tmp_path)
    by_eval = _cli_error(["eval", "--model", "land-water", f"{scene}:{mask}"], capsys)
    by_segment = _cli_error(["segment", scene, "--model", "land-water", "-o", str(tmp_path / "o.tif")],
                            capsys)
    assert by_eval == by_segment
    assert f"{scene}: has 2 bands (gray, undefined) but model 'land-water' wants 3 bands " in by_eval
    # and the same --bands mistakes
    args = ["--model", "land-water", "--bands", "1,2"]
    assert (_cli_error(["eval", *args, f"{scene}:{mask}"], capsys)
            == _cli_error(["segment", scene, *args, "-o", str(tmp_path / "o.tif")], capsys))


def test_eval_maps_bands_like_segment(tmp_path: Path) -> None:
    """A 4-band scene (blue, green, red, nir) scored with --bands 3,2,1 scores exactly like the
    same pixels saved as an RGB scene."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 32, 40), dtype=np.uint8)
    profile = {"driver": "GTiff", "width": 40, "height": 32, "dtype": "uint8", "crs": "EPSG:32633",
               "transform": Affine(10, 0, 500_000, 0, -10, 5_000_000)}
    with rasterio.open(tmp_path / "rgb.tif", "w", count=3, **profile) as ds:
        ds.write(rgb)
    with rasterio.open(tmp_path / "bgrn.tif", "w", count=4, photometric="MINISBLACK", **profile) as ds:
        ds.write(np.concatenate([rgb[::-1], rgb[:1] // 2]))
    _, mask = two_band_scene(tmp_path)
    bundle = tiny_bundle()
    with pytest.raises(ModelError, match="wants 3 bands"):
        evaluate(bundle, [(str(tmp_path / "bgrn.tif"), mask)])
    mapped = evaluate(bundle, [(str(tmp_path / "bgrn.tif"), mask)], bands="3,2,1")
    plain = evaluate(bundle, [(str(tmp_path / "rgb.tif"), mask)])
    assert mapped["overall"]["confusion_matrix"] == plain["overall"]["confusion_matrix"]


def test_training_images_with_different_bands_are_refused_before_loading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = importlib.import_module("gigavim.train.loop")
    monkeypatch.setattr(loop, "load_train_image", lambda *a, **kw: pytest.fail("an image was read"))
    first = rgb_tile(tmp_path)
    scene, mask = two_band_scene(tmp_path)
    out = tmp_path / "model.pt"
    cfg = TrainConfig(pairs=[first, (scene, mask)], out=str(out), arch=TINY_ARCH, patch=16,
                      batch_size=2, steps=1)
    with pytest.raises(InputError) as err:
        train(cfg)
    assert str(err.value).startswith(f"{scene}: has 2 bands but the first training image {first[0]} "
                                      "has 3")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["rgb.png", "rgb_mask.png", "scene.tif", "scene_mask.png"])  # no model, no state file


def test_a_resumed_model_refuses_images_of_another_band_count(tmp_path: Path) -> None:
    first = rgb_tile(tmp_path)
    cfg = TrainConfig(pairs=[first], out=str(tmp_path / "model.pt"), arch=TINY_ARCH, patch=16,
                      batch_size=2, steps=1, name="rgb-model")
    train(cfg)
    scene, mask = two_band_scene(tmp_path)
    again = TrainConfig(pairs=[(scene, mask)], out=str(tmp_path / "model.pt"), arch=TINY_ARCH,
                        patch=16, batch_size=2, steps=2, resume=str(tmp_path / "model.state.pt"))
    with pytest.raises(InputError, match=r"scene\.tif: has 2 bands but model 'rgb-model' \(resumed\) "
                                         r"expects 3"):
        train(again)


def test_train_cli_band_mismatch_is_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    first = rgb_tile(tmp_path)
    scene, mask = two_band_scene(tmp_path)
    out = tmp_path / "cli.pt"
    code = main(["train", ":".join(first), f"{scene}:{mask}", "-o", str(out), "--steps", "1",
                 "--arch", json.dumps({"backbone": TINY_ARCH["backbone"]})])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{scene}: has 2 bands but the first training image {first[0]} has 3" in err
    assert not out.exists() and not out.with_suffix(".state.pt").exists()
