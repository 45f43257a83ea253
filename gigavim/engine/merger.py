"""Blend finished tiles into the label map, one output block at a time, on disk.

A block (one zarr chunk, a tile stride on a side) is final once every foreground tile covering
it is done: its probabilities are the weight-blended average of those tiles, its label their
argmax. Only the tiles around the current row are ever held (on disk, as float16), and a block
is computed from the same cached tiles whether the run was interrupted or not — which is what
makes ``--resume`` give exactly the uninterrupted result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from gigavim.engine.blend import tile_weight
from gigavim.engine.plan import TileGrid
from gigavim.engine.workdir import BlockCounts, WorkDir
from gigavim.io.base import Window
from gigavim.io.chunk_files import store_region

Tile = tuple[int, int]
Block = tuple[int, int]
BlockWrite = tuple[Any, tuple[slice, ...], np.ndarray]  # (zarr array, region, data)
LABELS_IN_MEMORY_BYTES = 1 << 26
"""Label maps up to 64 MiB (8k × 8k working pixels) are also kept in memory (as the writers'
in-memory pyramid of :mod:`gigavim.io.writers.ome_zarr` does)."""


@dataclass(frozen=True)
class Fill:
    """What pixels no processed tile covers (or without data) become.

    Slides: background class 0 with probability 1. Rasters: ``nodata_label`` and probability 0.
    """

    label: int
    nodata_label: int | None
    probabilities: np.ndarray  # (K,) uint8


class BlockMerger:
    """Finalizes output blocks from cached tiles and forgets tiles no block still needs."""

    def __init__(self, work: WorkDir, grid: TileGrid, foreground: set[Tile], fill: Fill,
                 labels: zarr.Array, probabilities: zarr.Array | None,
                 labels_in_memory: np.ndarray | None = None) -> None:
        """``labels_in_memory``: a copy of the whole label map that every written block also
        goes to (see :func:`write_block`)."""
        self.work, self.grid, self.foreground, self.fill = work, grid, foreground, fill
        self.labels, self.probabilities = labels, probabilities
        self.labels_in_memory = labels_in_memory
        self.finalized: dict[Block, BlockCounts] = work.finalized_blocks()
        self._persisting: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()

    # -- what is left to do -----------------------------------------------------------------
    def needed(self, tile: Tile) -> bool:
        """Whether some unfinalized block still needs this tile's prediction."""
        return any(b not in self.finalized for b in self.grid.blocks_covered(*tile))

    def pending(self, tile: Tile) -> bool:
        return self.needed(tile) and not self.work.has_tile(tile)

    # -- progress ---------------------------------------------------------------------------
    def store(self, tiles: list[Tile], data: np.ndarray) -> None:
        """Save finished tiles ((B, K+1, h, w): probabilities + valid) to the work dir.

        Thread-safe, and may run ahead of :meth:`merge` (the engine's network lanes store their
        own batches): a saved tile is simply one the merge finds done, as after a resume."""
        for tile, arr in zip(tiles, data, strict=True):
            self.work.save_tile(tile, arr)

    def merge(self, tiles: list[Tile]) -> None:
        """Finalize the blocks that stored ``tiles`` complete, and forget tiles no longer needed."""
        candidates = {b for t in tiles for b in self.grid.blocks_covered(*t)}
        self.finalize_ready(candidates)
        self._then(self._forget, tiles)

    @contextmanager
    def persisting_in_background(self) -> Iterator[None]:
        """Within: finalized blocks are written to the work dir, journalled and their tiles
        dropped by one background thread, in order, while the caller blends the next ones.

        The order on disk stays: a block's chunk, then its journal line, then the deletion of
        tiles no block still needs; a kill in between leaves a block unjournalled with its tiles
        still there, which a resume finalizes again (the same result). Errors (a full disk)
        surface at the next merge or on leaving; leaving waits for every pending write."""
        self._persisting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gigavim-persist")
        try:
            yield
            self._drain()
        finally:
            self._persisting.shutdown(wait=True)
            self._persisting = None
            self._pending.clear()

    def add(self, tiles: list[Tile], data: np.ndarray) -> None:
        """:meth:`store`, then :meth:`merge`."""
        self.store(tiles, data)
        self.merge(tiles)

    def finalize_ready(self, blocks: Iterable[Block]) -> None:
        """Finalize every block whose covering foreground tiles are all cached, then journal."""
        ready: dict[Block, list[Tile]] = {}
        for block in sorted(blocks):
            if block in self.finalized:
                continue
            covering = [t for t in self.grid.tiles_covering(*block) if t in self.foreground]
            if all(self.work.has_tile(t) for t in covering):
                ready[block] = covering
        done: dict[Block, BlockCounts] = {}
        writes: list[BlockWrite] = []
        for block, covering in ready.items():
            done[block], block_writes = self._finalize(block, covering)
            writes += block_writes
        self.finalized.update(done)
        self._then(self._persist, done, writes)

    def _persist(self, done: dict[Block, BlockCounts], writes: list[BlockWrite]) -> None:
        """Blocks' chunks to disk, then their journal lines, then tiles no block needs dropped."""
        for array, region, data in writes:
            store_region(array, region, data)
        self.work.journal(done)
        self._forget({t for b in done for t in self.grid.tiles_covering(*b)})

    def _then(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` now, or queued on the background thread (after the writes before it)."""
        if self._persisting is None:
            fn(*args)
            return
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()  # a failed write (disk full) stops the run here
        self._pending.append(self._persisting.submit(fn, *args))

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def counts(self) -> BlockCounts:
        fg = sum(c[0] for c in self.finalized.values())
        data = sum(c[1] for c in self.finalized.values())
        return fg, data

    # -- internals --------------------------------------------------------------------------
    def _forget(self, tiles: Iterable[Tile]) -> None:
        for tile in tiles:
            if not self.needed(tile):
                self.work.drop_tile(tile)

    def _finalize(self, block: Block, tiles: list[Tile]) -> tuple[BlockCounts, list[BlockWrite]]:
        win = self.grid.block_window(*block)
        k = len(self.fill.probabilities)
        acc = np.zeros((k, win.height, win.width), dtype=np.float32)
        valid_acc = np.zeros((win.height, win.width), dtype=np.float32)
        weight = np.zeros((win.height, win.width), dtype=np.float32)
        weighted = np.empty((k + 1, win.height, win.width), dtype=np.float32)
        for tile in tiles:
            twin = self.grid.tile_window(*tile)
            y0, y1 = max(win.y, twin.y), min(win.y + win.height, twin.y + twin.height)
            x0, x1 = max(win.x, twin.x), min(win.x + win.width, twin.x + twin.width)
            tile_part = (slice(y0 - twin.y, y1 - twin.y), slice(x0 - twin.x, x1 - twin.x))
            block_part = (slice(y0 - win.y, y1 - win.y), slice(x0 - win.x, x1 - win.x))
            w = tile_weight(self.grid, *tile)[tile_part]
            # float16 tile × float32 weight in one pass (numpy casts in its buffer: the same
            # float32 products as casting the part first), into a reused buffer
            part = np.multiply(self.work.load_tile(tile)[(slice(None), *tile_part)], w,
                               out=weighted[(slice(None), *block_part)], dtype=np.float32)
            acc[(slice(None), *block_part)] += part[:k]
            valid_acc[block_part] += part[k]
            weight[block_part] += w
        covered = weight > 0
        np.divide(acc, weight, out=acc, where=covered)
        valid = covered & (valid_acc > 0.5 * weight)
        return block_writes(self.labels, self.probabilities, self.fill, win, acc if tiles else None,
                            valid, covered, self.labels_in_memory)


def write_block(labels_out: Any, probs_out: Any, fill: Fill, win: Window, probs: np.ndarray | None,
                valid: np.ndarray, covered: np.ndarray,
                labels_in_memory: np.ndarray | None = None) -> BlockCounts:
    """Store one output block from its (K, h, w) class probabilities; returns its pixel counts
    (:func:`block_writes`, then its writes)."""
    counts, writes = block_writes(labels_out, probs_out, fill, win, probs, valid, covered, labels_in_memory)
    for array, region, data in writes:
        store_region(array, region, data)
    return counts


def block_writes(labels_out: Any, probs_out: Any, fill: Fill, win: Window, probs: np.ndarray | None,
                 valid: np.ndarray, covered: np.ndarray, labels_in_memory: np.ndarray | None = None,
                 ) -> tuple[BlockCounts, list[BlockWrite]]:
    """One output block from its (K, h, w) class probabilities: its pixel counts and the array
    writes that store it (done by the caller, perhaps later on another thread).

    The one place the fill rule is applied, for tile mode (blended tiles) and whole-image mode
    (streamed logits) alike: valid pixels get the argmax (and probability × 255), covered pixels
    without data the nodata label, the rest ``fill``. ``probs=None``: nothing was computed.
    A block that is all fill is not written where the array already reads as fill (zarr's
    ``fill_value``): most of a slide is glass, and writing it cost ~30 ms a block.
    ``labels_in_memory``: the whole map in memory as well (:func:`labels_in_memory`), which
    gets the block's labels right away.
    """
    labels = np.full(win.shape, fill.label, dtype=np.uint8)
    if probs is not None:  # copyto(where=): a masked copy without boolean indexing's gathers
        np.copyto(labels, class_argmax(probs), where=valid)
    if fill.nodata_label is not None:
        np.copyto(labels, np.uint8(fill.nodata_label), where=covered & ~valid)
    region = (slice(win.y, win.y + win.height), slice(win.x, win.x + win.width))
    if labels_in_memory is not None:
        labels_in_memory[region] = labels
    writes: list[BlockWrite] = []
    all_fill = probs is None and not covered.any()
    if not (all_fill and _reads_as(labels_out, fill.label)):
        writes.append((labels_out, region, labels))
    if probs_out is not None and not (all_fill and not fill.probabilities.any()
                                      and _reads_as(probs_out, 0)):
        out = np.empty((len(fill.probabilities), *win.shape), dtype=np.uint8)
        out[:] = fill.probabilities[:, None, None]
        if probs is not None:
            out[:, valid] = np.round(np.clip(probs[:, valid], 0, 1) * 255).astype(np.uint8)
        writes.append((probs_out, (slice(None), *region), out))
    if fill.nodata_label is None:  # every pixel holds data
        return (int(np.count_nonzero(labels)), labels.size), writes
    has_data = labels != fill.nodata_label
    return (int(np.count_nonzero(has_data & (labels != 0))), int(np.count_nonzero(has_data))), writes


def labels_in_memory(labels: zarr.Array, resumed: bool) -> np.ndarray | None:
    """A copy of the work dir's label map kept in memory while its blocks are written, when it
    fits :data:`LABELS_IN_MEMORY_BYTES`: the writers then take it as it is instead of reading every block back
    (CMU-1 sample: 192 block files, ~70 ms). A resumed run starts from what is on disk."""
    if labels.nbytes > LABELS_IN_MEMORY_BYTES:
        return None
    if resumed:
        return np.asarray(labels[...])
    return np.full(labels.shape, labels.fill_value, dtype=labels.dtype)


def class_argmax(probs: np.ndarray) -> np.ndarray:
    """``np.argmax(probs, axis=0)`` as uint8 (ties: the first class), plane by plane: numpy's
    argmax over the leading axis of a C-order (K, h, w) array is ~2× slower. ``probs`` is finite."""
    best, ids = probs[0], np.zeros(probs.shape[1:], dtype=np.uint8)
    for k in range(1, len(probs)):
        np.copyto(ids, np.uint8(k), where=probs[k] > best)
        best = np.maximum(best, probs[k])
    return ids


def _reads_as(array: Any, value: int) -> bool:
    """Whether unwritten chunks of ``array`` read as ``value`` (a zarr array's fill value)."""
    fill_value = getattr(array, "fill_value", None)
    return fill_value is not None and int(fill_value) == value
