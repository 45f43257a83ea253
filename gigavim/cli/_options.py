"""Options several commands share, defined once so their choices and help never drift apart."""

from __future__ import annotations

from enum import Enum

import typer


class Context(str, Enum):
    """``--context``: a choice, so a typo is one usage line before any work (or any worker)."""

    tile = "tile"
    image = "image"


def context_option(what: str = "the whole image") -> Context:
    """``--context tile|image`` (``what`` names what image mode runs as one sequence)."""
    return typer.Option(
        Context.tile, "--context",
        help=f"tile: independent overlapping tiles, blended; image: {what} as ONE Vim sequence "
             "(streamed layer by layer, bounded memory).",
    )
