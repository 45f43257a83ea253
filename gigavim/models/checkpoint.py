"""Safe loading of official hustvl/Vim checkpoint files (no arbitrary code runs).

Released ``.pth`` files are ``torch.save`` dicts ``{model, model_ema, optimizer, lr_scheduler,
epoch, scaler, args}`` where ``args`` is an ``argparse.Namespace``. Plain ``torch.load`` would
unpickle anything; here ``weights_only=True`` allows tensors and containers plus an explicit
allow-list, and a file that needs any other global is refused with a :class:`ModelError`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gigavim.errors import ModelError
from gigavim.models.bundle_checks import safe_torch_load
from gigavim.models.official import infer_official_config, vim_from_official_config
from gigavim.models.vim import VisionMamba

SAFE_GLOBALS: list[Any] = [argparse.Namespace]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` and :data:`SAFE_GLOBALS`; errors → ModelError."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint file not found")
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return safe_torch_load(path, "PyTorch checkpoint", map_location=map_location)


def checkpoint_state_dict(ckpt: Any, use_ema: bool = False, source: str = "checkpoint"
                          ) -> dict[str, torch.Tensor]:
    """The model weights inside a checkpoint dict (``model`` / ``model_ema``) or a bare state_dict."""
    if not isinstance(ckpt, Mapping):
        raise ModelError(f"{source}: expected a dict of weights, found {type(ckpt).__name__}")
    key = "model_ema" if use_ema else "model"
    if key in ckpt:
        sd = ckpt[key]
    elif use_ema:
        raise ModelError(f"{source}: no 'model_ema' weights in this checkpoint")
    elif "state_dict" in ckpt:
        sd = ckpt["state_dict"]
    else:
        sd = ckpt
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{source}: '{key}' does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_official_checkpoint(path: str | Path, use_ema: bool = False, **overrides: Any) -> VisionMamba:
    """Build the model an official checkpoint file describes and load its weights strictly.

    The architecture is inferred from tensor shapes (and ``args`` when the file has them);
    ``overrides`` are VisionMamba keyword arguments (e.g. ``pos_embed_mode``). Returns the model
    in eval mode, in the checkpoint's dtype.
    """
    ckpt = read_checkpoint(path)
    sd = checkpoint_state_dict(ckpt, use_ema, source=str(path))
    args = ckpt.get("args") if isinstance(ckpt, Mapping) else None
    try:
        config = infer_official_config(sd, args)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    model = vim_from_official_config(config, **overrides).to(sd["patch_embed.proj.weight"].dtype)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{path}: weights do not fit the inferred Vim architecture ({first})") from exc
    return model.eval()


def adapt_input_channels(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Patch-embedding weights (D, C, p, p) for ``in_chans`` bands (timm's ``adapt_input_conv``).

    One band: the RGB filters summed (a grey image then gives the RGB response). More bands:
    the RGB filters repeated cyclically and scaled by C/in_chans so activations keep their size.
    """
    have = weight.shape[1]
    if in_chans == have:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // have)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (have / in_chans)


def adapt_state_dict(sd: Mapping[str, torch.Tensor], model: VisionMamba, source: str = "checkpoint"
                     ) -> dict[str, torch.Tensor]:
    """An official backbone state_dict made to fit ``model``: new grid, class-token layout, bands.

    The classifier head is dropped; the position table is converted with
    :func:`~gigavim.models.pos_embed.convert_pos_table` (middle-cls aware unless the model sets
    ``official_quirk``); a different band count adapts the patch-embedding filters.
    """
    from gigavim.models.pos_embed import convert_pos_table

    out = {k: v for k, v in sd.items() if not k.startswith("head.")}
    src_layout = "middle" if "cls_token" in out else "none"
    if "pos_embed" in out:
        if model.pos_embed is None:
            del out["pos_embed"]
        else:
            pos = out["pos_embed"]
            side = math.isqrt(pos.shape[1] - int(src_layout != "none"))
            try:
                out["pos_embed"] = convert_pos_table(pos, (side, side), src_layout, model.base_grid,
                                                     model.cls_layout, model.official_quirk)
            except ValueError as exc:
                raise ModelError(f"{source}: {exc}") from None
    if "cls_token" in out and model.cls_token is None:
        del out["cls_token"]
    key = "patch_embed.proj.weight"
    want = model.patch_embed.proj.weight.shape
    if key in out:
        w = out[key]
        if w.shape[0] != want[0] or w.shape[2:] != want[2:]:
            raise ModelError(f"{source}: patch embedding {tuple(w.shape)} does not fit the model's "
                             f"{tuple(want)} (embed_dim / patch size differ)")
        out[key] = adapt_input_channels(w, want[1])
    return out


def load_pretrained_backbone(model: VisionMamba, path: str | Path, use_ema: bool = False) -> VisionMamba:
    """Initialise ``model`` from an official checkpoint file (training-time; weights only).

    Every backbone tensor must be present with a matching shape; only parameters the checkpoint
    cannot have (a class token or position table the official model lacked) keep their init.
    """
    sd = adapt_state_dict(checkpoint_state_dict(read_checkpoint(path), use_ema, str(path)), model, str(path))
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"{path}: backbone weights do not fit ({first})") from exc
    allowed_missing = {"cls_token", "pos_embed"}
    if unexpected or set(missing) - allowed_missing:
        bad = sorted(set(missing) - allowed_missing)[:3] + sorted(unexpected)[:3]
        raise ModelError(f"{path}: backbone weights do not fit the model (e.g. {', '.join(bad)})")
    return model
