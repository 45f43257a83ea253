"""Official state_dict layout, config translation and checkpoint-file loading."""

from __future__ import annotations

import argparse
import builtins

import pytest
import torch

from gigavim.errors import ModelError
from gigavim.models import (
    create_model,
    infer_official_config,
    load_official_checkpoint,
    read_checkpoint,
    vim_from_official_config,
)
from gigavim.models.official import RELEASED_FLAGS

# vim-official.md §2, tiny (D=192, E=384, N=16, R=12).
TOP = [("cls_token", (1, 1, 192)), ("pos_embed", (1, 197, 192)),
       ("patch_embed.proj.weight", (192, 3, 16, 16)), ("patch_embed.proj.bias", (192,)),
       ("head.weight", (1000, 192)), ("head.bias", (1000,))]
PER_LAYER = [
    ("mixer.A_log", (384, 16)), ("mixer.D", (384,)), ("mixer.A_b_log", (384, 16)), ("mixer.D_b", (384,)),
    ("mixer.in_proj.weight", (768, 192)), ("mixer.conv1d.weight", (384, 1, 4)), ("mixer.conv1d.bias", (384,)),
    ("mixer.x_proj.weight", (44, 384)), ("mixer.dt_proj.weight", (384, 12)), ("mixer.dt_proj.bias", (384,)),
    ("mixer.conv1d_b.weight", (384, 1, 4)), ("mixer.conv1d_b.bias", (384,)),
    ("mixer.x_proj_b.weight", (44, 384)), ("mixer.dt_proj_b.weight", (384, 12)),
    ("mixer.dt_proj_b.bias", (384,)), ("mixer.out_proj.weight", (192, 384)), ("norm.weight", (192,)),
]
TINY_KEYS = TOP + [(f"layers.{i}.{k}", s) for i in range(24) for k, s in PER_LAYER]
TINY_KEYS += [("norm_f.weight", (192,))]
TINY_CONFIG = dict(img_size=224, patch_size=16, stride=16, depth=24, embed_dim=192, d_state=16, channels=3,
                   num_classes=1000, **RELEASED_FLAGS)


def test_tiny_state_dict_has_the_official_415_keys_in_order():
    sd = vim_from_official_config(TINY_CONFIG).state_dict()
    assert len(sd) == 415
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == TINY_KEYS


def test_registered_official_names_and_parameter_counts():
    """Counts from vim-official.md §1.2; the long official names are aliases."""
    name = "vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2"
    with torch.device("meta"):
        assert sum(p.numel() for p in create_model(name).parameters()) == 7_250_344
        base = "vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2"
        assert sum(p.numel() for p in create_model(base).parameters()) == 97_598_440
        assert sum(p.numel() for p in create_model("vim_small_patch16_224").parameters()) == 25_796_584
    with pytest.raises(ModelError, match="unknown model"):
        create_model("vim_huge_patch16_224")


def test_golden_state_dict_has_the_same_layout(golden):
    ours = vim_from_official_config(golden["config"]).state_dict()
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in golden["state_dict"].items()]


def test_unsupported_official_options_are_refused():
    with pytest.raises(ModelError, match="if_rope"):
        vim_from_official_config({**TINY_CONFIG, "if_rope": True})
    with pytest.raises(ModelError, match="bimamba_type"):
        vim_from_official_config({**TINY_CONFIG, "bimamba_type": "v1"})
    with pytest.raises(ModelError, match="unknown official"):
        vim_from_official_config({**TINY_CONFIG, "if_warp_drive": True})


def test_config_is_inferred_from_shapes(golden):
    cfg = infer_official_config(golden["state_dict"])
    assert {k: cfg[k] for k in ("img_size", "patch_size", "stride", "depth", "embed_dim", "d_state",
                                "channels", "num_classes")} == {
        k: golden["config"][k] for k in ("img_size", "patch_size", "stride", "depth", "embed_dim",
                                         "d_state", "channels", "num_classes")}
    # A "+" checkpoint: 27×27 table at 224 px with patch 16 means stride 8.
    plus = vim_from_official_config({**TINY_CONFIG, "stride": 8, "depth": 1}).state_dict()
    assert infer_official_config(plus)["stride"] == 8


def _official_file(path, model, ema_model):
    args = argparse.Namespace(model="vim_small_test", input_size=32, lr=1e-3, output_dir="out")
    opt = torch.optim.AdamW(model.parameters())
    torch.save({"model": model.state_dict(), "model_ema": ema_model.state_dict(),
                "optimizer": opt.state_dict(), "lr_scheduler": {"last_epoch": 3}, "epoch": 3,
                "scaler": {"scale": 65536.0}, "args": args}, path)


def test_official_checkpoint_file_loads_strictly(tmp_path, golden):
    model = vim_from_official_config(golden["config"]).double()
    model.load_state_dict(golden["state_dict"])
    ema = vim_from_official_config(golden["config"]).double()
    _official_file(tmp_path / "ckpt.pth", model, ema)

    loaded = load_official_checkpoint(tmp_path / "ckpt.pth")
    with torch.no_grad():
        logits = loaded(golden["input"])
    assert (logits - golden["logits"]).abs().max() < 1e-10
    loaded_ema = load_official_checkpoint(tmp_path / "ckpt.pth", use_ema=True)
    assert torch.equal(loaded_ema.head.weight, ema.head.weight)
    assert not torch.equal(loaded_ema.head.weight, loaded.head.weight)
    assert isinstance(read_checkpoint(tmp_path / "ckpt.pth")["args"], argparse.Namespace)


class _Evil:
    """Pickles as a call to ``open(marker, "w")``: loading it unsafely would create the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def test_checkpoint_with_disallowed_global_is_refused_without_running_it(tmp_path, small_kwargs):
    marker = tmp_path / "pwned"
    sd = create_model("vim_tiny_patch16_224", depth=1, embed_dim=32).state_dict()
    torch.save({"model": sd, "args": _Evil(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ModelError, match=r"evil\.pth: refusing: the file pickles .*open"):
        load_official_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_bad_checkpoint_files_give_one_line_errors(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pth: not a readable"):
        load_official_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(ModelError, match=r"missing\.pth: checkpoint file not found"):
        load_official_checkpoint(tmp_path / "missing.pth")
    torch.save({"model": {"foo": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match=r"other\.pth: not a Vim state_dict"):
        load_official_checkpoint(tmp_path / "other.pth")
    torch.save({"epoch": 1}, tmp_path / "noema.pth")
    with pytest.raises(ModelError, match="no 'model_ema'"):
        load_official_checkpoint(tmp_path / "noema.pth", use_ema=True)
