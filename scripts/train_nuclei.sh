#!/usr/bin/env bash
# Recipe of the bundled `nuclei-he` model (H&E nuclei vs background at 0.5 µm/px, 20×).
#
# Data: the three annotated MICCAI 2015 tiles in ../shared/data/real/nuclei_miccai2015 (instance
# labels → foreground). First a leave-one-image-out check (train on 2 tiles, evaluate on the 3rd,
# for each tile), then the shipped model on all 3. Every model uses the same recipe below.
# Results land in build/models/nuclei/ (eval JSON) and gigavim/data/models/nuclei-he.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GIGAVIM_REAL_DATA:-../shared/data/real}/nuclei_miccai2015
WORK=${WORK:-build/models/nuclei}
MINUTES=${MINUTES:-20}  # safety cap per training on a shared CPU; the recipe is the step count
PARALLEL=${PARALLEL:-0} # 1: run the three leave-one-out trainings at the same time
mkdir -p "$WORK"

recipe=(
  --name nuclei-he --classes background,nucleus --label-mode binary --input-kind slide
  --image-mpp 0.5 --mpp 0.5
  --arch '{"backbone": {"embed_dim": 48, "depth": 4, "patch_size": 4, "stride": 4, "img_size": 64,
           "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light", "hidden": 32}}'
  --patch 64 --tile 128 --overlap 32 --batch-size 8 --steps 400 --lr 2e-3 --warmup-steps 30 --sampling foreground
  --stain-jitter 0.05 --colour-jitter 0.1 --val-every 100000 --time-limit "$MINUTES"
  --description "H&E nuclei vs background at 0.5 µm/px (20x); trained on 3 MICCAI 2015 tiles"
)

tiles=(image01 image02 image06)
for held in "${tiles[@]}"; do
  pairs=()
  for t in "${tiles[@]}"; do
    [[ $t == "$held" ]] || pairs+=("$DATA/$t.png:$DATA/${t}_label.png")
  done
  fold() {
    gigavim train "${pairs[@]}" "${recipe[@]}" -o "$WORK/loio-$held.pt" --state "$WORK/loio-$held.state.pt" \
      > "$WORK/loio-$held.log" 2>&1
    gigavim eval --model "$WORK/loio-$held.pt" --image-mpp 0.5 "$DATA/$held.png:$DATA/${held}_label.png" \
      --json > "$WORK/loio-$held.eval.json"
    # the same held-out tile as ONE Vim sequence (docs/segment.md, "Whole-image context")
    gigavim eval --model "$WORK/loio-$held.pt" --image-mpp 0.5 --context image \
      "$DATA/$held.png:$DATA/${held}_label.png" --json > "$WORK/loio-$held.image-context.json"
  }
  if [[ $PARALLEL == 1 ]]; then fold & else fold; fi
done
wait

all=()
for t in "${tiles[@]}"; do all+=("$DATA/$t.png:$DATA/${t}_label.png"); done
gigavim train "${all[@]}" "${recipe[@]}" -o gigavim/data/models/nuclei-he.pt --state "$WORK/final.state.pt"
python scripts/summarize_eval.py "$WORK"/loio-*.eval.json
python scripts/summarize_eval.py "$WORK"/loio-*.image-context.json
