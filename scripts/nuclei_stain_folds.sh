#!/usr/bin/env bash
# Last stage of scripts/train_nuclei.sh: the scores of the configuration `segment` ships, with
# stain normalisation on. Each fold model of a finished run (WORK/<fold>.pt) gets the Macenko
# reference stain of ITS training images (the held-out organ never picks its own reference),
# is scored again on its held-out images (WORK/stain/<fold>.eval.json, then WORK/stain/summary.md;
# the baseline's scores are taken from WORK/<fold>.eval.json, it does not depend on the model);
# WORK/final.pt gets the reference of all the run's images (it trains on all of them).
#
#   bash scripts/nuclei_stain_folds.sh [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-${WORK:-build/models/nuclei}}
LANES=${LANES:-2}
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 MKL_NUM_THREADS=1 WORK

python scripts/nuclei_inference_study.py stainfolds "$WORK" "$WORK"
# shellcheck disable=SC2016
find "$WORK/stain" -name '*.pt' -printf '%f\n' | sed 's/\.pt$//' | sort | xargs -P "$LANES" -I{} bash -c \
  'python scripts/nuclei_recipe.py evaluate "$WORK/stain/{}.pt" "$WORK/{}.heldout.json" "$WORK/stain/{}.eval.json" \
     --baseline-from "$WORK/{}.eval.json"'
python scripts/nuclei_recipe.py summarize "$WORK"/stain/*.eval.json | tee "$WORK/stain/summary.md"
