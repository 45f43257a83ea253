"""Small, checkable stand-ins for engine and CLI tests: in-memory sources and tiny conv models.

A 2-layer 3×3 conv net has a receptive field of 5×5 px, so a tile's prediction equals the
whole-image prediction everywhere more than 2 px inside the tile: that is what makes the
tiled-equals-single-pass test exact rather than approximate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gigavim.io.base import ImageSource, Level, Window
from gigavim.io.windows import read_padded
from gigavim.models.bundle import ModelBundle, ModelMeta


class ArraySource(ImageSource):
    """An ImageSource over in-memory levels (level 0 first), for exact expectations."""

    def __init__(self, levels: list[np.ndarray], *, kind: str = "slide", mpp: float | None = 0.5,
                 gsd_m: float | None = None, nodata: float | None = None, transform=None,
                 crs: str | None = None, valid: np.ndarray | None = None) -> None:
        h0 = levels[0].shape[0]
        super().__init__(
            path=Path("array-source.tif"), kind=kind, format="memory",  # type: ignore[arg-type]
            levels=[Level(a.shape[1], a.shape[0], h0 / a.shape[0]) for a in levels],
            bands=levels[0].shape[2], dtype=levels[0].dtype, nodata=nodata, mpp=mpp, gsd_m=gsd_m,
            crs=crs, transform=transform,
        )
        self.arrays = levels
        self.valid = valid
        self.reads: list[tuple[int, Window]] = []

    def read(self, level: int, window: Window) -> np.ndarray:
        self.reads.append((level, window))
        arr = self.arrays[level]
        return read_padded(window, self.levels[level], self.fill_value, (self.bands,), self.dtype,
                           lambda w: arr[w.y:w.y + w.height, w.x:w.x + w.width])

    def read_valid(self, level: int, window: Window) -> np.ndarray:
        if self.valid is None or level != 0:
            return super().read_valid(level, window)
        valid = self.valid
        return read_padded(window, self.levels[0], False, (), np.dtype(bool),
                           lambda w: valid[w.y:w.y + w.height, w.x:w.x + w.width])


class FunctionSource(ImageSource):
    """A single-level slide whose pixels are computed from their coordinates (never stored)."""

    def __init__(self, height: int, width: int, pixel: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 mpp: float = 0.5) -> None:
        super().__init__(path=Path("function-source.svs"), kind="slide", format="memory",
                         levels=[Level(width, height, 1.0)], bands=3, dtype=np.dtype(np.uint8), mpp=mpp)
        self.pixel = pixel

    def read(self, level: int, window: Window) -> np.ndarray:
        yy, xx = np.ogrid[window.y:window.y + window.height, window.x:window.x + window.width]
        out = self.pixel(yy, xx).astype(np.uint8)
        out[((yy < 0) | (yy >= self.height))[:, 0]] = 255
        out[:, ((xx < 0) | (xx >= self.width))[0]] = 255
        return out


def blobs(yy: np.ndarray, xx: np.ndarray, period: int = 300, radius: int = 90) -> np.ndarray:
    """Pink textured discs on white glass on a regular grid: tissue-like, with a known mask.

    ``yy``/``xx`` may be broadcastable (np.ogrid) so a large window costs little memory.
    """
    cy, cx = (yy % period) - period // 2, (xx % period) - period // 2
    inside = (cy**2 + cx**2) < radius**2
    ripple = (20 * np.sin(yy / 7.0) * np.cos(xx / 5.0)).astype(np.int16)
    img = np.full((*inside.shape, 3), 245, dtype=np.int16)
    img[inside] = np.array([200, 90, 160], dtype=np.int16)
    img += np.where(inside, ripple, 0)[..., None]
    return np.clip(img, 0, 255)


class TinyConvNet(nn.Module):
    """Two 3×3 convolutions: a 5×5 receptive field, deterministic weights from ``seed``."""

    def __init__(self, bands: int = 3, classes: int = 2, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = nn.Conv2d(bands, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, classes, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(torch.relu(self.c1(x)))


def tiny_bundle(*, classes: int = 2, trained: bool = True, mpp: float | None = None,
                gsd_m: float | None = None, tile: int = 128, overlap: int = 32, bands: int = 3,
                seed: int = 0) -> ModelBundle:
    meta = ModelMeta(
        name="tiny-conv", classes=["background", *[f"class{i}" for i in range(1, classes)]],
        colors=[(0, 0, 0), *[(255, 40 * i % 256, 0) for i in range(1, classes)]],
        arch={"name": "tiny-conv"}, bands=bands, mean=[0.5] * bands, std=[0.25] * bands,
        mpp=mpp, gsd_m=gsd_m, tile=tile, overlap=overlap, trained=trained,
    )
    return ModelBundle(TinyConvNet(bands, classes, seed).eval(), meta)


S2_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def s2_bundle_file(path: Path) -> Path:
    """An untrained 13-band Sentinel-2 Vim bundle on disk (for ``--model PATH``): its contract
    names the bands B1…B12, int16 reflectance ×10⁴, fixed scale 1e-4."""
    from gigavim.models import build_segmenter
    from gigavim.models.contract import InputContract

    arch = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 8, "stride": 8, "img_size": 32,
                         "cls_token": "none", "pos_embed_mode": "sincos", "in_chans": 13},
            "head": {"kind": "light"}, "num_classes": 2}
    contract = InputContract(bands=S2_BANDS, dtype="int16", sensor="Sentinel-2 MSI L1C",
                             value_range=[[0.0, 10000.0]] * 13, scaling={"method": "fixed", "scale": 1e-4})
    meta = ModelMeta(name="s2-test", classes=["land", "water"], colors=[(0, 0, 0), (0, 0, 255)], arch=arch,
                     bands=13, mean=[0.1] * 13, std=[0.1] * 13, tile=64, overlap=16,
                     input_contract=contract.to_dict())
    torch.manual_seed(0)
    return ModelBundle(build_segmenter(**arch).eval(), meta).save(path)
