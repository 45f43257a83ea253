"""docs/satellite-buildings.png: buildings-rgb on the held-out SpaceNet tile img53.

Segments the tile with ``gigavim.segment`` exactly as the CLI does (one GeoJSON feature per
building, from the model's marker watershed), burns the polygons onto the image's own grid and
draws each predicted building's outline in red and the SpaceNet footprints in yellow over the RGB
(touching predicted buildings keep the line between them).

    python scripts/satellite_figure.py [OUT.png]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import rasterio
from rasterio.features import rasterize
from skimage.io import imsave
from skimage.segmentation import find_boundaries

import gigavim

RIO = Path("../shared/data/real/geo_labelled/spacenet1_rio")
TILE = "3band_013022223130_Public_img53"


def main(out: Path) -> None:
    image, mask = RIO / "images" / f"{TILE}.tif", RIO / "masks" / f"{TILE}_buildingmask.tif"
    with tempfile.TemporaryDirectory() as tmp:
        objects_path = Path(tmp) / "buildings.geojson"
        gigavim.segment(image, [objects_path], model="buildings-rgb")
        features = json.loads(objects_path.read_text())["features"]
        with rasterio.open(image) as src, rasterio.open(mask) as m:
            rgb = src.read().transpose(1, 2, 0)
            pred = rasterize([(f["geometry"], i) for i, f in enumerate(features, 1)],
                             out_shape=(src.height, src.width), transform=src.transform, dtype="int32")
            truth = m.read(1) > 0
    rgb[find_boundaries(truth, mode="inner")] = (255, 230, 0)
    rgb[find_boundaries(pred, mode="inner")] = (230, 20, 20)
    print(f"{len(features)} buildings found")
    imsave(out, rgb, check_contrast=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/satellite-buildings.png"))
