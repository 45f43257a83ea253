#!/usr/bin/env bash
# Recipe of the bundled `nuclei-he` model: H&E nuclei as OBJECTS (background / nucleus interior /
# nucleus boundary → one id per nucleus by marker watershed) at 0.5 µm/px.
#
# Data (../shared/data/real, see its README): the 30 MoNuSeg-2018 training images (7 organs, 40x,
# 0.25 µm/px, CC BY-NC-SA 4.0) and the 13 MICCAI-2015 tiles (01–06 at 20x ≈ 0.5 µm/px, 08–15 at
# 40x ≈ 0.25 µm/px; no licence stated, TCGA research use), all resampled to 0.5 µm/px.
# Validation: leave one MoNuSeg organ out (7 folds; the held-out organ's images are never seen,
# everything else trains) plus "miccai2015" (train on all MoNuSeg, hold out the 13 MICCAI tiles).
# Each fold's post-processing thresholds are tuned on ITS TRAINING images only, then the held-out
# images are scored — pixel Dice, AJI, PQ (DQ/SQ), object F1 at IoU ≥ 0.5 — for the model and for
# the classical haematoxylin baseline by the same code (scripts/nuclei_recipe.py). "final" trains
# on everything and becomes gigavim/data/models/nuclei-he.pt (FINAL=0 skips that).
#
# Cost: LANES trainings run side by side with one thread each (a 2-core CPU); each training is
# capped at MINUTES (the step count is the recipe; the cap only guards a busy machine and is
# recorded in the bundle). FOLDS picks folds, e.g. FOLDS="final kidney" for a quick check.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-build/models/nuclei}
SEED=${SEED:-0}
STEPS=${STEPS:-600}
MINUTES=${MINUTES:-30}
LANES=${LANES:-2}
FINAL=${FINAL:-1}
mkdir -p "$WORK"

cat > "$WORK/recipe.json" <<JSON
{
  "name": "nuclei-he", "classes": ["background", "nucleus", "nucleus-boundary"],
  "colors": [[0, 0, 0], [230, 25, 75], [255, 225, 25]], "input_kind": "slide",
  "label_mode": "boundary", "boundary_um": 0.5, "mpp": 0.5,
  "arch": {"backbone": {"embed_dim": 48, "depth": 4, "patch_size": 4, "stride": 4, "img_size": 256,
                        "cls_token": "none", "pos_embed_mode": "sincos"},
           "head": {"kind": "fpn", "channels": 32}},
  "patch": 256, "tile": 256, "overlap": 64, "batch_size": 2, "steps": $STEPS, "lr": 0.002,
  "warmup_steps": 30, "sampling": "foreground", "foreground_p": 0.5,
  "augment": {"flips": true, "rotate90": true, "brightness": 0.1, "contrast": 0.2, "saturation": 0.2,
              "stain": 0.3, "blur_p": 0.3, "blur_sigma": 1.2, "jpeg_p": 0.3, "jpeg_quality": [30, 90]},
  "val_every": 1000000, "log_every": 20, "seed": $SEED, "time_limit_s": $((MINUTES * 60)),
  "description": "H&E nuclei (background / interior / boundary → one id per nucleus) at 0.5 µm/px; MoNuSeg 2018 (CC BY-NC-SA 4.0: non-commercial) + MICCAI 2015"
}
JSON
all_folds=$(python scripts/nuclei_recipe.py folds "$WORK" "$WORK/recipe.json")
FOLDS=${FOLDS:-$all_folds}

run_fold() {  # train, tune thresholds on the fold's training images, score its held-out images
  local fold=$1 w=$WORK
  export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 MKL_NUM_THREADS=1
  echo "$(date -u +%T) start $fold"
  gigavim train --config "$w/$fold.train.json" > "$w/$fold.log" 2>&1
  python scripts/nuclei_recipe.py tune "$w/$fold.pt" "$w/$fold.train.json" > "$w/$fold.tune.json"
  if [[ -f $w/$fold.heldout.json ]]; then
    python scripts/nuclei_recipe.py evaluate "$w/$fold.pt" "$w/$fold.heldout.json" "$w/$fold.eval.json"
  fi
  echo "$(date -u +%T) done $fold"
}
export -f run_fold
export WORK
# shellcheck disable=SC2086
printf '%s\n' $FOLDS | xargs -P "$LANES" -I{} bash -c 'run_fold {}'

shopt -s nullglob
evals=("$WORK"/*.eval.json)
if ((${#evals[@]})); then
  python scripts/nuclei_recipe.py summarize "${evals[@]}" | tee "$WORK/summary.md"
fi
if [[ $FINAL == 1 && -f $WORK/final.pt ]]; then
  cp "$WORK/final.pt" gigavim/data/models/nuclei-he.pt
fi
