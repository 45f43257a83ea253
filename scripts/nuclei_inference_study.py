"""Inference-side choices for `nuclei-he`, measured on the leave-one-organ-out folds (eval only).

    python scripts/nuclei_inference_study.py stains PILOT OUT          # Macenko stain of every image
    python scripts/nuclei_inference_study.py views PILOT OUT PASS 0,1 FOLD...  # cached view probabilities
    python scripts/nuclei_inference_study.py score PILOT OUT [VARIANT...]  # tables per fold + pooled
    python scripts/nuclei_inference_study.py stainfolds PILOT OUT   # fold models with their reference stain
    python scripts/nuclei_inference_study.py tilefolds PILOT OUT TILE OVERLAP  # other tiling

PILOT is the folder of a finished `scripts/train_nuclei.sh` run (each fold's model ``<fold>.pt``,
thresholds tuned on its training images, and ``<fold>.heldout.json``). For every held-out image
the probabilities of each dihedral view (gigavim.models.tta) are computed once, blended over the
tiles exactly as `gigavim eval` does, and cached as float16 ``OUT/probs/<fold>/<image>.<pass>.v<k>.npy``:
the mean of the first N views IS the TTA-N prediction (blending is linear), so 1, 2, 4 and 8
views cost 8 passes in all. PASS "plain" feeds the image as is; PASS "macenko" feeds it stain-
normalised (Macenko) to the fold's reference stain: the median stain vectors and concentration
scales of the fold's TRAINING images (the held-out organ never chooses its own reference).
Scoring post-processes with the fold model's own tuned settings by the code `gigavim eval` uses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nuclei_recipe import _cells, _pool

MPP = 0.5  # the working grid when no model says otherwise
IO = 240.0  # transmitted light intensity (Macenko et al. 2009)


# -- Macenko stain estimation and normalisation (numpy) ---------------------------------------
def _od(rgb: np.ndarray) -> np.ndarray:
    return -np.log((rgb.reshape(-1, 3).astype(np.float64) + 1.0) / IO)


def macenko_stain(rgb: np.ndarray, beta: float = 0.15, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(3, 2) unit haematoxylin/eosin OD vectors and the 99th-percentile concentrations (2,)."""
    od = _od(rgb)
    tissue = od[(od > beta).all(axis=1)]
    _, vecs = np.linalg.eigh(np.cov(tissue.T))
    plane = vecs[:, 1:3]  # the two largest eigenvectors
    proj = tissue @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, alpha), np.percentile(phi, 100 - alpha)
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    stains = np.stack([v1, v2], axis=1) if v1[0] > v2[0] else np.stack([v2, v1], axis=1)
    stains *= np.sign(stains.sum(axis=0, keepdims=True))  # OD vectors point into positive OD
    stains /= np.linalg.norm(stains, axis=0, keepdims=True)
    conc = np.linalg.lstsq(stains, od.T, rcond=None)[0]
    return stains, np.percentile(conc, 99, axis=1)


def macenko_normalise(rgb: np.ndarray, ref_stains: np.ndarray, ref_max: np.ndarray) -> np.ndarray:
    """``rgb`` re-stained with the reference stain vectors and concentration scales."""
    stains, max_c = macenko_stain(rgb)
    conc = np.linalg.lstsq(stains, _od(rgb).T, rcond=None)[0]
    conc *= (ref_max / max_c)[:, None]
    out = IO * np.exp(-(ref_stains @ conc))
    return np.clip(out.T.reshape(rgb.shape), 0, 255).astype(np.uint8)


