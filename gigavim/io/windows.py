"""Window arithmetic shared by every reader: clip a window to a level and pad what lies outside.

Readers only ever ask their library for the part of a window that is inside the image, so a
window hanging over an edge costs no more than its inside, and every reader fills the outside
the same way (with :attr:`ImageSource.fill_value`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gigavim.io.base import Level, Window


def clip_window(window: Window, level: Level) -> Window | None:
    """The part of ``window`` inside ``level``, or ``None`` when they do not overlap."""
    y0, x0 = max(window.y, 0), max(window.x, 0)
    y1 = min(window.y + window.height, level.height)
    x1 = min(window.x + window.width, level.width)
    if y1 <= y0 or x1 <= x0:
        return None
    return Window(y0, x0, y1 - y0, x1 - x0)


def check_window(window: Window) -> None:
    """Reject windows with a negative size (a programming error, not a user one)."""
    if window.height < 0 or window.width < 0:
        raise ValueError(f"window size must be non-negative, got {window}")


def read_padded(
    window: Window,
    level: Level,
    fill: float,
    shape_tail: tuple[int, ...],
    dtype: np.dtype,
    read_inside: Callable[[Window], np.ndarray],
) -> np.ndarray:
    """Read ``window`` via ``read_inside`` (called with the clipped window only) and pad with ``fill``.

    ``shape_tail`` is what follows (h, w) in the result: ``(bands,)`` for pixels, ``()`` for masks.
    """
    check_window(window)
    inside = clip_window(window, level)
    if inside == window:
        return read_inside(window)
    out = np.full((window.height, window.width, *shape_tail), fill, dtype=dtype)
    if inside is not None:
        dy, dx = inside.y - window.y, inside.x - window.x
        out[dy : dy + inside.height, dx : dx + inside.width] = read_inside(inside)
    return out
