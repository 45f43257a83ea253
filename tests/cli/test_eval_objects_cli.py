"""`gigavim eval --instances`: object scores on the command line, and bad label files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave
from test_train_eval import always_foreground, run


def test_eval_instances_on_a_binary_model_scores_its_connected_components(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = always_foreground(tmp_path / "fg.pt")  # one object covering everything
    imsave(tmp_path / "a.png", np.full((20, 30, 3), 128, np.uint8), check_contrast=False)
    mask = np.zeros((20, 30), np.uint16)
    mask[2:7, 3:7] = 1
    mask[10:13, 10:13] = 2
    imsave(tmp_path / "a_mask.png", mask, check_contrast=False)
    pair = f"{tmp_path / 'a.png'}:{tmp_path / 'a_mask.png'}"
    code, out, err = run(capsys, "eval", "--model", str(model), "--instances", "--json", pair)
    assert code == 0, err
    objects = json.loads(out)["overall"]["instances"]
    assert objects["settings"]["method"] == "connected-components"
    pooled = objects["pooled"]
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (0, 1, 2)
    # each nucleus's best match is the one 600-px object (Kumar's AJI counts it in both unions)
    assert pooled["aji"] == pytest.approx((20 + 9) / (600 + 600))
    code, out, err = run(capsys, "eval", "--model", str(model), "--instances", pair)
    assert code == 0 and "AJI" in out and "pooled" in out  # the objects table
    code, out, _ = run(capsys, "eval", "--model", str(model), "--json", pair)
    assert "instances" not in json.loads(out)["overall"]  # a semantic model without the flag


def test_eval_instances_bad_label_file_is_one_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    model = always_foreground(tmp_path / "fg.pt")
    imsave(tmp_path / "a.png", np.full((20, 30, 3), 128, np.uint8), check_contrast=False)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    code, _, err = run(capsys, "eval", "--model", str(model), "--instances",
                       f"{tmp_path / 'a.png'}:{tmp_path / 'bad.png'}")
    assert code != 0 and "bad.png" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