# -- data --------------------------------------------------------------------------------------
def _load(
    image: str, labels: str, mpp: float, work_mpp: float = MPP
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The image (and its instance truth) on the model's working grid of ``work_mpp`` µm/px."""
    from gigavim.train.dataset import load_train_image
    from gigavim.train.evaluate import _instance_truth

    im = load_train_image(image, labels, mpp=work_mpp, image_mpp=mpp, mode="boundary", boundary_um=0.5)
    try:
        rgb = np.asarray(im.image[0:im.shape[0], 0:im.shape[1]])[..., :3].astype(np.uint8)
        truth = _instance_truth(im, labels)
    finally:
        im.close()
    return rgb, truth, dict(im.pixel_size)


def _fold_pairs(pilot: Path, fold: str, which: str) -> list[list]:
    if which == "heldout":
        return json.loads((pilot / f"{fold}.heldout.json").read_text())
    return json.loads((pilot / f"{fold}.train.json").read_text())["pairs"]


def stains(pilot: Path, out: Path) -> None:
    """Macenko stain vectors and scales of every image of the run (held out by some fold)."""
    table = {}
    for path in sorted(pilot.glob("*.heldout.json")):
        for image, labels, mpp in json.loads(path.read_text()):
            if image not in table:
                rgb, _, _ = _load(image, labels, mpp)
                s, m = macenko_stain(rgb)
                table[image] = {"stains": s.tolist(), "max": m.tolist()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "stains.json").write_text(json.dumps(table, indent=1))


def reference(pilot: Path, out: Path, fold: str) -> tuple[np.ndarray, np.ndarray]:
    """The fold's reference stain: medians over its training images (never its held-out ones)."""
    table = json.loads((out / "stains.json").read_text())
    rows = [table[image] for image, *_ in _fold_pairs(pilot, fold, "train") if image in table]
    s = np.median(np.array([r["stains"] for r in rows]), axis=0)
    return s / np.linalg.norm(s, axis=0, keepdims=True), np.median(np.array([r["max"] for r in rows]), axis=0)


def stain_folds(pilot: Path, out: Path) -> None:
    """Each fold's model with the reference stain of ITS training images (estimated as `segment`
    estimates an image's stain), as ``OUT/stain/<fold>.pt``; and ``OUT/stain/reference.json``,
    the reference of all images, which ``PILOT/final.pt`` (when there) gets in place: the shipped
    model trains on all of them."""
    from gigavim.models.catalog import load_model
    from gigavim.models.stain import estimate_stain, reference
    from gigavim.train.evaluate import image_tiles

    folder = out / "stain"
    folder.mkdir(parents=True, exist_ok=True)
    meta = load_model(str(pilot / "bladder.pt")).meta
    estimates: dict[str, tuple] = {}
    for path in sorted(pilot.glob("*.heldout.json")):
        for image, labels, mpp in json.loads(path.read_text()):
            if image not in estimates:
                rgb, _, _ = _load(image, labels, mpp, meta.mpp)
                estimates[image] = estimate_stain(*image_tiles(rgb, meta), image)
    for path in sorted(pilot.glob("*.eval.json")):
        fold = path.name.split(".")[0]
        bundle = load_model(str(pilot / f"{fold}.pt"))
        bundle.meta.stain = reference([estimates[i] for i, *_ in _fold_pairs(pilot, fold, "train")])
        bundle.save(folder / f"{fold}.pt")
    everything = reference(list(estimates.values()))
    (folder / "reference.json").write_text(json.dumps(everything, indent=1))
    if (pilot / "final.pt").is_file():
        final = load_model(str(pilot / "final.pt"))
        final.meta.stain = everything
        final.save(pilot / "final.pt")


def tile_folds(out: Path, tile: int, overlap: int) -> None:
    """The stain-normalised fold models (``OUT/stain/<fold>.pt``) with another tile size and
    overlap, as ``OUT/tile<TILE>-<OVERLAP>/<fold>.pt``: the tiling is an inference setting, and a
    larger tile spends less of the network's time on overlap (tile 256 + 64 on each side computes
    2.25 pixels per pixel kept; tile 512, 1.56)."""
    from gigavim.models.catalog import load_model

    folder = out / f"tile{tile}-{overlap}"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((out / "stain").glob("*.pt")):
        bundle = load_model(str(path))
        bundle.meta.tile, bundle.meta.overlap = tile, overlap
        bundle.save(folder / path.name)


class OneView(torch.nn.Module):
    """The network seen through one dihedral view (its output mapped back)."""

    def __init__(self, net: torch.nn.Module, view: int) -> None:
        super().__init__()
        self.net, self.view = net, view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from gigavim.models.tta import from_view, to_view

        return from_view(self.net(to_view(x, self.view)), self.view)


def views(pilot: Path, out: Path, pass_: str, folds: list[str], view_list: list[int]) -> None:
    from gigavim.models.bundle import ModelBundle
    from gigavim.models.catalog import load_model
    from gigavim.train.predict import predict_probabilities

    for fold in folds:
        bundle = load_model(str(pilot / f"{fold}.pt"))
        ref = reference(pilot, out, fold) if pass_ == "macenko" else None
        folder = out / "probs" / fold
        folder.mkdir(parents=True, exist_ok=True)
        for image, labels, mpp in _fold_pairs(pilot, fold, "heldout"):
            stem = Path(image).stem
            todo = [v for v in view_list if not (folder / f"{stem}.{pass_}.v{v}.npy").exists()]
            if not todo:
                continue
            rgb, truth, size = _load(image, labels, mpp, bundle.meta.mpp)
            np.save(folder / f"{stem}.truth.npy", truth.astype(np.int32))
            (folder / f"{stem}.json").write_text(json.dumps({"image": image, "pixel_size": size}))
            if ref is not None:
                rgb = macenko_normalise(rgb, *ref)
            for v in todo:
                one = ModelBundle(OneView(bundle.net, v).eval(), bundle.meta)
                p = predict_probabilities(one, rgb.astype(np.float32), tile=bundle.meta.tile,
                                          overlap=bundle.meta.overlap)
                np.save(folder / f"{stem}.{pass_}.v{v}.npy", p.astype(np.float16))
            print(f"{fold} {stem} {pass_} views {todo}", flush=True)


def score(pilot: Path, out: Path, variants: list[str], overrides: dict | None = None) -> None:
    """One table per variant ``PASS:N`` (mean of views 0..N-1), folds with every view cached."""
    from gigavim.instances.metrics import InstanceScores
    from gigavim.models.catalog import read_meta
    from gigavim.train.evaluate import _score_objects
    from gigavim.train.metrics import scores

    for variant in variants:
        pass_, n = variant.split(":")
        print(f"\n**{variant}**{' ' + json.dumps(overrides) if overrides else ''}\n")
        print("| fold (held out) | images | nuclei | Dice model / base | AJI model / base | PQ model / base "
              "| DQ / SQ model | object F1 model / base |")
        print("|---|---|---|---|---|---|---|---|")
        pooled: dict[str, list] = {"model": [], "baseline": []}
        for path in sorted(pilot.glob("*.heldout.json")):
            fold = path.name.split(".")[0]
            if not (pilot / f"{fold}.eval.json").exists():
                continue
            meta = read_meta(pilot / f"{fold}.pt")
            objects = {**meta.instances, **(overrides or {})}
            base = {Path(r["image"]).stem: r["instances"]
                    for r in json.loads((pilot / f"{fold}.eval.json").read_text())["baseline"]["images"]}
            folder = out / "probs" / fold
            rows: dict[str, list] = {"model": [], "baseline": []}
            for image, *_ in json.loads(path.read_text()):
                stem = Path(image).stem
                files = [folder / f"{stem}.{pass_}.v{v}.npy" for v in range(int(n))]
                if not all(f.exists() for f in files):
                    rows = {}
                    break
                probs = np.mean([np.load(f).astype(np.float32) for f in files], axis=0)
                truth = np.load(folder / f"{stem}.truth.npy")
                size = json.loads((folder / f"{stem}.json").read_text())["pixel_size"]
                pixels, s = _score_objects(probs, truth, objects, size, InstanceScores(), stem,
                                           list(meta.classes))
                rows["model"].append({**s, "objects": scores(pixels, ["background", "nucleus"])})
                rows["baseline"].append(base[stem])
            if not rows:
                continue
            m, b = _pool(rows["model"]), _pool(rows["baseline"])
            print(f"| {fold} | {len(rows['model'])} | {_cells(m, b)}")
            if fold != "miccai2015":
                for k in rows:
                    pooled[k] += rows[k]
        if pooled["model"]:
            m, b = _pool(pooled["model"]), _pool(pooled["baseline"])
            print(f"| **MoNuSeg organ folds, pooled** | {len(pooled['model'])} | {_cells(m, b)}")


if __name__ == "__main__":
    cmd, pilot_dir, out_dir, *rest = sys.argv[1:]
    pilot_path, out_path = Path(pilot_dir), Path(out_dir)
    if cmd == "stains":
        stains(pilot_path, out_path)
    elif cmd == "views":
        view_arg = [int(v) for v in rest[1].split(",")]
        views(pilot_path, out_path, rest[0], rest[2:], view_arg)
    elif cmd == "stainfolds":
        stain_folds(pilot_path, out_path)
    elif cmd == "tilefolds":
        tile_folds(out_path, int(rest[0]), int(rest[1]))
    elif cmd == "score":
        extra = [a for a in rest if a.startswith("{")]
        score(pilot_path, out_path, [a for a in rest if not a.startswith("{")],
              json.loads(extra[0]) if extra else None)
    else:
        raise SystemExit(f"unknown command {cmd!r}")
