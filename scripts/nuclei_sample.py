"""Sanity of nuclei instances on the bundled sample (CMU-1-Small-Region): numbers and a picture.

    python scripts/nuclei_sample.py [--model nuclei-he] [--png docs/nuclei-instances.png]

Runs ``gigavim.segment`` with the nuclei model on the sample slide (objects as the CLI makes
them), then compares with the classical haematoxylin baseline (colour deconvolution, Otsu,
distance-transform watershed; ``gigavim.instances.haematoxylin_baseline``) on the same
working-resolution pixels: the share of tissue covered by nuclei, nuclei per mm² of tissue and
the median nucleus area. Writes a PNG of a zoomed region with the instance outlines of both.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import zarr
from scipy.ndimage import uniform_filter
from skimage.segmentation import find_boundaries
from skimage.transform import resize

import gigavim
from gigavim.data import sample_slide
from gigavim.engine.plan import resolve_resolution
from gigavim.engine.reader import TileReader
from gigavim.instances import haematoxylin_baseline
from gigavim.io import open_image
from gigavim.io.base import Window
from gigavim.io.masks import foreground_mask
from gigavim.models.catalog import load_model


def _stats(ids: np.ndarray, tissue: np.ndarray, mpp: float) -> dict[str, float]:
    areas = np.bincount(ids.ravel())[1:]
    areas = areas[areas > 0] * mpp**2
    tissue_mm2 = tissue.sum() * mpp**2 / 1e6
    return {"nucleus_fraction_of_tissue": float(((ids > 0) & tissue).sum() / max(tissue.sum(), 1)),
            "nuclei": int(areas.size), "nuclei_per_mm2": float(areas.size / tissue_mm2),
            "median_area_um2": float(np.median(areas)) if areas.size else 0.0}


def _zoom(ids: np.ndarray, side: int) -> tuple[slice, slice]:
    """The side² window (on a side/4 grid) holding the most objects (by their first pixel)."""
    step = side // 4
    first = np.unique(ids.ravel(), return_index=True)[1][1:]
    ys, xs = np.unravel_index(first, ids.shape)
    counts = np.zeros((ids.shape[0] // step + 1, ids.shape[1] // step + 1))
    np.add.at(counts, (ys // step, xs // step), 1)
    windows = uniform_filter(counts, size=4, mode="constant", origin=-2)[:-4 or None, :-4 or None]
    y, x = np.unravel_index(np.argmax(windows), windows.shape)
    return slice(y * step, y * step + side), slice(x * step, x * step + side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nuclei-he")
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--side", type=int, default=320, help="zoomed window, working pixels")
    args = parser.parse_args()

    bundle = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nuclei.zarr"
        result = gigavim.segment(sample_slide(), [out], model=bundle)
        root = zarr.open_group(str(out), mode="r")
        ids = root[root.attrs["gigavim"]["instances"] + "/0"][:]
    with open_image(sample_slide()) as src:
        res = resolve_resolution(src, model_mpp=bundle.meta.mpp)
        rgb, _ = TileReader(src, res).read(Window(0, 0, *res.shape))
        rgb = np.clip(np.rint(rgb[..., :3]), 0, 255).astype(np.uint8)
        mask = foreground_mask(src)
        tissue = resize(mask.mask.astype(np.float32), res.shape, order=0) > 0.5
    min_area = bundle.meta.instances.get("min_area_um2", 10)
    baseline = haematoxylin_baseline(rgb, mpp=res.mpp, min_area_um2=min_area)
    report = {"model": bundle.meta.name, "mpp": res.mpp, "shape": list(res.shape),
              "tissue_fraction": float(tissue.mean()), "summary_objects": result.objects,
              "summary_per_mm2": result.object_density,
              "model_stats": _stats(ids, tissue, res.mpp),
              "baseline_stats": _stats(baseline, tissue, res.mpp)}
    print(json.dumps(report, indent=1))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        zoom = _zoom(ids, args.side)
        fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), dpi=110)
        for ax, labels, title in ((axes[0], ids, f"{bundle.meta.name}: one id per nucleus"),
                                  (axes[1], baseline, "haematoxylin baseline (Otsu + watershed)")):
            view = rgb[zoom].copy()
            view[find_boundaries(labels[zoom], mode="inner")] = (0, 255, 0)
            ax.imshow(view)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        fig.suptitle(f"CMU-1-Small-Region at {res.mpp:.2f} µm/px, {args.side}² px window "
                     f"({args.side * res.mpp:.0f} µm)", fontsize=10)
        fig.tight_layout()
        fig.savefig(args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
