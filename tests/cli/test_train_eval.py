"""``gigavim train``, ``gigavim eval`` and ``gigavim models`` from the command line.

The eval numbers are checked exactly against a hand count: the model's classifier is set to
predict "foreground" everywhere, so its confusion matrix follows from the masks alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.io import imsave

from gigavim.cli import main
from gigavim.models.bundle import ModelBundle, ModelMeta
from gigavim.models.factory import build_segmenter

ARCH = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 32,
                     "cls_token": "none", "pos_embed_mode": "sincos", "in_chans": 3},
        "head": {"kind": "light"}, "num_classes": 2}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def always_foreground(path: Path) -> Path:
    """A real bundle whose classifier ignores its features and always says class 1."""
    net = build_segmenter(**ARCH)
    convs = [m for m in net.head.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.zero_()
        convs[-1].bias.copy_(torch.tensor([0.0, 5.0]))
    meta = ModelMeta(name="always-fg", classes=["background", "object"], colors=[(0, 0, 0), (255, 0, 0)],
                     arch=ARCH, trained=True, tile=64, overlap=0)
    return ModelBundle(net, meta).save(path)


def test_eval_numbers_are_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = always_foreground(tmp_path / "fg.pt")
    image = np.full((20, 30, 3), 128, np.uint8)
    imsave(tmp_path / "a.png", image, check_contrast=False)
    imsave(tmp_path / "b.png", image, check_contrast=False)
    mask = np.zeros((20, 30), np.uint16)  # instance labels: three objects, 20 + 9 + 12 = 41 px
    mask[2:7, 3:7] = 1
    mask[10:13, 10:13] = 2
    mask[15:17, 20:26] = 3
    imsave(tmp_path / "a_mask.png", mask, check_contrast=False)
    imsave(tmp_path / "b_mask.png", np.zeros_like(mask), check_contrast=False)
    code, out, err = run(capsys, "eval", "--model", str(model), "--json",
                         f"{tmp_path / 'a.png'}:{tmp_path / 'a_mask.png'}",
                         f"{tmp_path / 'b.png'}:{tmp_path / 'b_mask.png'}")
    assert code == 0, err
    result = json.loads(out)
    a, b = result["images"]
    assert a["confusion_matrix"] == [[0, 559], [0, 41]]
    assert a["pixel_accuracy"] == pytest.approx(41 / 600)
    assert a["per_class"][1]["iou"] == pytest.approx(41 / 600)
    assert a["per_class"][1]["dice"] == pytest.approx(82 / 641)
    assert a["per_class"][0]["iou"] == 0.0 and a["per_class"][0]["dice"] == 0.0
    assert b["confusion_matrix"] == [[0, 600], [0, 0]]
    assert b["per_class"][1]["iou"] == 0.0  # predicted but absent: IoU 0, not undefined
    overall = result["overall"]
    assert overall["confusion_matrix"] == [[0, 1159], [0, 41]]
    assert overall["per_class"][1]["iou"] == pytest.approx(41 / 1200)
    assert overall["pixel_accuracy"] == pytest.approx(41 / 1200)


def test_eval_whole_image_context(real_data: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`--context image` scores each image as one sequence; the result says which context ran.
    A model that cannot stream (nuclei-he's FPN head) is refused in one line."""
    from gigavim.models.catalog import load_model

    tiles = real_data / "nuclei_miccai2015"
    pair = f"{tiles / 'image06.png'}:{tiles / 'image06_label.png'}"
    streamable = load_model("tissue")  # streamable; small tiles so that the two contexts differ
    streamable.meta.mpp, streamable.meta.tile, streamable.meta.overlap = None, 64, 16
    model = str(streamable.save(tmp_path / "tissue-native.pt"))
    scores = {}
    for context in ("tile", "image"):
        code, out, err = run(capsys, "eval", "--model", model, "--json", "--context", context, pair)
        assert code == 0, err
        result = json.loads(out)
        assert result["context"] == context
        scores[context] = result["overall"]["confusion_matrix"]
    assert scores["tile"] != scores["image"]
    code, _, err = run(capsys, "eval", "--model", "nuclei-he", "--image-mpp", "0.5", "--context", "image",
                       pair)
    assert code != 0 and "cannot run with whole-image context" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_bad_pair_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = always_foreground(tmp_path / "fg.pt")
    imsave(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8), check_contrast=False)
    code, _, err = run(capsys, "eval", "--model", str(model), f"{tmp_path / 'a.png'}:{tmp_path / 'none.png'}")
    assert code != 0 and "none.png: label file not found" in err and "Traceback" not in err
    code, _, err = run(capsys, "eval", "--model", "no-such-model", f"{tmp_path / 'a.png'}:x.png")
    assert code != 0 and "unknown model 'no-such-model'" in err and "known models" in err


