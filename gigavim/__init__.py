"""gigavim: segment gigapixel slides and satellite scenes with Vision Mamba.

Vim's bidirectional selective-state-space blocks cost time and memory linear in the number
of tokens, so one model can look at huge tiles, or a whole slide as one sequence, where
transformers must cut the image into small independent crops.

The public library API lives here; the CLI, the batch pipeline and the napari plugin are thin
shells over it.
"""

from __future__ import annotations

from typing import Any

from gigavim.errors import GigavimError, InputError, ModelError, OutputError, UsageError

__version__ = "0.1.0"

__all__ = [
    "GigavimError",
    "InputError",
    "ModelError",
    "OutputError",
    "UsageError",
    "__version__",
    "open_image",
    "segment",
]


def open_image(path: Any, **kwargs: Any):  # re-exported, typed at the source
    """Open a slide, raster or plain image as an :class:`gigavim.io.ImageSource`."""
    from gigavim.io import open_image as _open_image

    return _open_image(path, **kwargs)


def segment(source: Any, outputs: Any, **kwargs: Any):  # re-exported, typed at the source
    """Segment a slide or raster into OME-Zarr / GeoTIFF / GeoJSON outputs (see gigavim.engine)."""
    from gigavim.engine import segment as _segment

    return _segment(source, outputs, **kwargs)
