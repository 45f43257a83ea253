"""The segmentation engine: plan → read → infer → blend on disk → write.

:func:`segment` is the public entry point (re-exported as ``gigavim.segment``).
"""

from __future__ import annotations

from gigavim.engine.progress import Progress, ProgressCallback
from gigavim.engine.segment import NODATA_LABEL, SegmentResult, segment

__all__ = ["NODATA_LABEL", "Progress", "ProgressCallback", "SegmentResult", "segment"]
