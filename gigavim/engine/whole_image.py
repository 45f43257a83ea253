"""``segment(..., context="image")``: the whole working-resolution image as ONE Vim sequence.

Tile mode runs independent overlapping tiles and blends them; here the model sees every token
of the image in one row-major sequence (:class:`~gigavim.models.streaming.WholeImageStreamer`,
layer by layer, bands of token rows on disk), so context reaches across the whole slide or scene.
The input side is tile mode's: the same :class:`TileReader` resampling, the same padding and
normalisation as :class:`Predictor`. The output side too: per-pixel probabilities and labels are
made block by block (``upsample_to_image`` of the token logits on a crop with a margin, so block
edges are exactly the whole-map upsampling) into the run's work-dir arrays, with tile mode's
background rule (pixels under no foreground tile: background for slides; rasters' nodata pixels:
the nodata label), so the writers and their metadata work unchanged.

Resume: finished layers are kept in the work dir, so ``--resume`` continues from the last
finished layer (and skips blocks already written).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gigavim.engine.merger import write_block
from gigavim.engine.progress import Progress, ProgressCallback
from gigavim.engine.reader import TileReader
from gigavim.engine.runner import Predictor
from gigavim.io.base import Window
from gigavim.models.streaming import (
    DEFAULT_BAND_TOKENS,
    RowArray,
    StepCallback,
    WholeImageStreamer,
    upsample_window,
)

if TYPE_CHECKING:
    from gigavim.engine.segment import _Run

STREAM_DIR = "whole-image"


RowsRead = Callable[[int, int], np.ndarray]
"""(first row, end row) → (rows, width, bands) raw pixels of the unpadded working image."""


class ImageRows:
    """Rows of the padded, normalised working image: the network input tile mode would build.

    ``read`` gives raw rows of the (height, width) image; rows past the bottom repeat the last
    one and columns are edge-padded to ``padded_hw`` (as :class:`Predictor` pads a tile), then
    ``normalize`` (the bundle's) makes the network input.
    """

    def __init__(self, read: RowsRead, shape: tuple[int, int], multiple: int,
                 normalize: Callable[[np.ndarray], torch.Tensor]) -> None:
        self.read, self.normalize = read, normalize
        self.height, self.width = shape
        self.padded_hw = (self.height + -self.height % multiple, self.width + -self.width % multiple)

    def __call__(self, y0: int, y1: int) -> torch.Tensor:
        """(bands, y1 − y0, padded width) network input of padded-image rows y0..y1."""
        rows = np.clip(np.arange(y0, y1), 0, self.height - 1)
        first = int(rows[0])
        pixels = self.read(first, int(rows[-1]) + 1)[rows - first]
        pad_w = self.padded_hw[1] - self.width
        if pad_w:
            pixels = np.pad(pixels, ((0, 0), (0, pad_w), (0, 0)), mode="edge")
        return self.normalize(pixels[None])[0]


def stream_logits(predictor: Predictor, rows: ImageRows, workdir: Path,
                  progress: StepCallback | None = None, band_tokens: int = DEFAULT_BAND_TOKENS,
                  ) -> np.ndarray:
    """Token-grid logits (K, gh, gw) of the whole padded image, streamed through ``workdir``."""
    streamer = WholeImageStreamer(predictor.net, workdir, device=predictor.device,
                                  band_tokens=band_tokens, name=predictor.bundle.meta.name)
    return streamer.logits(rows, rows.padded_hw, progress)


def window_probabilities(predictor: Predictor, logits: np.ndarray, window: Window) -> np.ndarray:
    """(K, h, w) class probabilities of one pixel window, as tile mode computes them."""
    pe = predictor.net.backbone.patch_embed
    block_logits = upsample_window(logits, window, pe.stride, pe.patch_size)
    return predictor.probabilities(block_logits[None].float())[0].numpy()


class _RunRows:
    """A run's raw rows through its :class:`TileReader`, recording their valid mask on disk."""

    def __init__(self, run: _Run) -> None:
        self.reader = TileReader(run.src, run.res)
        self.width = run.res.shape[1]
        path = run.work.path / STREAM_DIR / "valid.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # an interrupted run's (the embedding rewrites it if it runs again)
            self.valid = RowArray(path)
        except (FileNotFoundError, ValueError):  # none yet, or cut short while it was being created
            self.valid = RowArray(path, run.res.shape, np.dtype(np.bool_))

    def __call__(self, first: int, last: int) -> np.ndarray:
        pixels, valid = self.reader.read(Window(first, 0, last - first, self.width))
        self.valid[first:last] = valid
        return pixels


def execute_whole_image(run: _Run, device: str, progress: ProgressCallback | None, started: float,
                        band_tokens: int = DEFAULT_BAND_TOKENS) -> tuple[int, int]:
    """Fill ``run``'s label arrays from one whole-image pass; returns (tiles resumed, computed).

    Tile counts keep tile mode's meaning for the summary: the foreground tiles are all
    "computed" (as one sequence) unless a resumed run had already written every block.
    """
    blocks = [b for b in run.grid.iter_blocks() if b not in run.merger.finalized]
    n_fg = len(run.foreground)
    if not blocks:
        return n_fg, 0
    predictor = Predictor(run.bundle, device)
    raw = _RunRows(run)
    rows = ImageRows(raw, run.res.shape, predictor.multiple, run.bundle.normalize)
    logits = None
    if progress is not None and not run.foreground:  # as tile mode: a total (of nothing) is reported
        progress(Progress(0, 0, 0, time.perf_counter() - started))
    if run.foreground:
        pixels = rows.padded_hw[0] * rows.padded_hw[1]
        resumed: list[int] = []  # steps finished before this run: the first report's count

        def report(done: int, total: int) -> None:
            if not resumed:
                resumed.append(done)
            if progress is not None:
                progress(Progress(done, total, pixels * (done - resumed[0]) // total,
                                  time.perf_counter() - started))

        logits = stream_logits(predictor, rows, run.work.path / STREAM_DIR, report, band_tokens)
    valid_rows: tuple[int, np.ndarray] = (-1, np.zeros(0))
    for block in blocks:  # row-major: the valid rows of a block row are read once
        win = run.grid.block_window(*block)
        if valid_rows[0] != win.y:
            valid_rows = (win.y, raw.valid[win.y:win.y + win.height])
        probs = None if logits is None else window_probabilities(predictor, logits, win)
        covered = _covered(run, block, win)
        valid = covered & valid_rows[1][:, win.x:win.x + win.width]
        counts = write_block(run.labels, run.probs, run.fill, win, probs, valid, covered,
                             run.labels_in_memory)
        run.work.journal({block: counts})
        run.merger.finalized[block] = counts
    raw.valid.close()  # every block is journalled: nothing (a resume neither) reads these again,
    shutil.rmtree(run.work.path / STREAM_DIR)  # so the outputs get their disk, as in tile mode
    return 0, n_fg


def _covered(run: _Run, block: tuple[int, int], win: Window) -> np.ndarray:
    """Pixels of the block under a foreground tile: tile mode's background rule, kept as is."""
    covered = np.zeros(win.shape, dtype=bool)
    for tile in run.grid.tiles_covering(*block):
        if tile in run.foreground:
            t = run.grid.tile_window(*tile)
            ys = slice(max(t.y - win.y, 0), t.y + t.height - win.y)
            covered[ys, max(t.x - win.x, 0):t.x + t.width - win.x] = True
    return covered
