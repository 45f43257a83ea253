"""Options several commands share, defined once so their choices and help never drift apart."""

from __future__ import annotations

from enum import Enum

import typer


class Context(str, Enum):
    """``--context``: a choice, so a typo is one usage line before any work (or any worker)."""

    tile = "tile"
    image = "image"


def bands_option() -> str | None:
    """``--bands``: the image bands fed to the model, in the model's order (see docs/segment.md)."""
    return typer.Option(
        None, "--bands",
        help="Map image bands to the model's, 1-based or by band name: 4,3,2 or B4,B3,B2 (an image "
             "whose bands differ from the model's input contract is refused without it).",
    )


def force_resolution_option() -> bool:
    """``--force-resolution``: run a working grid the guard rails would refuse."""
    return typer.Option(
        False, "--force-resolution",
        help="Run even when the working grid is upsampled more than 4x from the image or looks too "
             "big for the disk/memory (refused otherwise, before any work).",
    )


def context_option(what: str = "the whole image") -> Context:
    """``--context tile|image`` (``what`` names what image mode runs as one sequence)."""
    return typer.Option(
        Context.tile, "--context",
        help=f"tile: independent overlapping tiles, blended; image: {what} as ONE Vim sequence "
             "(streamed layer by layer, bounded memory).",
    )


def tta_option() -> int | None:
    """``--tta N``: average each tile over N flipped/rotated views (gigavim.models.tta)."""
    return typer.Option(
        None, "--tta", metavar="VIEWS",
        help="Test-time augmentation: average each tile's probabilities over 2, 4 (flips) or 8 "
             "(flips and 90° rotations) views; 1 = off. Default: the model's (see gigavim models).",
    )


def stain_norm_option() -> bool | None:
    """``--stain-norm/--no-stain-norm``: re-stain H&E like the model's training data."""
    return typer.Option(
        None, "--stain-norm/--no-stain-norm",
        help="Re-stain the image like the model's training data (Macenko) before the model sees it. "
             "Default: when the model carries a reference stain (see gigavim models).",
    )


def image_mpp_option() -> float | None:
    """``--image-mpp``: the µm/px of inputs that record none (PNG/TIFF tiles); others keep theirs."""
    return typer.Option(
        None, "--image-mpp",
        help="µm/px of an input that records no pixel size (PNG/TIFF tiles); inputs that record "
             "one keep theirs.",
    )
