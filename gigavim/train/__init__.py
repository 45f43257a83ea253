"""Training and evaluation: labels onto image grids, patch sampling, augmentation, the loop.

``train(TrainConfig(...))`` returns and writes a :class:`gigavim.models.bundle.ModelBundle`;
``evaluate(bundle, [(image, mask), ...])`` returns per-image and overall IoU/Dice/accuracy.
"""

from __future__ import annotations

from gigavim.train.config import TrainConfig
from gigavim.train.evaluate import evaluate
from gigavim.train.loop import train

__all__ = ["TrainConfig", "evaluate", "train"]
