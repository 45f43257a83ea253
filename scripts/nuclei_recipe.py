"""Helpers of scripts/train_nuclei.sh: fold configs, threshold tuning, held-out evaluation, tables.

    python scripts/nuclei_recipe.py folds WORK RECIPE.json   # WORK/<fold>.train.json, .heldout.json
    python scripts/nuclei_recipe.py tune MODEL TRAIN.json    # thresholds on the fold's training images
    python scripts/nuclei_recipe.py evaluate MODEL HELDOUT.json OUT.json [TTA] [--baseline-from EVAL.json]
    python scripts/nuclei_recipe.py summarize WORK/*.eval.json             # markdown table

Folds: leave one MoNuSeg-2018 organ out (its images held out; the other organs and all 13 MICCAI-
2015 tiles train), plus "miccai2015" (all MoNuSeg trains, the 13 MICCAI tiles are held out), plus
"final" (everything trains, nothing held out: the shipped model), plus "base-miccai" (the 13 MICCAI
tiles only: the organ folds start from it, so no organ is ever seen by its own fold). Every pair
carries its µm/px:
MoNuSeg 0.25, MICCAI 0.5 (20x: 01–06) or 0.25 (40x: 08–15).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DATA = Path(os.environ.get("GIGAVIM_REAL_DATA",
                          Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"))
MICCAI_20X = ("01", "02", "03", "04", "05", "06")
MICCAI_40X = ("08", "09", "10", "11", "12", "13", "15")
BASE_A_ORGANS = ("kidney", "breast", "liver", "prostate")


def monuseg() -> dict[str, list[list]]:
    """Organ → [image, labels, µm/px] triples of the MoNuSeg training images present."""
    root = DATA / "nuclei_monuseg2018_train"
    organs = json.loads((root / "organs.json").read_text())
    out: dict[str, list[list]] = {}
    for image in sorted((root / "images").glob("*.tif")):
        out.setdefault(organs[image.stem], []).append(
            [str(image), str(root / "labels" / f"{image.stem}_label.png"), 0.25])
    return out


def miccai() -> list[list]:
    root = DATA / "nuclei_miccai2015"
    return [[str(root / f"image{t}.png"), str(root / f"image{t}_label.png"), 0.5 if t in MICCAI_20X else 0.25]
            for t in (*MICCAI_20X, *MICCAI_40X)]


def folds(work: Path, recipe: Path) -> None:
    base = json.loads(recipe.read_text())
    organs = monuseg()
    all_monuseg = [p for pairs in organs.values() for p in pairs]
    plan = {organ: ([p for o, ps in organs.items() if o != organ for p in ps] + miccai(), organs[organ])
            for organ in sorted(organs)}
    plan["miccai2015"] = (all_monuseg, miccai())
    plan["final"] = (all_monuseg + miccai(), [])
    plan["final-more"] = (all_monuseg + miccai(), [])  # final, trained on once the folds are done
    # Warm starts: "base-a" (four organs, no MICCAI tile) for the folds of the other three organs,
    # for miccai2015 and for final; "base-b" (the other three organs + MICCAI) for the folds of
    # base-a's four organs. No fold ever starts from a base that saw its held-out images.
    group_a = [o for o in BASE_A_ORGANS if o in organs]
    plan["base-a"] = ([p for o in group_a for p in organs[o]], [])
    plan["base-b"] = ([p for o, ps in organs.items() if o not in group_a for p in ps] + miccai(), [])
    work.mkdir(parents=True, exist_ok=True)
    for name, (train, held) in plan.items():
        cfg = {**base, "pairs": train, "out": str(work / f"{name}.pt"),
               "state_path": str(work / f"{name}.state.pt")}
        (work / f"{name}.train.json").write_text(json.dumps(cfg, indent=1))
        if held:
            (work / f"{name}.heldout.json").write_text(json.dumps(held, indent=1))
    print(" ".join(plan))


def tune(model: Path, train_json: Path, max_images: int = 6) -> None:
    """Pick the post-processing thresholds on (an even subset of) the fold's training images."""
    import numpy as np

    from gigavim.instances.tune import TuningImage, tune_method
    from gigavim.models.catalog import load_model
    from gigavim.train.dataset import load_train_image
    from gigavim.train.evaluate import _instance_truth
    from gigavim.train.predict import predict_probabilities

    bundle = load_model(str(model))
    pairs = json.loads(train_json.read_text())["pairs"]
    step = max(1, len(pairs) // max_images)
    images = []
    for image, labels, mpp in pairs[::step][:max_images]:
        im = load_train_image(image, labels, mpp=bundle.meta.mpp, image_mpp=mpp)
        try:
            truth = _instance_truth(im, labels)
            probs = predict_probabilities(bundle, im.image, tile=bundle.meta.tile,
                                          overlap=bundle.meta.overlap)
        finally:
            im.close()
        images.append(TuningImage(probs, truth, im.pixel_size.get("mpp")))
    best, tried = tune_method(images, dict(bundle.meta.instances))
    best["tuned_on"] = f"{len(images)} training images"
    bundle.meta.instances = best
    bundle.save(model)
    top = max(tried, key=lambda t: (t["aji"] or 0) + (t["pq"] or 0))
    keys = ("method", "foreground_threshold", "marker_threshold", "min_marker_px", "marker_height_px",
            "boundary_weight")
    print(json.dumps({"chosen": {k: best[k] for k in keys if k in best},
                      "train_aji": top["aji"], "train_pq": top["pq"], "train_f1": top["object_f1"],
                      "images": len(images)}, default=float))
    del np


def evaluate(model: Path, heldout: Path, out: Path, tta: int | None = None,
             baseline_from: Path | None = None) -> None:
    """The held-out images scored for the model (``tta`` views; default: the model's) and the
    baseline. The baseline does not depend on the model: ``baseline_from`` (an earlier result of
    the same images on the same grid) is reused instead of recomputed."""
    from gigavim.models.catalog import load_model
    from gigavim.train.evaluate import evaluate as run_eval
    from gigavim.train.evaluate import evaluate_baseline

    bundle = load_model(str(model))
    pairs = [tuple(p) for p in json.loads(heldout.read_text())]
    baseline = json.loads(baseline_from.read_text()).get("baseline") if baseline_from else None
    if baseline is None or [im["image"] for im in baseline["images"]] != [p[0] for p in pairs]:
        baseline = evaluate_baseline(pairs, mpp=bundle.meta.mpp)
    result = {"model": run_eval(bundle, pairs, instances=True, tta=tta), "baseline": baseline}
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(out)


def _pool(rows: list[dict]) -> dict[str, float | None]:
    """Pooled scores over images' raw counts (objects summed over every image of the rows)."""
    tp = sum(r["tp"] for r in rows)
    fp = sum(r["fp"] for r in rows)
    fn = sum(r["fn"] for r in rows)
    iou = sum(r["iou_sum"] for r in rows)
    inter = sum(r["aji_inter"] for r in rows)
    union = sum(r["aji_union"] for r in rows)
    cm = [[sum(r["objects"]["confusion_matrix"][i][j] for r in rows) for j in range(2)] for i in range(2)]
    dq = tp / (tp + 0.5 * (fp + fn)) if tp + fp + fn else None
    sq = iou / tp if tp else None
    errors = cm[0][1] + cm[1][0]
    return {"dice": 2 * cm[1][1] / (2 * cm[1][1] + errors) if cm[1][1] + errors else None,
            "aji": inter / union if union else None, "dq": dq, "sq": sq,
            "pq": dq * sq if dq is not None and sq is not None else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None, "nuclei": tp + fn}


def _cells(m: dict, b: dict) -> str:
    """Table cells after the image count: nuclei, then model / baseline per score."""
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    pairs = " | ".join(f"{f(m[k])} / {f(b[k])}" for k in ("dice", "aji", "pq"))
    return f"{m['nuclei']} | {pairs} | {f(m['dq'])} / {f(m['sq'])} | {f(m['f1'])} / {f(b['f1'])} |"


def summarize(paths: list[Path]) -> None:
    print("| fold (held out) | images | nuclei | Dice model / base | AJI model / base | PQ model / base "
          "| DQ / SQ model | object F1 model / base |")
    print("|---|---|---|---|---|---|---|---|")
    pooled: dict[str, dict[str, list]] = {"monuseg": {"model": [], "baseline": []}}
    for path in paths:
        result = json.loads(path.read_text())
        rows = {k: [im["instances"] for im in result[k]["images"]] for k in ("model", "baseline")}
        m, b = _pool(rows["model"]), _pool(rows["baseline"])
        name = path.name.split(".")[0]
        if name != "miccai2015":
            for k in rows:
                pooled["monuseg"][k] += rows[k]
        print(f"| {name} | {len(rows['model'])} | {_cells(m, b)}")
    if pooled["monuseg"]["model"]:
        m, b = _pool(pooled["monuseg"]["model"]), _pool(pooled["monuseg"]["baseline"])
        print(f"| **MoNuSeg organ folds, pooled** | {len(pooled['monuseg']['model'])} | {_cells(m, b)}")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "folds":
        folds(Path(args[0]), Path(args[1]))
    elif cmd == "tune":
        tune(Path(args[0]), Path(args[1]), *(int(a) for a in args[2:]))
    elif cmd == "evaluate":
        reuse = Path(args.pop(args.index("--baseline-from") + 1)) if "--baseline-from" in args else None
        args = [a for a in args if a != "--baseline-from"]
        evaluate(Path(args[0]), Path(args[1]), Path(args[2]), *(int(a) for a in args[3:]),
                 baseline_from=reuse)
    elif cmd == "summarize":
        summarize([Path(a) for a in args])
    else:
        raise SystemExit(f"unknown command {cmd!r}")
