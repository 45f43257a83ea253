"""The on-disk state of one run: finished tiles, finalized blocks and the output arrays.

Everything a resumed run needs lives in ``OUTPUT.gigavim-work/``:

* ``settings.json`` — what the run computes (source, grid, model digest); a resume with other
  settings is refused rather than silently mixing two runs;
* ``tiles/IY_IX.npy`` — one finished tile's class probabilities plus its valid mask (float16),
  each written under a temporary name and renamed, so a file that exists is complete;
* ``labels.zarr`` / ``probabilities.zarr`` — the label map at the working resolution, one zarr
  chunk per output block;
* ``blocks.log`` — an append-only journal of finalized blocks, with their pixel counts. A block
  is written before its journal line, and tiles are deleted only after every block they cover
  is journalled, so a SIGKILL at any point loses nothing that is needed (the kernel keeps what
  a killed process wrote). The journal is fsync'ed at most every ``JOURNAL_SYNC_S`` seconds, not
  per batch (an fsync cost up to 0.2 s on a busy disk): after a power cut the last lines may be
  missing, and their blocks and tiles are then simply computed again — in the same batches, so
  the result is the same.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from gigavim.engine.chunks import create_block_array
from gigavim.engine.plan import TileGrid
from gigavim.errors import OutputError, UsageError

_JOURNAL_LINE = re.compile(r"^(\d+) (\d+) (\d+) (\d+)$")
JOURNAL_SYNC_S = 10.0
RECENT_TILES, RECENT_TILE_BYTES = 16, 1 << 26
"""Finished tiles kept in memory as well as on disk: the last 16 (four batches of 4: the network
lanes save theirs before the merge reaches them), at most 64 MiB — a count, not a tile row, so
memory does not grow with the image's width."""
BlockCounts = tuple[int, int]  # (foreground pixels, pixels with data)


