"""``bench engines``' TIAToolbox case: a child script for a side interpreter (TIAToolbox's venv).

TIAToolbox 2.x pins ``torch<2.13`` and cannot share gigavim's venv, so the parent runs this
file by path under another Python (``--tia-python``): it needs torch, numpy, TIAToolbox
(+ MONAI for the U-Net), never gigavim. Its siblings ``portable_net`` (the very network the
other engines run, rebuilt from the parent's saved description) and ``usage`` (the peak RSS and
CPU time every case reports) are imported as top-level modules from this script's folder.

The work is what a TIAToolbox user runs on a WSI: ``SemanticSegmentor(...).run([slide],
patch_mode=False, output_type="zarr")`` at level 0, patch 256, stride 192 (overlap 64), batch
4, its defaults otherwise: the automatic tissue mask (Otsu on a 1.25× thumbnail, patches outside
it skipped), no data-loader workers, per-pixel averaging of overlapping patches, softmax
probabilities merged then argmax labels written to a zarr on disk. Prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

if __package__:  # imported from gigavim (tests, the parent)
    from gigavim.benchmarks import portable_net, usage
else:  # run by path under the side interpreter: this file's folder is sys.path[0]
    import portable_net  # type: ignore[no-redef]
    import usage  # type: ignore[no-redef]


def command(python: str, description: str | Path, slide: str | Path, out: str | Path, device: str,
            threads: int, tile: int, overlap: int, batch: int) -> list[str]:
    """The side interpreter's command line for one case (this file run by path)."""
    return [str(python), str(Path(__file__).resolve()), str(description), str(slide), str(out), device,
            str(threads), str(tile), str(overlap), str(batch)]


def measure(description: str, slide: str, out: str, device: str, threads: str, tile: str,
            overlap: str, batch: str) -> dict[str, Any]:
    """Seconds, CPU seconds and peak RSS from the engine call to TIAToolbox's zarr on disk."""
    import torch

    torch.set_num_threads(int(threads))
    net, desc = portable_net.load(description)
    # imports before the clock, as the other cases: the engine, its slide reader, zarr
    import zarr
    from tiatoolbox.models.engine.io_config import IOSegmentorConfig
    from tiatoolbox.models.engine.semantic_segmentor import SemanticSegmentor

    model = tia_model(net, desc)
    size, step = int(tile), int(tile) - int(overlap)
    level0 = [{"units": "baseline", "resolution": 1.0}]  # level 0 (0.499 µm/px on CMU-1)
    ioconfig = IOSegmentorConfig(input_resolutions=level0, output_resolutions=level0,
                                 patch_input_shape=(size, size), patch_output_shape=(size, size),
                                 stride_shape=(step, step), save_resolution=level0[0])
    shutil.rmtree(out, ignore_errors=True)
    cpu_before = usage.cpu_seconds()
    started = time.perf_counter()
    segmentor = SemanticSegmentor(model=model, batch_size=int(batch), device=device, verbose=False)
    written = segmentor.run([Path(slide)], patch_mode=False, ioconfig=ioconfig, save_dir=Path(out),
                            overwrite=True, output_type="zarr", device=device)
    seconds = time.perf_counter() - started
    cpu_s = usage.cpu_seconds() - cpu_before
    path = next(iter(written.values())) if isinstance(written, dict) else written
    labels = zarr.open_group(str(path), mode="r")["predictions"]
    return {"seconds": seconds, "cpu_s": cpu_s, "megapixels": labels.shape[0] * labels.shape[1] / 1e6,
            "peak_rss_mib": usage.peak_rss_mib(), "labels_path": str(path),
            "versions": {"tiatoolbox": _version("tiatoolbox"), "torch": torch.__version__}}


def tia_model(net: Any, desc: dict[str, Any]) -> Any:
    """``net`` as a TIAToolbox ``ModelABC``: gigavim's input scaling, softmax out, argmax as postproc."""
    import numpy as np
    import torch
    from tiatoolbox.models.models_abc import ModelABC

    class PortableModel(ModelABC):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        @staticmethod
        def infer_batch(model: Any, batch_data: Any, *, device: str) -> np.ndarray:
            model.eval()
            with torch.inference_mode():
                x = portable_net.normalize(torch.as_tensor(batch_data), desc).to(device)
                probs = torch.softmax(model(x), dim=1)
            return probs.permute(0, 2, 3, 1).cpu().numpy()  # NHWC, as TIAToolbox merges them

        @staticmethod
        def postproc(image: np.ndarray) -> np.ndarray:
            return np.argmax(image, axis=-1).astype(np.uint8)

    return PortableModel().eval()


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


USAGE = "usage: tiatoolbox_case.py DESCRIPTION SLIDE OUT DEVICE THREADS TILE OVERLAP BATCH"

if __name__ == "__main__":
    if len(sys.argv) != 9:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    print(json.dumps(measure(*sys.argv[1:])))
