"""`gigavim train --help` shows what every unset option defaults to, and a run stopped by its time
limit says so in its output (issue 10: a ten-minute run gave IoU 0.05 and nothing said why)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gigavim.cli import app
from gigavim.cli.train import BACKBONE_DEFAULTS
from gigavim.train.config import TrainConfig


def _help() -> str:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0
    return " ".join(result.output.split())


def test_help_shows_the_training_defaults() -> None:
    text = _help()
    cfg = TrainConfig(pairs=[("a.png", "b.png")], out="m.pt")
    for option, value in (("--steps", cfg.steps), ("--batch-size", cfg.batch_size), ("--patch", cfg.patch),
                          ("--lr", cfg.lr), ("--tile", cfg.tile), ("--val-gap", cfg.val_gap)):
        after = text.split(f"{option} ", 1)[1].split(" --", 1)[0]
        assert f"[default: ({value})]" in after, (option, after)
    assert "[default: (192 (Vim-tiny))]" in text and "[default: (24 (Vim-tiny))]" in text


def test_backbone_defaults_shown_are_the_backbones_own() -> None:
    from gigavim.models.vim import VisionMamba

    params = inspect.signature(VisionMamba).parameters
    assert {k: params[k].default for k in BACKBONE_DEFAULTS} == BACKBONE_DEFAULTS


def test_help_imports_no_torch() -> None:
    """Showing the defaults reads the config dataclass only: every command stays quick to start."""
    code = "import sys, gigavim.cli.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_run_stopped_by_its_time_limit_says_so_on_the_terminal(tmp_path: Path) -> None:
    import numpy as np
    from skimage.io import imsave

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    imsave(tmp_path / "a.png", img, check_contrast=False)
    imsave(tmp_path / "a_label.png", (img[..., 0] > 128).astype(np.uint8), check_contrast=False)
    arch = ('{"backbone": {"embed_dim": 8, "depth": 1, "patch_size": 4, "stride": 4, "cls_token": "none", '
            '"pos_embed_mode": "sincos"}, "head": {"kind": "light"}}')
    result = CliRunner().invoke(app, [
        "train", f"{tmp_path / 'a.png'}:{tmp_path / 'a_label.png'}", "-o", str(tmp_path / "m.pt"),
        "--arch", arch, "--patch", "16", "--batch-size", "2", "--steps", "100000", "--tile", "48",
        "--overlap", "0", "--time-limit", "0.005"])
    assert result.exit_code == 0, result.output
    assert "stopped early: time limit of 0.005 min reached after" in result.output
    assert "of 100000 planned steps" in result.output
