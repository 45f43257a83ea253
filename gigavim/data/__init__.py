"""Sample data shipped inside the package (no network needed).

``CMU-1-Small-Region.svs`` is a 2220×2967 H&E region of the CMU-1 slide, scanned on an Aperio
ScanScope at 20× (0.499 µm/px). It is released under CC0 1.0 by Carnegie Mellon University
(openslide-testdata "Aperio/"); see ``LICENSE-sample-data.md`` beside this file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE_SLIDE_NAME = "CMU-1-Small-Region.svs"


def sample_slide() -> Path:
    """Path of the bundled sample slide (a real, CC0 Aperio SVS)."""
    path = resources.files(__name__) / SAMPLE_SLIDE_NAME
    return Path(str(path))
