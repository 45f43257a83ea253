#!/usr/bin/env bash
# Recipe of the bundled `land-water` model (colour-relief maps; the fallback raster default).
#
# Data: world.rgb.tif (global colour-relief + bathymetry map, EPSG:4326, 0.703°/px) with the
# land/water mask world.byte.tif (0.125°/px, −75..75° latitude only) reprojected onto the image
# grid by `gigavim train` (nearest); rows outside −75..75° become "ignore". The eastern quarter of
# the map (longitudes 90°E..180°: East Asia, Australia, the western Pacific) is held out for
# validation. The model stores no resolution: it runs at each raster's native pixel size.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GIGAVIM_REAL_DATA:-../shared/data/real}/geo
WORK=${WORK:-build/models/raster}
MINUTES=${MINUTES:-12}   # safety cap on a shared CPU; the recipe is the step count
mkdir -p "$WORK"

gigavim train "$DATA/world.rgb.tif:$DATA/world.byte.tif" \
  --name land-water --classes water,land --label-mode values --input-kind raster \
  --native-resolution --val-fraction 0.25 \
  --arch '{"backbone": {"embed_dim": 32, "depth": 2, "patch_size": 4, "stride": 4, "img_size": 32,
           "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light", "hidden": 32}}' \
  --patch 32 --tile 64 --overlap 16 --batch-size 8 --steps 250 --lr 2e-3 --warmup-steps 20 --sampling balanced \
  --colour-jitter 0.1 --val-every 100000 --time-limit "$MINUTES" \
  --description "Land vs water on RGB rasters; trained on a global colour-relief map (see docs/models.md)" \
  -o gigavim/data/models/land-water.pt --state "$WORK/land-water.state.pt"

# Held-out check written for the model card (the eastern quarter is re-evaluated by the
# training summary in the bundle; this prints it).
python - <<'PY'
import json
from gigavim.models.catalog import read_meta
val = read_meta("gigavim/data/models/land-water.pt").training["validation"]
print(json.dumps(val["scores"], indent=1))
PY
