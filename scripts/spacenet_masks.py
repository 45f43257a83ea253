"""SpaceNet-1 Rio building masks with their nodata tag removed, for training and scoring.

The masks in ../shared/data/real/geo_labelled/spacenet1_rio/masks are 0/255 GeoTIFFs tagged
``nodata=0``: read as tagged, every non-building pixel would be "unlabelled" (ignored by the loss
and the scores) and a model would learn that everything is a building. The copies written here
are pixel-identical, untagged, so 0 means "no building".

    python scripts/spacenet_masks.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import rasterio

RIO = Path(os.environ.get("GIGAVIM_RIO", "../shared/data/real/geo_labelled/spacenet1_rio"))


def untagged_masks(out_dir: Path, rio: Path = RIO) -> list[Path]:
    """Copy every ``*_buildingmask.tif`` to ``out_dir`` without its nodata tag; returns the copies."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for mask in sorted((rio / "masks").glob("*_buildingmask.tif")):
        with rasterio.open(mask) as src:
            profile = {**src.profile, "nodata": None}
            data = src.read()
        dest = out_dir / mask.name
        with rasterio.open(dest, "w", **profile) as dst:
            dst.write(data)
        written.append(dest)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    print(f"{len(untagged_masks(Path(sys.argv[1])))} masks written to {sys.argv[1]}")
