"""A small in-memory tiled predictor: class probabilities for an image array.

Used by validation during training and by ``gigavim eval``, on images at the model's resolution
(a :class:`~gigavim.train.working_image.WorkingImage` reads each tile through the engine's
``TileReader``, or an in-memory array). It tiles and blends exactly as ``gigavim.segment``'s tile
mode does — the engine's :class:`~gigavim.engine.plan.TileGrid` (same tile origins, last tile
flush with the image end), :class:`~gigavim.engine.runner.Predictor` (its padding,
float16 probabilities) and :func:`~gigavim.engine.blend.tile_weight` (cosine ramps on
shared edges) — so evaluation scores what ``segment`` produces; only the accumulation differs
(in memory here, block by block on disk there). ``context="image"`` runs the image as ONE
sequence through the engine's whole-image path instead (streamed through a temporary folder),
so ``gigavim eval --context image`` measures what ``segment --context image`` writes.
Whole-slide inference is the engine's job.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from gigavim.engine.blend import tile_weight
from gigavim.engine.plan import TileGrid
from gigavim.engine.runner import Predictor
from gigavim.engine.whole_image import ImageRows, stream_logits, window_probabilities
from gigavim.errors import UsageError
from gigavim.io.base import Window
from gigavim.models.bundle import ModelBundle
from gigavim.train.working_image import WorkingImage


@torch.inference_mode()
def predict_probabilities(bundle: ModelBundle, image: np.ndarray | WorkingImage, *, tile: int = 256,
                          overlap: int = 32, batch_size: int = 4,
                          device: str | torch.device = "cpu", context: str = "tile") -> np.ndarray:
    """(K, H, W) float32 class probabilities for a raw (H, W, bands) image, as segment makes them."""
    h, w = image.shape[:2]
    predictor = Predictor(bundle, str(device))
    if context == "image":
        return _whole_image(predictor, image)
    if context != "tile":
        raise UsageError(f"context must be 'tile' or 'image', not {context!r}")
    grid = TileGrid((h, w), tile, overlap)
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


def _whole_image(predictor: Predictor, image: np.ndarray | WorkingImage) -> np.ndarray:
    """The whole image as one Vim sequence (the engine's ``context="image"`` path), in memory."""
    h, w = image.shape[:2]

    def read(first: int, last: int) -> np.ndarray:
        return np.asarray(image[first:last, 0:w], dtype=np.float32)

    rows = ImageRows(read, (h, w), predictor.multiple, predictor.bundle.normalize)
    with tempfile.TemporaryDirectory(prefix="gigavim-eval-") as tmp:
        logits = stream_logits(predictor, rows, Path(tmp))
        return window_probabilities(predictor, logits, Window(0, 0, h, w))


def predict_labels(bundle: ModelBundle, image: np.ndarray | WorkingImage, **kwargs: object) -> np.ndarray:
    """(H, W) uint8 class ids (argmax of :func:`predict_probabilities`)."""
    return predict_probabilities(bundle, image, **kwargs).argmax(axis=0).astype(np.uint8)