def test_train_writes_a_bundle_eval_can_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, (64, 64, 3)).astype(np.uint8)
    lab = np.zeros((64, 64), np.uint8)
    img[10:30, 20:50] = 220
    lab[10:30, 20:50] = 255  # a 0/255 mask
    imsave(tmp_path / "x.png", img, check_contrast=False)
    imsave(tmp_path / "x_mask.png", lab, check_contrast=False)
    pair = f"{tmp_path / 'x.png'}:{tmp_path / 'x_mask.png'}"
    out = tmp_path / "cli.pt"
    code, stdout, err = run(capsys, "train", pair, "-o", str(out), "--classes", "background,bright",
                            "--arch", json.dumps({"backbone": ARCH["backbone"]}), "--patch", "32",
                            "--batch-size", "2", "--steps", "3", "--val-fraction", "0.25",
                            "--class-weights", "1,2.5", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["steps"] == 3 and summary["validation"]["fraction"] == 0.25
    assert summary["config"]["class_weights"] == [1.0, 2.5]
    code, stdout, err = run(capsys, "eval", "--model", str(out), pair, "--json")
    assert code == 0, err
    assert json.loads(stdout)["classes"] == ["background", "bright"]


def test_models_json_lists_the_bundled_models(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "models", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["name"] for r in rows} >= {"tissue", "nuclei-he", "land-water"}
    for r in rows:
        assert {"name", "task", "classes", "input_kind", "resolution", "size_bytes"} <= set(r)
        assert r["trained"] is True and r["size_bytes"] < 5_000_000


def test_train_options_from_a_config_file_and_clear_errors(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    imsave(tmp_path / "x.png", np.zeros((32, 32, 3), np.uint8), check_contrast=False)
    imsave(tmp_path / "x_mask.png", np.eye(32, dtype=np.uint8), check_contrast=False)
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"pairs": [[str(tmp_path / "x.png"), str(tmp_path / "x_mask.png")]],
                               "arch": {"backbone": ARCH["backbone"]}, "patch": 32, "batch_size": 2,
                               "steps": 1, "name": "from-config"}))
    code, out, err = run(capsys, "train", "--config", str(cfg), "-o", str(tmp_path / "c.pt"), "--json")
    assert code == 0, err
    assert json.loads(out)["config"]["name"] == "from-config"

    cfg.write_text(json.dumps({"pairs": [], "stepz": 3}))
    code, _, err = run(capsys, "train", "--config", str(cfg), "-o", str(tmp_path / "d.pt"))
    assert code != 0 and "unknown training option(s): stepz" in err and "Traceback" not in err

    code, _, err = run(capsys, "train", "--config", str(tmp_path / "c.pt"), "--resume", str(cfg),
                       "-o", str(tmp_path / "e.pt"))
    assert code != 0 and "not a valid config file" in err

    code, _, err = run(capsys, "train", f"{tmp_path / 'x.png'}:{tmp_path / 'x_mask.png'}", "-o",
                       str(tmp_path / "f.pt"), "--resume", str(cfg))
    assert code != 0 and "not a readable gigavim training-state file" in err and "Traceback" not in err


def test_train_bad_arch_json_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    imsave(tmp_path / "x.png", np.zeros((32, 32, 3), np.uint8), check_contrast=False)
    imsave(tmp_path / "x_mask.png", np.eye(32, dtype=np.uint8), check_contrast=False)
    code, _, err = run(capsys, "train", f"{tmp_path / 'x.png'}:{tmp_path / 'x_mask.png'}", "-o",
                       str(tmp_path / "m.pt"), "--arch", "{backbone: 1}")
    assert code != 0 and "--arch" in err and "not valid JSON" in err and "Traceback" not in err


def test_train_bad_class_weights_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    imsave(tmp_path / "x.png", np.zeros((32, 32, 3), np.uint8), check_contrast=False)
    imsave(tmp_path / "x_mask.png", np.eye(32, dtype=np.uint8), check_contrast=False)
    pair = f"{tmp_path / 'x.png'}:{tmp_path / 'x_mask.png'}"
    for weights, message in (("1,x", "expected numbers"), ("1,2,3", "one non-negative weight per class")):
        code, _, err = run(capsys, "train", pair, "-o", str(tmp_path / "m.pt"), "--class-weights", weights)
        assert code != 0 and message in err and "Traceback" not in err