class WorkDir:
    """Files of one (possibly interrupted) run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tiles = self.path / "tiles"
        self.settings_file = self.path / "settings.json"
        self.journal_file = self.path / "blocks.log"
        self._synced = time.monotonic()
        self._index: set[tuple[int, int]] | None = None  # tiles on disk, once listed
        self._recent: dict[tuple[int, int], np.ndarray] = {}  # saved lately, oldest first
        self._recent_bytes = 0
        self._lock = threading.Lock()  # tiles are saved by the network lanes, used by the merge

    # -- lifecycle --------------------------------------------------------------------------
    def prepare(self, settings: dict[str, Any], *, resume: bool) -> bool:
        """Create the work dir, or reopen it for ``resume``; True if it resumes earlier work.

        The caller holds the run's lock (:mod:`gigavim.engine.runlock`), so a work dir found
        here was left by a run that is no longer alive."""
        if self.settings_file.exists():
            if not resume:
                raise UsageError(
                    f"{self.path} holds an interrupted run: add --resume to continue it, "
                    f"or --overwrite to start again"
                )
            try:
                stored = json.loads(self.settings_file.read_text())
            except (OSError, ValueError):
                raise UsageError(f"{self.path}: cannot resume, the work dir's settings are damaged; "
                                 "use --overwrite to start again") from None
            if stored != _jsonable(settings):
                differ = sorted(k for k in set(stored) | set(settings)
                                if stored.get(k) != _jsonable(settings).get(k))
                raise UsageError(f"{self.path}: cannot resume, the run's settings differ "
                                 f"({', '.join(differ)}); use --overwrite to start again")
            self._repair_journal()
            return True
        self.discard()
        self.tiles.mkdir(parents=True)
        _atomic_write(self.settings_file, json.dumps(_jsonable(settings), indent=1).encode())
        return False

    def discard(self) -> None:
        """Delete the work dir, but only if it is one: never an unrelated tree (``--workdir ~``)."""
        if not self.path.exists():
            return
        if not self.path.is_dir() or self.path.is_symlink() or not _is_work_dir(self.path):
            raise OutputError(f"{self.path}: exists and is not a gigavim work dir; refusing to delete "
                              "it (move it away or choose another output or --workdir)")
        shutil.rmtree(self.path, ignore_errors=True)
        self._index, self._recent, self._recent_bytes = None, {}, 0

    # -- output arrays ----------------------------------------------------------------------
    def label_arrays(self, grid: TileGrid, classes: int, fill_label: int, *, probabilities: bool,
                     create: bool) -> tuple[zarr.Array, zarr.Array | None]:
        """labels (H, W) uint8 and optional probabilities (K, H, W) uint8, one chunk per block
        (zarr v2, each block's chunk written as one file: :mod:`gigavim.engine.chunks`).

        A run interrupted after its settings were written but before these arrays existed
        has merged nothing yet, so resuming it simply creates them."""
        if not create:
            try:
                labels = zarr.open_array(self.path / "labels.zarr", mode="r+")
                probs = (zarr.open_array(self.path / "probabilities.zarr", mode="r+")
                         if probabilities else None)
                return labels, probs
            except FileNotFoundError:
                if any(self.tiles.glob("*.npy")):
                    raise
        labels = create_block_array(self.path / "labels.zarr", grid.shape, grid.block_shape, fill_label)
        probs = None
        if probabilities:
            probs = create_block_array(self.path / "probabilities.zarr", (classes, *grid.shape),
                                       (classes, *grid.block_shape), 0)
        return labels, probs

    # -- finished tiles ---------------------------------------------------------------------
    def tile_path(self, tile: tuple[int, int]) -> Path:
        return self.tiles / f"{tile[0]}_{tile[1]}.npy"

    def has_tile(self, tile: tuple[int, int]) -> bool:
        """Whether the tile's file exists; from the index of the tiles folder this run keeps
        (listed once, then updated by its own saves and drops: the run lock makes it the only
        writer) rather than a ``stat`` per question (several per tile and block)."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    try:
                        names = os.listdir(self.tiles)
                    except FileNotFoundError:
                        return False  # no tiles folder (yet): nothing to index
                    self._index = {_tile_of(name) for name in names if name.endswith(".npy")}
        return tile in self._index

    def save_tile(self, tile: tuple[int, int], data: np.ndarray) -> None:
        """Write a finished tile as ``.npy`` under a temporary name, then rename it into place.

        The header (one per dtype and shape, cached) and the array's bytes are written through
        Python's file object, without serialising a copy first: ``np.save`` on a real file writes
        with C stdio, whose short write on a full disk surfaces as an ``OSError`` without an
        errno (a traceback instead of the one-line disk-full error).
        """
        kept = np.array(data, order="C")  # the run's own copy: memory kept below must not change
        kept.flags.writeable = False
        path = self.tile_path(tile)
        tmp = path.with_suffix(".npy.partial")
        with open(tmp, "wb") as fh:
            fh.write(_npy_header_bytes(kept.dtype.str, kept.shape))
            fh.write(memoryview(kept).cast("B"))
        os.replace(tmp, path)
        with self._lock:
            if self._index is not None:
                self._index.add(tile)
            self._remember(tile, kept)

    def load_tile(self, tile: tuple[int, int]) -> np.ndarray:
        """A finished tile (read-only): from memory when this run saved it lately, else read
        whole from its file (``np.load`` parses each header with ``ast``: its cost was most of
        a small tile's load; tiles of a run share a few headers, parsed once)."""
        cached = self._recent.get(tile)
        if cached is not None:
            return cached
        return _npy_from_bytes(self.tile_path(tile).read_bytes())

    def drop_tile(self, tile: tuple[int, int]) -> None:
        self.tile_path(tile).unlink(missing_ok=True)
        with self._lock:
            if self._index is not None:
                self._index.discard(tile)
            self._forget(tile)

    def _remember(self, tile: tuple[int, int], data: np.ndarray) -> None:
        """Keep the tiles saved last in memory (``RECENT_TILES``, ``RECENT_TILE_BYTES``): the
        blocks they finish are merged right away, and reading them back cost most of a block."""
        self._forget(tile)
        self._recent[tile] = data
        self._recent_bytes += data.nbytes
        while (self._recent_bytes > RECENT_TILE_BYTES or len(self._recent) > RECENT_TILES) and self._recent:
            self._forget(next(iter(self._recent)))

    def _forget(self, tile: tuple[int, int]) -> None:
        old = self._recent.pop(tile, None)
        if old is not None:
            self._recent_bytes -= old.nbytes

    # -- journal ----------------------------------------------------------------------------
    def finalized_blocks(self) -> dict[tuple[int, int], BlockCounts]:
        """Blocks journalled as final (an incomplete last line from a kill is ignored)."""
        done: dict[tuple[int, int], BlockCounts] = {}
        if self.journal_file.exists():
            for line in self.journal_file.read_text().split("\n")[:-1]:
                m = _JOURNAL_LINE.match(line)
                if m:
                    by, bx, fg, data = map(int, m.groups())
                    done[(by, bx)] = (fg, data)
        return done

    def _repair_journal(self) -> None:
        """End a line cut short by a kill, so the next entries start on a line of their own."""
        if self.journal_file.exists():
            text = self.journal_file.read_bytes()
            if text and not text.endswith(b"\n"):
                with open(self.journal_file, "ab") as fh:
                    fh.write(b"\n")

    def journal(self, entries: dict[tuple[int, int], BlockCounts]) -> None:
        if not entries:
            return
        text = "".join(f"{by} {bx} {fg} {data}\n" for (by, bx), (fg, data) in entries.items())
        with open(self.journal_file, "a") as fh:
            fh.write(text)
            fh.flush()
            if time.monotonic() - self._synced >= JOURNAL_SYNC_S:
                os.fsync(fh.fileno())
                self._synced = time.monotonic()


def _tile_of(name: str) -> tuple[int, int]:
    """(iy, ix) of a tile file name ``IY_IX.npy``."""
    iy, ix = name[:-4].split("_")
    return int(iy), int(ix)


def _npy_from_bytes(data: bytes) -> np.ndarray:
    """The array of an ``.npy`` file's bytes (read-only, no copy)."""
    version = data[6]
    size_bytes = 2 if version == 1 else 4
    start = 8 + size_bytes
    end = start + int.from_bytes(data[8:start], "little")
    dtype, shape = _npy_header(data[start:end])
    return np.frombuffer(data, dtype=dtype, offset=end).reshape(shape)


@lru_cache(maxsize=64)
def _npy_header_bytes(dtype: str, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` header ``np.save`` writes for a C-ordered array of ``dtype`` and ``shape``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue()


@lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...]]:
    meta = ast.literal_eval(header.decode("latin1"))
    if meta["fortran_order"]:  # never written by save_tile
        raise ValueError("Fortran-ordered tile")
    return np.dtype(np.lib.format.descr_to_dtype(meta["descr"])), tuple(meta["shape"])


def _is_work_dir(path: Path) -> bool:
    """Ours: it holds the run's settings (written first), or nothing but an empty ``tiles``
    (a run killed between creating the folder and writing its settings)."""
    try:
        names = {entry.name for entry in path.iterdir()}
    except OSError:
        return False
    if names & {"settings.json", "settings.json.partial"}:
        return True
    return names <= {"tiles"} and not any((path / "tiles").glob("*"))


def _atomic_write(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def _jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(settings))
