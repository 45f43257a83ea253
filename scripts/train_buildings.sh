#!/usr/bin/env bash
# Recipe of the bundled `buildings-rgb` model (building footprints on 0.5 m RGB).
#
# Data: SpaceNet-1 Rio de Janeiro (WorldView-2 pan-sharpened RGB, 0.5 m, CC BY-SA 4.0), the 12
# tiles in ../shared/data/real/geo_labelled/spacenet1_rio with their building masks. Held out
# (never trained on): img52 and img53 (95 buildings) and img61 (no buildings: water). Trained on
# the other nine (img50, 51, 55, 57, 64 with 225 buildings; img58, 59, 60, 62 without).
# Seeded; on the shared 2-core CPU it stops at MINUTES (the bundle then says it stopped early).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GIGAVIM_REAL_DATA:-../shared/data/real}/geo_labelled/spacenet1_rio
WORK=${WORK:-build/models/buildings}
OUT=${OUT:-gigavim/data/models/buildings-rgb.pt}
MINUTES=${MINUTES:-50}
STEPS=${STEPS:-1000}
mkdir -p "$WORK"
# One thread: on a CPU shared with other jobs, multi-threaded torch/numba steps spend most of
# their time waiting for descheduled threads (measured: ~10x slower per step, same result).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1}
# The masks are tagged nodata=0, which would make every non-building pixel "unlabelled": train on
# untagged copies (same pixels) so 0 means "no building".
MASKS="$WORK/masks"
GIGAVIM_RIO="$DATA" python scripts/spacenet_masks.py "$MASKS"
pair() { echo "$DATA/images/3band_013022223130_Public_img$1.tif:$MASKS/3band_013022223130_Public_img$1_buildingmask.tif"; }
TRAIN=(); for i in 50 51 55 57 64 58 59 60 62; do TRAIN+=("$(pair "$i")"); done
VAL=(); for i in 52 53 61; do VAL+=(--val "$(pair "$i")"); done

gigavim train "${TRAIN[@]}" "${VAL[@]}" \
  --name buildings-rgb --classes background,building --label-mode binary --input-kind raster --gsd 0.5 \
  --sensor "WorldView-2 pan-sharpened RGB, 8-bit" \
  --arch '{"backbone": {"embed_dim": 48, "depth": 3, "patch_size": 4, "stride": 4, "img_size": 96,
           "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light", "hidden": 32}}' \
  --patch 96 --tile 256 --overlap 32 --batch-size 4 --steps "$STEPS" --lr 2e-3 --warmup-steps 50 \
  --sampling balanced --colour-jitter 0.1 --val-every 1000 --seed 0 --time-limit "$MINUTES" \
  --description "Building footprints on 0.5 m RGB; trained on SpaceNet-1 Rio (CC BY-SA 4.0, see docs/models.md)" \
  -o "$OUT" --state "$WORK/buildings-rgb.state.pt"

# Second stage (the shipped model): continue the same run to 1800 steps. --resume restores the
# weights, optimizer, sampler and RNG state exactly and follows the longer cosine schedule from
# step 1000 on (a fresh 1800-step run would differ: its schedule decays more slowly earlier).
MORE_STEPS=${MORE_STEPS:-1800}
if [ "$MORE_STEPS" -gt "$STEPS" ]; then
  gigavim train --resume "$WORK/buildings-rgb.state.pt" --steps "$MORE_STEPS" --time-limit "$MINUTES" \
    -o "$OUT" --state "$WORK/buildings-rgb.more.state.pt"
fi

# Objects, not just pixels: one GeoJSON feature per building (connected components of the
# building class), footprints under 5 m² dropped (SpaceNet ignores footprints under 20 px).
OUT="$OUT" python - <<'PY'
import os
from gigavim.models.bundle import load_bundle_file
bundle = load_bundle_file(os.environ["OUT"])
bundle.meta.instances = {"method": "connected-components", "object_class": "building", "min_area_m2": 5.0,
                        "max_size_m": 100.0}
bundle.save(os.environ["OUT"])
PY
