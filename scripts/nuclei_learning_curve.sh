#!/usr/bin/env bash
# Does more training help held-out organs? Resume fold models of a finished train_nuclei.sh run
# for ROUNDS more time boxes of MINUTES each (a warm restart of the clock-annealed schedule per
# box), re-tune each box's model on its training images and score it on its held-out organ,
# exactly as the recipe scores its folds (plain, no stain normalisation). Compare rounds with
# their tune.json: a changed post-processing choice alone can move a small fold's AJI by ~0.04.
#
#   bash scripts/nuclei_learning_curve.sh WORK OUT [FOLD...]     (default folds: kidney liver)
#   MINUTES=30 ROUNDS=2 — folds run side by side, one thread each.
#
# OUT gets <fold>-r<k>.{pt,state.pt,log,tune.json,eval.json} and summary.md (round 0 = WORK's
# own fold model). docs/models.md ("More steps of this network") has the 2026-12-04 result.
set -euo pipefail
WORK=${1:?usage: nuclei_learning_curve.sh WORK OUT [FOLD...]}
OUT=${2:?usage: nuclei_learning_curve.sh WORK OUT [FOLD...]}
shift 2
FOLDS=${*:-kidney liver}
MINUTES=${MINUTES:-30}
ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 MKL_NUM_THREADS=1

curve() {  # FOLD: ROUNDS boxes, each scored while the next one trains
  local fold=$1 start="$WORK/$fold.state.pt" k
  for ((k = 1; k <= ROUNDS; k++)); do
    python - "$WORK/$fold.train.json" "$OUT/$fold-r$k" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["out"], config["state_path"] = sys.argv[2] + ".pt", sys.argv[2] + ".state.pt"
json.dump(config, open(sys.argv[2] + ".train.json", "w"), indent=1)
PY
    gigavim train --config "$OUT/$fold-r$k.train.json" --time-limit "$MINUTES" --resume "$start" \
      > "$OUT/$fold-r$k.log" 2>&1
    start="$OUT/$fold-r$k.state.pt"
    wait  # the previous round's scoring
    { python scripts/nuclei_recipe.py tune "$OUT/$fold-r$k.pt" "$OUT/$fold-r$k.train.json" 4 \
        > "$OUT/$fold-r$k.tune.json" &&
      python scripts/nuclei_recipe.py evaluate "$OUT/$fold-r$k.pt" "$WORK/$fold.heldout.json" \
        "$OUT/$fold-r$k.eval.json"; } &
  done
  wait
}

for fold in $FOLDS; do curve "$fold" & done
wait
for ((k = 0; k <= ROUNDS; k++)); do  # one table per round: pooling across rounds means nothing
  evals=()
  for fold in $FOLDS; do
    if ((k == 0)); then evals+=("$WORK/$fold.eval.json"); else evals+=("$OUT/$fold-r$k.eval.json"); fi
  done
  echo "round $k (+$k × $MINUTES min)"
  python scripts/nuclei_recipe.py summarize "${evals[@]}"
  echo
done | tee "$OUT/summary.md"
