"""Translate between hustvl/Vim's constructor kwargs / state_dicts and gigavim's VisionMamba.

``vim_from_official_config`` accepts the keyword arguments the official ``VisionMamba`` takes
(as stored in the golden vectors' ``config``) and builds a model with the official state_dict
layout. ``infer_official_config`` recovers those kwargs from a checkpoint's tensor shapes, since
released files store weights, not architecture. Options gigavim does not implement (RoPE, the
uni-directional or v1 mixers, paired-layer flipping) raise :class:`ModelError` instead of
silently computing something else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from gigavim.errors import ModelError
from gigavim.models.vim import VisionMamba

# What every released midclstok model passes; missing flags default to these.
RELEASED_FLAGS: dict[str, Any] = {
    "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "final_pool_type": "mean",
    "if_abs_pos_embed": True, "if_rope": False, "if_rope_residual": False, "bimamba_type": "v2",
    "if_cls_token": True, "if_divide_out": True, "use_middle_cls_token": True,
}
_GEOMETRY = {"img_size": 224, "patch_size": 16, "stride": 16, "depth": 24, "embed_dim": 192,
             "d_state": 16, "channels": 3, "num_classes": 1000}
# Accepted and irrelevant at inference, or no-ops in the official code itself.
_IGNORED = {"fused_add_norm", "final_pool_type", "flip_img_sequences_ratio", "if_bimamba", "device",
            "dtype", "initializer_cfg", "pt_hw_seq_len", "if_random_cls_token_position",
            "if_random_token_rank", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay"}
# Features of the official class that gigavim does not implement: (key, value allowed).
_UNSUPPORTED = {"if_rope": False, "if_rope_residual": False, "bimamba_type": "v2", "rms_norm": True,
                "if_bidirectional": False, "use_double_cls_token": False, "init_layer_scale": None,
                "ssm_cfg": None}


def vim_from_official_config(config: Mapping[str, Any], **overrides: Any) -> VisionMamba:
    """A VisionMamba equal to ``hustvl/Vim``'s ``VisionMamba(**config)`` (state_dict and forward).

    ``overrides`` are gigavim keyword arguments applied on top (e.g. ``pos_embed_mode``,
    ``drop_path_rate``, ``official_quirk``).
    """
    cfg = {**_GEOMETRY, **RELEASED_FLAGS, **dict(config)}
    if "if_devide_out" in cfg:  # the February 2024 spelling of the same flag
        cfg["if_divide_out"] = bool(cfg.pop("if_devide_out"))
    for key, allowed in _UNSUPPORTED.items():
        if key in cfg and cfg[key] != allowed:
            raise ModelError(f"official Vim option {key}={cfg[key]!r} is not supported by gigavim "
                             f"(only {key}={allowed!r})")
    known = set(_GEOMETRY) | set(RELEASED_FLAGS) | _IGNORED | set(_UNSUPPORTED) | {
        "drop_rate", "drop_path_rate", "norm_epsilon", "if_divide_out"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ModelError(f"unknown official Vim config keys: {', '.join(unknown)}")
    if cfg["if_cls_token"]:
        cls_token = "middle" if cfg["use_middle_cls_token"] else "first"
    else:
        cls_token = "none"
    kwargs = dict(
        img_size=cfg["img_size"], patch_size=cfg["patch_size"], stride=cfg["stride"], depth=cfg["depth"],
        embed_dim=cfg["embed_dim"], d_state=cfg["d_state"], in_chans=cfg["channels"],
        num_classes=cfg["num_classes"], drop_rate=cfg.get("drop_rate", 0.0),
        drop_path_rate=cfg.get("drop_path_rate", 0.0), norm_eps=cfg.get("norm_epsilon", 1e-5),
        residual_in_fp32=cfg["residual_in_fp32"], cls_token=cls_token,
        pos_embed_mode="learned" if cfg["if_abs_pos_embed"] else "none",
        divide_out=cfg["if_divide_out"],
    )
    kwargs.update(overrides)
    return VisionMamba(**kwargs)


def _arg(args: Any, name: str) -> Any:
    if isinstance(args, Mapping):
        return args.get(name)
    return getattr(args, name, None)


def infer_official_config(state_dict: Mapping[str, torch.Tensor], args: Any = None) -> dict[str, Any]:
    """Official constructor kwargs that reproduce ``state_dict``'s shapes.

    embed_dim, channels, patch, depth, d_state and num_classes come from tensor shapes. The
    stride is not stored in any tensor: it is taken from the training ``args`` (model name
    ``..._stride8_...``) when present, otherwise solved from the position-table grid and the
    image size (``args.input_size`` or 224), e.g. 27×27 tokens at 224 px with patch 16 → 8.
    """
    try:
        proj = state_dict["patch_embed.proj.weight"]
        a_log = state_dict["layers.0.mixer.A_log"]
    except KeyError as exc:
        raise ModelError(f"not a Vim state_dict (missing {exc.args[0]!r})") from None
    if any(k.startswith("rope.") for k in state_dict):
        raise ModelError("RoPE Vim checkpoints (the January 2024 release) are not supported")
    if "layers.0.mixer.conv1d_b.weight" not in state_dict:
        raise ModelError("not a bimamba-v2 Vim state_dict (no backward-branch '_b' parameters)")
    embed_dim, channels, patch = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[2])
    if proj.shape[2] != proj.shape[3]:
        raise ModelError(f"non-square patches {tuple(proj.shape[2:])} are not supported")
    depth = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k)))
    has_cls = "cls_token" in state_dict
    img = _arg(args, "input_size") or 224
    cfg: dict[str, Any] = {
        "patch_size": patch, "depth": depth, "embed_dim": embed_dim, "d_state": int(a_log.shape[1]),
        "channels": channels,
        "num_classes": int(state_dict["head.weight"].shape[0]) if "head.weight" in state_dict else 0,
        "if_cls_token": has_cls, "use_middle_cls_token": has_cls,
        "if_abs_pos_embed": "pos_embed" in state_dict,
    }
    expected_inner = 2 * embed_dim
    if a_log.shape[0] != expected_inner:
        raise ModelError(f"mixer width {a_log.shape[0]} is not 2 × embed_dim {embed_dim} (expand ≠ 2)")
    if state_dict["layers.0.mixer.dt_proj.weight"].shape[1] != math.ceil(embed_dim / 16):
        raise ModelError("dt_rank differs from ceil(embed_dim/16), which the official models use")
    name_stride = re.search(r"stride(\d+)", str(_arg(args, "model") or ""))
    stride = int(name_stride.group(1)) if name_stride else None
    if "pos_embed" in state_dict:
        tokens = int(state_dict["pos_embed"].shape[1]) - int(has_cls)
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ModelError(f"position table of {tokens} patch tokens is not a square grid")
        if stride is None:
            stride = _solve_stride(side, patch, _arg(args, "input_size"))
        img = (side - 1) * stride + patch
    cfg["stride"] = stride or patch
    cfg["img_size"] = int(img)
    return cfg


def _solve_stride(side: int, patch: int, input_size: int | None) -> int:
    """The stride that puts ``side`` tokens across ``input_size`` pixels (or 224 px for a
    released stride, patch or patch/2); the patch size when nothing fits."""
    if side > 1:
        img = input_size or 224
        stride, rest = divmod(img - patch, side - 1)
        allowed = range(1, patch + 1) if input_size else (patch, patch // 2)
        if rest == 0 and stride in allowed:
            return stride
    return patch
