"""``--tta`` and ``--stain-norm`` on the command line: eval reports them; impossible ones are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave
from test_train_eval import always_foreground, run


def test_eval_with_tta_reports_the_views(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = always_foreground(tmp_path / "fg.pt")
    imsave(tmp_path / "a.png", np.full((20, 30, 3), 128, np.uint8), check_contrast=False)
    imsave(tmp_path / "m.png", np.ones((20, 30), np.uint8), check_contrast=False)
    pair = f"{tmp_path / 'a.png'}:{tmp_path / 'm.png'}"
    code, out, err = run(capsys, "eval", "--model", str(model), "--tta", "8", "--json", pair)
    assert code == 0, err
    result = json.loads(out)
    assert result["tta"] == 8 and result["overall"]["mean_iou"] == pytest.approx(1.0)
    code, out, err = run(capsys, "eval", "--model", str(model), "--tta", "4", pair)
    assert code == 0 and "TTA 4 views" in out


@pytest.mark.parametrize("command", ["segment", "eval"])
def test_an_impossible_tta_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       command: str) -> None:
    model = always_foreground(tmp_path / "fg.pt")
    imsave(tmp_path / "a.png", np.full((20, 30, 3), 128, np.uint8), check_contrast=False)
    imsave(tmp_path / "m.png", np.ones((20, 30), np.uint8), check_contrast=False)
    args = ([str(tmp_path / "a.png"), "-o", str(tmp_path / "out.tif")] if command == "segment"
            else [f"{tmp_path / 'a.png'}:{tmp_path / 'm.png'}"])
    code, _, err = run(capsys, command, "--model", str(model), "--tta", "3", *args)
    assert code != 0 and "--tta takes 1" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_stain_norm_with_a_model_without_a_reference_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = always_foreground(tmp_path / "fg.pt")
    imsave(tmp_path / "a.png", np.full((20, 30, 3), 128, np.uint8), check_contrast=False)
    imsave(tmp_path / "m.png", np.ones((20, 30), np.uint8), check_contrast=False)
    code, _, err = run(capsys, "eval", "--model", str(model), "--stain-norm",
                       f"{tmp_path / 'a.png'}:{tmp_path / 'm.png'}")
    assert code != 0 and "has no reference stain" in err and len(err.strip().splitlines()) == 1
