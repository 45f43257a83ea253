"""Print per-file and pooled scores of ``gigavim eval --json`` outputs (for the model cards)."""

from __future__ import annotations

import json
import sys

import numpy as np

from gigavim.train.metrics import scores


def main(paths: list[str]) -> None:
    total = None
    for path in paths:
        result = json.load(open(path))
        overall = result["overall"]
        fg = overall["per_class"][-1]
        print(f"{path}: {fg['class']} Dice {fg['dice']:.4f} IoU {fg['iou']:.4f}  "
              f"pixel accuracy {overall['pixel_accuracy']:.4f}")
        cm = np.array(overall["confusion_matrix"])
        total = cm if total is None else total + cm
        classes = result["classes"]
    if total is not None and len(paths) > 1:
        pooled = scores(total, classes)
        fg = pooled["per_class"][-1]
        print(f"pooled: {fg['class']} Dice {fg['dice']:.4f} IoU {fg['iou']:.4f}  "
              f"pixel accuracy {pooled['pixel_accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
