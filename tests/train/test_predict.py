"""The in-memory predictor used by `gigavim eval` and validation blends tiles like the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from engine.fakes import ArraySource, tiny_bundle
from skimage.io import imread as imread_rgb
from skimage.io import imsave

from gigavim.engine import segment
from gigavim.errors import UsageError
from gigavim.train.evaluate import evaluate
from gigavim.train.predict import predict_labels, predict_probabilities


def _image(h: int = 200, w: int = 260) -> np.ndarray:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = 127 + 100 * np.sin(yy / 13.0)[..., None] * np.cos(xx / 17.0)[..., None]
    return np.clip(smooth + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def test_tiled_prediction_equals_one_pass_away_from_tile_edges() -> None:
    bundle, image = tiny_bundle(), _image()
    whole = predict_probabilities(bundle, image, tile=512, overlap=0)
    tiled = predict_probabilities(bundle, image, tile=64, overlap=24)
    # A 5×5 receptive field sees padding within 2 px of a tile edge; the cosine ramp gives those
    # pixels almost no weight wherever another tile covers them. At the image border itself the
    # padding differs (edge-replicated vs the network's own zero padding), so compare the interior.
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert np.abs(tiled - whole)[inner].max() < 3 / 255
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-3)  # float16 tiles, as the engine
    labels = predict_labels(bundle, image, tile=64, overlap=24)
    assert (labels == whole.argmax(0))[inner[1:]].mean() > 0.999


def test_without_overlap_the_seams_show() -> None:
    bundle, image = tiny_bundle(), _image()
    whole = predict_probabilities(bundle, image, tile=512, overlap=0)
    seamed = predict_probabilities(bundle, image, tile=64, overlap=0)
    assert np.abs(seamed - whole)[:, 4:-4, 4:-4].max() > 10 / 255


def test_eval_tiles_and_blends_exactly_as_segment(tmp_path: Path) -> None:
    """Validation and `gigavim eval` must score what `segment` writes: same tiles, padding, weights."""
    bundle, image = tiny_bundle(), _image(150, 230)  # edge tiles flush with the end, odd sizes
    mine = predict_probabilities(bundle, image, tile=60, overlap=20)
    out = tmp_path / "seg.zarr"
    segment(ArraySource([image], kind="image", mpp=None), [out], model=bundle, level=0, tile=60,
            overlap=20, probabilities=True)
    written = zarr.open_group(str(out), mode="r")["probabilities/0"][:].astype(np.float32)
    assert np.abs(np.round(mine * 255) - written).max() <= 1  # uint8 storage, float16 tile cache


def test_eval_refuses_mask_values_beyond_the_model_classes(tmp_path: Path) -> None:
    """A 3-class model scored on a mask holding 5 must not silently drop those pixels."""
    imsave(tmp_path / "a.png", _image(40, 50), check_contrast=False)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:10, 5:10] = 5
    imsave(tmp_path / "a_mask.png", mask, check_contrast=False)
    with pytest.raises(UsageError, match=r"a_mask\.png: label value 5 is not a class id of the 3"):
        evaluate(tiny_bundle(classes=3), [(str(tmp_path / "a.png"), str(tmp_path / "a_mask.png"))])


def test_an_unavailable_device_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(UsageError, match="no CUDA GPU"):
        evaluate(tiny_bundle(), [(str(tmp_path / "a.png"), str(tmp_path / "m.png"))], device="cuda")
    with pytest.raises(UsageError, match="unknown device 'gpu'"):
        evaluate(tiny_bundle(), [(str(tmp_path / "a.png"), str(tmp_path / "m.png"))], device="gpu")


def test_training_refuses_an_overlap_segment_would_refuse(tmp_path: Path) -> None:
    """The bundle's tile/overlap become segment's defaults, so training checks the engine's rule."""
    from gigavim.train.config import TrainConfig

    with pytest.raises(UsageError, match=r"overlap must be between 0 and half the tile \(32\)"):
        TrainConfig(pairs=[("a.png", "m.png")], out=str(tmp_path / "m.pt"), tile=64, overlap=40)
    assert TrainConfig(pairs=[("a.png", "m.png")], out=str(tmp_path / "m.pt"), tile=64, overlap=32)


def test_image_context_equals_the_model_on_the_whole_image(real_data: Path) -> None:
    """`eval --context image` scores the single pass over the whole image (segment's image mode)."""
    import torch

    from gigavim.models.catalog import load_model

    bundle = load_model("tissue")  # a streamable bundled model (nuclei-he's FPN head is tile-only)
    image = np.asarray(imread_rgb(real_data / "nuclei_miccai2015/image06.png"), dtype=np.float32)[..., :3]
    got = predict_probabilities(bundle, image, context="image")
    with torch.inference_mode():  # 459 px wide: the network pads to its patch grid itself
        want = torch.softmax(bundle.net(bundle.normalize(image[None])).float(), 1)[0].numpy()
    assert np.abs(got - want).max() < 1e-3
    tiled = predict_probabilities(bundle, image, tile=64, overlap=16)
    assert np.abs(tiled - want).max() > 0.05  # tiles see less context: the two modes differ


def test_image_context_refuses_a_model_that_cannot_stream_before_reading(tmp_path: Path) -> None:
    from gigavim.errors import ModelError

    with pytest.raises(ModelError, match="cannot run with whole-image context") as err:
        evaluate(tiny_bundle(), [(str(tmp_path / "missing.png"), str(tmp_path / "m.png"))], context="image")
    assert "\n" not in str(err.value)
