"""Test-time augmentation: average a network's class probabilities over flips and 90° rotations.

A segmentation network is not exactly equivariant to flips or rotations (a Vim scans its tokens
in one row-major order; stain, shadows and texture have no preferred direction), so averaging
the probabilities of several views of a tile — each view's output mapped back onto the tile —
cancels part of that orientation noise. The views are the dihedral group of the square, in a
fixed order: 1 (identity: off), 2 (+ left-right flip), 4 (+ up-down flip and 180° rotation:
the flips, which keep any tile's shape) or 8 (+ the four transposing views: 90°/270° rotations
and both diagonal flips; a non-square input runs transposed, which a patch-based network takes
as long as both sides are a multiple of its patch size, as the padded tiles are).

:class:`TTANet` wraps the network itself, so everything that runs ``bundle.net`` on tiles (the
engine's tile mode, ``gigavim eval``, batches) gets the same augmentation with no change: it
returns ``log(mean probabilities)``, whose softmax is exactly the mean of the views'
softmaxes (a single-logit binary head: ``logit(mean sigmoid)``). It is a pure function of the
tile, so tiling, blending, ``--resume`` and streamed vs single-pass stay exact; the views run one
after another, so memory stays one view's. Whole-image context runs the backbone layer by layer
and is not wrapped: asking for both is a usage error.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from gigavim.errors import UsageError
from gigavim.models.bundle import ModelBundle, ModelMeta

VIEW_COUNTS = (1, 2, 4, 8)
# (transpose first, then flip these dims) for each view; every view is its own inverse's mirror
# image: forward = transpose then flip, back = flip then transpose.
_VIEWS: tuple[tuple[bool, tuple[int, ...]], ...] = (
    (False, ()), (False, (-1,)), (False, (-2,)), (False, (-2, -1)),
    (True, ()), (True, (-1,)), (True, (-2,)), (True, (-2, -1)),
)
_TINY = torch.finfo(torch.float32).tiny  # log(0) would be -inf: the engine refuses non-finite logits


def to_view(x: torch.Tensor, view: int) -> torch.Tensor:
    """(B, C, H, W) → the ``view``-th dihedral view (the transposing views swap H and W)."""
    transpose, dims = _VIEWS[view]
    if transpose:
        x = x.transpose(-2, -1)
    return torch.flip(x, dims) if dims else x


def from_view(y: torch.Tensor, view: int) -> torch.Tensor:
    """The inverse of :func:`to_view`: a view's output back onto the input's pixel grid."""
    transpose, dims = _VIEWS[view]
    if dims:
        y = torch.flip(y, dims)
    return y.transpose(-2, -1) if transpose else y


class TTANet(nn.Module):
    """``net`` averaged over its first ``views`` dihedral views (see the module docstring)."""

    def __init__(self, net: nn.Module, views: int) -> None:
        super().__init__()
        if views not in VIEW_COUNTS:
            raise UsageError(f"test-time augmentation takes 1, 2, 4 or 8 views, not {views!r}")
        self.net = net
        self.views = views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for view in range(self.views):
            logits = from_view(self.net(to_view(x, view)), view).float()
            p = torch.softmax(logits, dim=1) if logits.shape[1] > 1 else torch.sigmoid(logits)
            total = p if total is None else total + p
        assert total is not None
        mean = (total / self.views).clamp(_TINY, 1.0)
        if mean.shape[1] > 1:
            return torch.log(mean)
        return torch.log(mean) - torch.log1p(-mean.clamp(max=1.0 - 1e-7))


def resolve_views(meta: ModelMeta, tta: int | bool | None, context: str = "tile") -> int:
    """The number of views a run uses: ``tta`` if given (``True``: 8, ``False``: 1), else the
    model's default (``meta.tta``), which whole-image context (not augmentable) overrides to 1."""
    if tta is None:
        return 1 if context == "image" else int(meta.tta)
    views = (8 if tta else 1) if isinstance(tta, bool) else tta
    if views not in VIEW_COUNTS:
        raise UsageError(f"--tta takes 1 (off), 2, 4 or 8 views, not {tta!r}")
    if views > 1 and context == "image":
        raise UsageError("--tta runs on tiles; whole-image context (--context image) cannot use it")
    return views


def with_tta(bundle: ModelBundle, tta: int | bool | None = None, context: str = "tile") -> ModelBundle:
    """The bundle whose network averages over the views :func:`resolve_views` picks (the same
    bundle when that is 1). Its ``meta.tta`` records the views, so the run's settings do too."""
    views = resolve_views(bundle.meta, tta, context)
    net = bundle.net.net if isinstance(bundle.net, TTANet) else bundle.net
    meta = dataclasses.replace(bundle.meta, tta=views)
    if views == 1:
        unchanged = net is bundle.net and bundle.meta.tta == 1
        return bundle if unchanged else ModelBundle(net=net, meta=meta)
    return ModelBundle(net=TTANet(net, views).eval(), meta=meta)
