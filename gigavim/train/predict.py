"""A small in-memory tiled predictor: class probabilities for an image array.

Used by validation during training and by ``gigavim eval``, on images at the model's resolution
(a :class:`~gigavim.train.working_image.WorkingImage` reads each tile through the engine's
``TileReader``, or an in-memory array). It tiles and blends exactly as ``gigavim.segment``'s tile
mode does — the engine's :class:`~gigavim.engine.plan.TileGrid` (same tile origins, last tile
flush with the image end), :class:`~gigavim.engine.runner.Predictor` (edge padding to the patch
multiple, float16 probabilities) and :func:`~gigavim.engine.blend.tile_weight` (cosine ramps on
shared edges) — so evaluation scores what ``segment`` produces; only the accumulation differs
(in memory here, block by block on disk there). Whole-slide inference is the engine's job.
"""

from __future__ import annotations

import numpy as np
import torch

from gigavim.engine.blend import tile_weight
from gigavim.engine.plan import TileGrid
from gigavim.engine.runner import Predictor
from gigavim.models.bundle import ModelBundle
from gigavim.train.working_image import WorkingImage


@torch.inference_mode()
def predict_probabilities(bundle: ModelBundle, image: np.ndarray | WorkingImage, *, tile: int = 256,
                          overlap: int = 32, batch_size: int = 4,
                          device: str | torch.device = "cpu") -> np.ndarray:
    """(K, H, W) float32 class probabilities for a raw (H, W, bands) image, tiled as segment does."""
    h, w = image.shape[:2]
    grid = TileGrid((h, w), tile, overlap)
    predictor = Predictor(bundle, str(device))
    probs = np.zeros((bundle.num_classes, h, w), dtype=np.float32)
    weights = np.zeros((h, w), dtype=np.float32)
    tiles = grid.tiles()
    for i in range(0, len(tiles), batch_size):
        chunk = tiles[i:i + batch_size]
        windows = [grid.tile_window(*t) for t in chunk]
        pixels = np.stack([np.asarray(image[win.y:win.y + win.height, win.x:win.x + win.width],
                                      dtype=np.float32) for win in windows])
        for t, win, p in zip(chunk, windows, predictor(pixels), strict=True):
            wt = tile_weight(grid, *t)
            region = (slice(win.y, win.y + win.height), slice(win.x, win.x + win.width))
            probs[(slice(None), *region)] += p.astype(np.float32) * wt
            weights[region] += wt
    return probs / weights[None]


def predict_labels(bundle: ModelBundle, image: np.ndarray | WorkingImage, **kwargs: object) -> np.ndarray:
    """(H, W) uint8 class ids (argmax of :func:`predict_probabilities`)."""
    return predict_probabilities(bundle, image, **kwargs).argmax(axis=0).astype(np.uint8)
