"""A tissue mask from a tissue-segmentation model (e.g. the bundled ``tissue``), instead of Otsu.

The model runs once on a low-resolution overview — at its training resolution where that fits in
``MAX_SIDE`` pixels, coarser otherwise — so it costs one forward pass whatever the slide size.
Class 0 is background; every other class counts as tissue. The mask is dilated like the Otsu
mask so tile skipping never cuts tissue edges off.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.morphology import dilation, disk

from gigavim.engine.runner import Predictor
from gigavim.io.base import ImageSource
from gigavim.io.masks import LowResMask, read_overview
from gigavim.models.bundle import ModelBundle

MAX_SIDE = 2048


def model_tissue_mask(source: ImageSource, bundle: ModelBundle, device: str = "cpu") -> LowResMask:
    """Run ``bundle`` on an overview of ``source`` and return where it sees tissue."""
    longest = max(source.width, source.height)
    downsample = longest / MAX_SIDE
    if bundle.meta.mpp and source.mpp:
        downsample = max(downsample, bundle.meta.mpp / source.mpp)
    overview, ds = read_overview(source, max_size=max(1, math.ceil(longest / max(downsample, 1.0))))
    probs = Predictor(bundle, device)(overview[None])[0]
    mask = np.argmax(probs, axis=0) != 0
    mask = dilation(mask, disk(max(1, round(max(mask.shape) / 256))))
    return LowResMask(mask, ds, overview)
