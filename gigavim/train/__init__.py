"""Training and evaluation: labels onto image grids, patch sampling, augmentation, the loop.

``train(TrainConfig(...))`` returns and writes a :class:`gigavim.models.bundle.ModelBundle`;
``evaluate(bundle, [(image, mask), ...])`` returns per-image and overall IoU/Dice/accuracy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "evaluate", "train"]

_HOMES = {"TrainConfig": "gigavim.train.config", "evaluate": "gigavim.train.evaluate",
          "train": "gigavim.train.loop"}


def __getattr__(name: str) -> Any:
    """Import lazily, so that ``gigavim.train.config`` (read by ``gigavim train --help``) does not
    pull in torch."""
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'gigavim.train' has no attribute {name!r}")
