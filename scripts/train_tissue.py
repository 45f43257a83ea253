"""Recipe of the bundled `tissue` model (tissue vs background at 4 µm/px on slides).

1. Training data, written to build/models/tissue/data:
   - the real slide CMU-1-Small-Region.svs with pseudo-labels (colour + morphology, see
     gigavim.train.synthetic_slides.pseudo_tissue_mask) — a heuristic, not a manual annotation.
     Its bottom 30 % is held out: the label image codes the training part as 2/3 and the
     held-out part as 0/1, and value maps select one or the other;
   - synthetic scenes at 4 µm/px: glass with real H&E texture (the slide's tissue and the MICCAI
     nuclei tiles, downsampled) plus pen strokes, bubbles, dust, slide edges and blur, labelled by
     construction. Validation scenes use a different seed.
2. `gigavim train` (the command is printed and run exactly as shown).
3. `gigavim eval` on the held-out synthetic scenes and on the held-out part of the slide.

Every downsampled picture here (the slide and the texture tiles at 4 µm/px) is read through the
engine's resampling (:class:`gigavim.train.working_image.WorkingImage`, i.e. ``TileReader``), as
`gigavim train` and `gigavim segment` read pixels, so pseudo-labels line up with what they see.

Usage: python scripts/train_tissue.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
from pathlib import Path

import numpy as np
from skimage.io import imsave

from gigavim import open_image
from gigavim.engine.plan import resolve_resolution
from gigavim.train.synthetic_slides import make_scene, pseudo_tissue_mask
from gigavim.train.working_image import WorkingImage

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GIGAVIM_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
WORK = REPO / "build" / "models" / "tissue"
MPP = 4.0
HOLDOUT = 0.3  # bottom fraction of the real slide kept out of training
TRAIN_ROWS = "0:255,1:255,2:0,3:1"  # value maps over the slide's label image
HELD_OUT_ROWS = "0:0,1:1,2:255,3:255"


def read_at_mpp(path: Path, image_mpp: float | None = None) -> np.ndarray:
    """The whole image at 4 µm/px, resampled exactly as `segment` and `train` read it (uint8 RGB)."""
    with open_image(path) as src:
        src.mpp = src.mpp or image_mpp
        img = WorkingImage(src, resolve_resolution(src, mpp=MPP))
        pixels = img[0 : img.shape[0], 0 : img.shape[1]][..., :3]
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def level0_labels(mask: np.ndarray, shape: tuple[int, int], downsample: float) -> np.ndarray:
    """A working-grid mask drawn at level 0: each level-0 pixel takes the working pixel covering it
    (so sampling it back at working-pixel centres, as training does, gives ``mask`` exactly)."""
    rows = np.minimum((np.arange(shape[0]) / downsample).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) / downsample).astype(np.int64), mask.shape[1] - 1)
    return mask[np.ix_(rows, cols)].astype(np.uint8)


def write_pair(folder: Path, name: str, img: np.ndarray, lab: np.ndarray) -> str:
    """Synthetic scene + labels coded 2 (background) / 3 (tissue), like the slide's training rows."""
    imsave(folder / f"{name}.png", img, check_contrast=False)
    imsave(folder / f"{name}_label.png", lab.astype(np.uint8) + 2, check_contrast=False)
    return f"{folder / name}.png:{folder / name}_label.png"


def build_data() -> tuple[list[str], list[str], str]:
    data = WORK / "data"
    data.mkdir(parents=True, exist_ok=True)
    slide_path = DATA / "wsi" / "CMU-1-Small-Region.svs"
    slide = read_at_mpp(slide_path)
    slide_mask = pseudo_tissue_mask(slide)
    with open_image(slide_path) as src:  # label image at the slide's level-0 size
        full = level0_labels(slide_mask, (src.height, src.width),
                             resolve_resolution(src, mpp=MPP).downsample)
    full[: int(full.shape[0] * (1 - HOLDOUT))] += 2  # training rows: 2/3; held-out rows: 0/1
    keep = slide_mask[: int(slide_mask.shape[0] * (1 - HOLDOUT))]
    imsave(data / "cmu1_heldout_pseudo_label.png", full, check_contrast=False)
    slide_pair = f"{slide_path}:{data / 'cmu1_heldout_pseudo_label.png'}"
    textures = [slide[y : y + 48, x : x + 48] for y in range(0, keep.shape[0] - 48, 24)
                for x in range(0, slide.shape[1] - 48, 24)
                if keep[y : y + 48, x : x + 48].mean() > 0.95]
    for name in ("image01", "image02", "image06"):
        textures.append(read_at_mpp(DATA / "nuclei_miccai2015" / f"{name}.png", image_mpp=0.5))
    train, val = [], []
    rng = np.random.default_rng(0)
    for i in range(48):
        train.append(write_pair(data, f"train{i:03d}", *make_scene(textures, rng)))
    rng = np.random.default_rng(1)
    for i in range(12):
        val.append(write_pair(data, f"val{i:03d}", *make_scene(textures, rng)))
    return train, val, slide_pair


def run(cmd: list[str]) -> None:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0,
                    help="safety wall-clock cap (the recipe is the step count)")
    ap.add_argument("--out", default=str(REPO / "gigavim" / "data" / "models" / "tissue.pt"))
    args = ap.parse_args()
    train, val, slide_pair = build_data()
    arch = {"backbone": {"embed_dim": 32, "depth": 3, "patch_size": 8, "stride": 8, "img_size": 96,
                         "cls_token": "none", "pos_embed_mode": "sincos"},
            "head": {"kind": "light", "hidden": 32}}
    run(["gigavim", "train", *train, slide_pair, *[a for v in val for a in ("--val", v)],
         "--name", "tissue", "--classes", "background,tissue", "--label-mode", "binary",
         "--value-map", TRAIN_ROWS,
         "--input-kind", "slide", "--image-mpp", str(MPP), "--mpp", str(MPP),
         "--arch", json.dumps(arch), "--patch", "96", "--tile", "192", "--overlap", "48",
         "--batch-size", "8", "--steps", "250",
         "--lr", "2e-3", "--warmup-steps", "20", "--sampling", "balanced",
         "--stain-jitter", "0.05", "--colour-jitter", "0.1", "--val-every", "100000",
         "--time-limit", str(args.minutes), "--state", str(WORK / "tissue.state.pt"),
         "--description", "Tissue vs background (glass, pen, bubbles, dust, edges) on slides at 4 µm/px",
         "-o", args.out])
    (WORK / "eval").mkdir(exist_ok=True)
    with open(WORK / "eval" / "synthetic_val.json", "w") as fh:
        subprocess.run(["gigavim", "eval", "--model", args.out, "--image-mpp", str(MPP), *val,
                        "--value-map", TRAIN_ROWS, "--json"], check=True, stdout=fh)
    with open(WORK / "eval" / "cmu1_heldout_pseudo.json", "w") as fh:
        subprocess.run(["gigavim", "eval", "--model", args.out, slide_pair, "--value-map", HELD_OUT_ROWS,
                        "--json"], check=True, stdout=fh)
    for name in ("synthetic_val", "cmu1_heldout_pseudo"):
        overall = json.load(open(WORK / "eval" / f"{name}.json"))["overall"]
        per_class = {c["class"]: {"iou": c["iou"], "dice": c["dice"]} for c in overall["per_class"]}
        print(name, json.dumps(per_class), "pixel accuracy", overall["pixel_accuracy"])


if __name__ == "__main__":
    main()
