"""docs/satellite-buildings.png: buildings-rgb on the held-out SpaceNet tile img53.

Segments the tile with ``gigavim.segment`` exactly as the CLI does (a COG at the model's 0.5 m),
puts the labels back on the image's grid (nearest), and draws the predicted buildings' outlines
in red and the SpaceNet footprints in yellow over the RGB, at the tile's own pixels.

    python scripts/satellite_figure.py [OUT.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject
from skimage.io import imsave
from skimage.segmentation import find_boundaries

import gigavim

RIO = Path("../shared/data/real/geo_labelled/spacenet1_rio")
TILE = "3band_013022223130_Public_img53"


def main(out: Path) -> None:
    image, mask = RIO / "images" / f"{TILE}.tif", RIO / "masks" / f"{TILE}_buildingmask.tif"
    with tempfile.TemporaryDirectory() as tmp:
        labels_path = Path(tmp) / "buildings.tif"
        gigavim.segment(image, [labels_path], model="buildings-rgb")
        with rasterio.open(image) as src, rasterio.open(labels_path) as lab, rasterio.open(mask) as m:
            rgb = src.read().transpose(1, 2, 0)
            pred = np.zeros((src.height, src.width), np.uint8)
            reproject(lab.read(1), pred, src_transform=lab.transform, src_crs=lab.crs,
                      dst_transform=src.transform, dst_crs=src.crs, resampling=Resampling.nearest)
            truth = m.read(1) > 0
    rgb[find_boundaries(truth, mode="inner")] = (255, 230, 0)
    rgb[find_boundaries(pred == 1, mode="inner")] = (230, 20, 20)
    imsave(out, rgb, check_contrast=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/satellite-buildings.png"))
