"""A small in-memory tiled predictor: class probabilities for an image array.

Used by validation during training and by ``gigavim eval``, on images at the model's resolution
(a :class:`~gigavim.train.working_image.WorkingImage` reads each tile through the engine's
``TileReader``, or an in-memory array). (Whole-slide, disk-backed inference is the engine's job:
``gigavim.segment``.) Overlapping tiles are blended with the engine's cosine ramp
(:func:`gigavim.engine.blend.cosine_ramp`), so evaluation scores what ``segment`` produces.
"""

from __future__ import annotations

import numpy as np
import torch

from gigavim.engine.blend import cosine_ramp
from gigavim.models.bundle import ModelBundle
from gigavim.train.dataset import crop_padded
from gigavim.train.working_image import WorkingImage


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering ``0..length`` with tiles of ``tile`` every ``stride`` pixels."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


@torch.inference_mode()
def predict_probabilities(bundle: ModelBundle, image: np.ndarray | WorkingImage, *, tile: int = 256,
                          overlap: int = 32, batch_size: int = 4, fill: float = 0.0,
                          device: str | torch.device = "cpu") -> np.ndarray:
    """(K, H, W) float32 class probabilities for a raw (H, W, bands) image."""
    h, w = image.shape[:2]
    backbone = bundle.meta.arch.get("backbone") or {}
    multiple = int(backbone.get("stride") or backbone.get("patch_size") or 16)
    tile = max(multiple, min(tile, _round_up(max(h, w), multiple)))
    tile = _round_up(tile, multiple)
    stride = max(1, tile - overlap)
    probs = np.zeros((bundle.num_classes, h, w), dtype=np.float32)
    weights = np.zeros((h, w), dtype=np.float32)
    ys, xs = tile_starts(h, tile, stride), tile_starts(w, tile, stride)
    windows = [(y, x) for y in ys for x in xs]
    net = bundle.net.to(device).eval()
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        tiles = np.stack([crop_padded(image, y, x, tile, fill) for y, x in chunk])
        out = torch.softmax(net(bundle.normalize(tiles).to(device)).float(), dim=1).cpu().numpy()
        for (y, x), p in zip(chunk, out, strict=True):
            hh, ww = min(tile, h - y), min(tile, w - x)
            # Ramp only the edges another tile also covers, as the engine does.
            wy = cosine_ramp(tile, overlap, rise=y > ys[0], fall=y < ys[-1])[:hh]
            wx = cosine_ramp(tile, overlap, rise=x > xs[0], fall=x < xs[-1])[:ww]
            wt = wy[:, None] * wx[None, :]
            probs[:, y : y + hh, x : x + ww] += p[:, :hh, :ww] * wt
            weights[y : y + hh, x : x + ww] += wt
    return probs / np.maximum(weights, 1e-12)[None]


def predict_labels(bundle: ModelBundle, image: np.ndarray | WorkingImage, **kwargs: object) -> np.ndarray:
    """(H, W) uint8 class ids (argmax of :func:`predict_probabilities`)."""
    return predict_probabilities(bundle, image, **kwargs).argmax(axis=0).astype(np.uint8)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
