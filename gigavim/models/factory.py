"""Build a segmentation network from a JSON-able ``arch`` dict (what model bundles store).

``arch`` example::

    {"backbone": {"name": "vim_tiny_patch16_224", "pos_embed_mode": "learned+sincos"},
     "head": {"kind": "fpn", "channels": 128}, "num_classes": 3}

``backbone`` is either a registered variant (``name``) with keyword overrides or plain
:class:`~gigavim.models.vim.VisionMamba` keywords. ``head.kind`` is "light" or "fpn"; ``indices``
chooses the tapped blocks (light: the last; fpn: the ends of the four quarters, as the official
segmentation configs) and ``norm_features`` whether taps go through the final RMSNorm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigavim.errors import ModelError
from gigavim.models.architectures import create_model
from gigavim.models.heads import HEADS
from gigavim.models.segmenter import VimSegmenter
from gigavim.models.vim import VisionMamba


def default_indices(kind: str, depth: int) -> list[int]:
    """Light head: the last block. FPN: blocks ending each quarter (5, 11, 17, 23 for depth 24)."""
    quarters = sorted({max(0, depth * q // 4 - 1) for q in (1, 2, 3, 4)})
    return quarters if kind == "fpn" and len(quarters) == 4 else [depth - 1]


def build_backbone(backbone: dict[str, Any]) -> VisionMamba:
    """A classifier-free VisionMamba from a registered ``name`` + overrides, or from keywords."""
    cfg = dict(backbone)
    name = cfg.pop("name", None)
    cfg["num_classes"] = 0
    try:
        return create_model(name, **cfg) if name else VisionMamba(**cfg)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"invalid backbone architecture {backbone!r}: {exc}") from None


def build_segmenter(backbone: dict[str, Any] | None = None, num_classes: int | None = None,
                    head: dict[str, Any] | None = None, pretrained_backbone: str | Path | None = None,
                    pretrained_use_ema: bool = False, **unknown: Any) -> VimSegmenter:
    """The network for ``arch``; ``pretrained_backbone`` (an official checkpoint file, used at
    training time and not stored in ``arch``) initialises the backbone's weights."""
    if unknown:
        raise ModelError(f"unknown model architecture keys: {', '.join(sorted(unknown))}")
    if not isinstance(backbone, dict) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError("a model architecture needs a 'backbone' dict and 'num_classes' ≥ 1")
    net = build_backbone(backbone)
    if pretrained_backbone is not None:
        from gigavim.models.checkpoint import load_pretrained_backbone

        load_pretrained_backbone(net, pretrained_backbone, pretrained_use_ema)
    head_cfg = dict(head or {"kind": "light"})
    kind = head_cfg.pop("kind", "light")
    if kind not in HEADS:
        raise ModelError(f"unknown head kind {kind!r}; known: {', '.join(HEADS)}")
    indices = head_cfg.pop("indices", None) or default_indices(kind, net.depth)
    norm_features = head_cfg.pop("norm_features", True)
    if kind == "light":
        head_cfg.setdefault("num_inputs", len(set(net.resolve_indices(indices))))
    try:
        head_module = HEADS[kind](embed_dim=net.embed_dim, num_classes=int(num_classes), stride=net.stride,
                                  patch_size=net.patch_size, **head_cfg)
        return VimSegmenter(net, head_module, indices, norm_features)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"invalid head architecture {head!r}: {exc}") from None
