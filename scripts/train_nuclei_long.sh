#!/usr/bin/env bash
# Long-sequence variant of the nuclei-he recipe (scripts/train_nuclei.sh): does training on long
# Vim sequences make whole-image context (`--context image`) pay off?
#
# Same data, architecture and leave-one-image-out (LOO) protocol as train_nuclei.sh, but 256-px
# training patches (64×64 = 4096 tokens at patch 4, vs 256 tokens for 64-px patches) with batch 2
# (4× the tokens per step), and 256-px inference tiles with 64-px overlap. Every held-out tile is
# evaluated in BOTH contexts (tile and image). Results land in build/models/nuclei-long/.
# Seed variance: SEED=1 WORK=build/models/nuclei-long-seed1 bash scripts/train_nuclei_long.sh
# FINAL=1 also trains the model on all three tiles (build/models/nuclei-long/nuclei-he-long.pt).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GIGAVIM_REAL_DATA:-../shared/data/real}/nuclei_miccai2015
WORK=${WORK:-build/models/nuclei-long}
MINUTES=${MINUTES:-10}  # safety cap per training on a shared CPU; the recipe is the step count
FINAL=${FINAL:-0}
SEED=${SEED:-0}         # 0 is `gigavim train`'s default; other seeds check run-to-run spread
mkdir -p "$WORK"

recipe=(
  --name nuclei-he --classes background,nucleus --label-mode binary --input-kind slide
  --image-mpp 0.5 --mpp 0.5
  --arch '{"backbone": {"embed_dim": 48, "depth": 4, "patch_size": 4, "stride": 4, "img_size": 256,
           "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light", "hidden": 32}}'
  --patch 256 --tile 256 --overlap 64 --batch-size 2 --steps 400 --lr 2e-3 --warmup-steps 30 --sampling foreground
  --stain-jitter 0.05 --colour-jitter 0.1 --val-every 100000 --time-limit "$MINUTES" --seed "$SEED"
  --description "H&E nuclei vs background at 0.5 µm/px (20x); trained on 3 MICCAI 2015 tiles, 256-px patches"
)

tiles=(image01 image02 image06)
for held in "${tiles[@]}"; do
  pairs=()
  for t in "${tiles[@]}"; do
    [[ $t == "$held" ]] || pairs+=("$DATA/$t.png:$DATA/${t}_label.png")
  done
  gigavim train "${pairs[@]}" "${recipe[@]}" -o "$WORK/loio-$held.pt" --state "$WORK/loio-$held.state.pt" \
    > "$WORK/loio-$held.log" 2>&1
  for context in tile image; do
    gigavim eval --model "$WORK/loio-$held.pt" --image-mpp 0.5 --context "$context" \
      "$DATA/$held.png:$DATA/${held}_label.png" --json > "$WORK/loio-$held.$context.eval.json"
  done
done

for context in tile image; do
  echo "== $context context"
  python scripts/summarize_eval.py "$WORK"/loio-*."$context".eval.json
done

if [[ $FINAL == 1 ]]; then
  all=()
  for t in "${tiles[@]}"; do all+=("$DATA/$t.png:$DATA/${t}_label.png"); done
  gigavim train "${all[@]}" "${recipe[@]}" -o "$WORK/nuclei-he-long.pt" --state "$WORK/final.state.pt"
fi
