"""Guard rails on the working grid: compared with the source before any work is done.

A typo'd resolution (``--gsd 0.3`` on a 300 m scene, ``--mpp 1e-6``) or a model trained far
finer than the image (the 4 µm/px tissue model on a 352.8 µm/px TIFF) asks for a grid thousands
of times larger than the image: hours of work on made-up pixels, or a disk filled to the brim.
Such a grid is one clear error naming the numbers and ``--force-resolution``, raised before the
mask, the work dir or any tile.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gigavim.engine.plan import SNAP_TOLERANCE, Resolution, TileGrid
from gigavim.errors import UsageError
from gigavim.io.base import ImageSource
from gigavim.models.bundle import ModelMeta

MAX_UPSAMPLE = 4.0
"""Working pixels may be at most this many times finer (per axis) than level-0 pixels."""
MEMORY_SHARE = 0.25
"""The tile bookkeeping may use at most this share of the available memory."""
BYTES_PER_TILE = 400
"""Python bookkeeping per tile (foreground set, merger state), an upper estimate."""
FORCE = "--force-resolution"


def check_working_grid(src: ImageSource, res: Resolution, grid: TileGrid, *, asked: str,
                       bytes_per_pixel: float, out_dir: Path, force: bool = False) -> None:
    """Refuse (UsageError, one line) a grid upsampled > 4× or too big for the disk or memory.

    ``asked`` says where the resolution came from (``--gsd 0.3``, ``model 'tissue' (4 µm/px)``);
    ``bytes_per_pixel`` is what the outputs and the work dir store per working pixel.
    """
    if force:
        return
    h, w = res.shape
    size = f"{w:,} × {h:,} px"
    upsample = 1.0 / res.downsample if res.downsample > 0 else float("inf")
    if upsample > MAX_UPSAMPLE:
        raise UsageError(
            f"{src.path}: {asked} would upsample the image {upsample:,.0f}× "
            f"({src.width:,} × {src.height:,} px → {size}); at most {MAX_UPSAMPLE:g}× is allowed: "
            f"check the resolution (or --level N for the image's own pixels), or pass {FORCE}")
    need = h * w * bytes_per_pixel
    free = _free_bytes(out_dir)
    if free is not None and need > free:
        raise UsageError(
            f"{src.path}: the working grid {size} at {asked} needs about {_bytes(need)} on disk but "
            f"{out_dir} has {_bytes(free)} free; choose a coarser resolution, or pass {FORCE}")
    memory = grid.tile_count * BYTES_PER_TILE
    available = _available_memory()
    if available is not None and memory > MEMORY_SHARE * available:
        raise UsageError(
            f"{src.path}: the working grid {size} at {asked} has {grid.tile_count:,} tiles, whose "
            f"bookkeeping needs about {_bytes(memory)} of the {_bytes(available)} of memory available; "
            f"choose a coarser resolution or a larger --tile, or pass {FORCE}")


def describe_request(mpp: float | None, gsd: float | None, level: int | None, res: Resolution,
                     model: ModelMeta) -> str:
    """Where the working resolution came from, for the guard's message."""
    if mpp is not None:
        return f"--mpp {mpp:g}"
    if gsd is not None:
        return f"--gsd {gsd:g}"
    if level is not None:
        return f"--level {level}"
    if model.mpp is not None and res.mpp and abs(res.mpp / model.mpp - 1) <= SNAP_TOLERANCE:
        return f"model {model.name!r} at {model.mpp:g} µm/px"
    if model.gsd_m is not None and res.gsd_m and abs(res.gsd_m / model.gsd_m - 1) <= SNAP_TOLERANCE:
        return f"model {model.name!r} at {model.gsd_m:g} m/px"
    return "the image's own pixels"


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux-like
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} PB"
