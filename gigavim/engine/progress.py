"""Progress reports from the engine to whoever shows them (rich bar, napari, dask, nothing).

The library never prints: it calls ``progress(Progress(...))`` after every batch, and each shell
renders it its own way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """Where a run stands: tiles done of the foreground tiles, working pixels inferred so far."""

    tiles_done: int
    tiles_total: int
    pixels_done: int
    elapsed_s: float

    @property
    def megapixels_per_s(self) -> float:
        return self.pixels_done / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressCallback = Callable[[Progress], None]
