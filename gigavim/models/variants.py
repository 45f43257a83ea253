"""The released Vim sizes, registered under short names and the official hustvl/Vim names.

"+" models (stride 8) are the official fine-tuned finer-granularity variants: same weights
layout, a 27×27 position table at 224 px.
"""

from __future__ import annotations

from gigavim.models.architectures import register_model
from gigavim.models.vim import VisionMamba

_OFFICIAL_SUFFIX = "bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2"


def _vim(kwargs: dict, embed_dim: int, stride: int) -> VisionMamba:
    """The released layout at this width and stride; ``kwargs`` override anything."""
    cfg = dict(img_size=224, patch_size=16, stride=stride, depth=24, embed_dim=embed_dim, d_state=16,
               cls_token="middle", pos_embed_mode="learned", residual_in_fp32=True)
    cfg.update(kwargs)
    return VisionMamba(**cfg)


@register_model(aliases=[f"vim_tiny_patch16_224_{_OFFICIAL_SUFFIX}"])
def vim_tiny_patch16_224(**kwargs) -> VisionMamba:
    """Vim-Ti: D 192, 24 blocks, patch 16 (7.1M parameters with a 1000-class head)."""
    return _vim(kwargs, 192, 16)


@register_model(aliases=[f"vim_tiny_patch16_stride8_224_{_OFFICIAL_SUFFIX}"])
def vim_tiny_patch16_stride8_224(**kwargs) -> VisionMamba:
    """Vim-Ti+: Vim-Ti with patch stride 8 (4× the tokens)."""
    return _vim(kwargs, 192, 8)


@register_model(aliases=[f"vim_small_patch16_224_{_OFFICIAL_SUFFIX}"])
def vim_small_patch16_224(**kwargs) -> VisionMamba:
    """Vim-S: D 384, 24 blocks, patch 16 (26M parameters)."""
    return _vim(kwargs, 384, 16)


@register_model(aliases=[f"vim_small_patch16_stride8_224_{_OFFICIAL_SUFFIX}"])
def vim_small_patch16_stride8_224(**kwargs) -> VisionMamba:
    """Vim-S+: Vim-S with patch stride 8."""
    return _vim(kwargs, 384, 8)


@register_model(aliases=[
    "vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2"])
def vim_base_patch16_224(**kwargs) -> VisionMamba:
    """Vim-B: D 768, 24 blocks, patch 16 (98M parameters); its official name is spelled differently."""
    return _vim(kwargs, 768, 16)
