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


# -- instance models: nuclei drawn as colours, classified pixel by pixel ------------------------
GLASS, EOSIN = (243, 243, 246), (233, 160, 196)
NUCLEUS, RIM = (92, 52, 150), (30, 15, 40)


class ColourNet(nn.Module):
    """Per-pixel nearest colour → background / nucleus / boundary logits (receptive field 1 px).

    Tiles then agree exactly wherever they overlap, so the blended map is the image's own.
    """

    def __init__(self, colours: list[list[tuple[int, int, int]]], sharpness: float = 200.0) -> None:
        super().__init__()
        self.colours = [torch.tensor(c, dtype=torch.float32)[:, :, None, None] / 255 for c in colours]
        self.sharpness = sharpness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_class = [-(((x[:, None] - c[None]) ** 2).sum(2)).amax(1) for c in self.colours]
        return torch.stack(per_class, 1) * self.sharpness


def nuclei_bundle(*, mpp: float | None = 0.5, tile: int = 256, overlap: int = 32,
                  instances: dict | None = None, max_size_um: float = 64.0) -> ModelBundle:
    """A three-class nuclei "model" reading the colours of :func:`nuclei_scene`."""
    meta = ModelMeta(
        name="colour-nuclei", classes=["background", "nucleus", "boundary"],
        colors=[(0, 0, 0), (220, 40, 40), (40, 40, 220)], arch={"name": "colour"}, bands=3,
        mean=[0.0] * 3, std=[1.0] * 3, mpp=mpp, tile=tile, overlap=overlap, trained=True,
        instances={"method": "three-class-watershed", "object_class": "nucleus", "interior": 1,
                   "boundary": 2, "min_area_um2": 5.0, "max_size_um": max_size_um}
        if instances is None else instances,
    )
    return ModelBundle(ColourNet([[GLASS, EOSIN], [NUCLEUS], [RIM]]).eval(), meta)


def nuclei_scene(centre: tuple[int, int], half: int = 400, scale: float = 1.0,
                 bar: bool = True) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Pixels (from broadcastable yy, xx) of a square of tissue around ``centre`` on glass.

    The tissue holds pairs of touching nuclei (two overlapping discs of radius 9, a dark rim
    around them and where they meet) every 40 px, placed so that pairs straddle the row and
    column through ``centre``; with ``bar`` a long nucleus-coloured bar (far larger than any
    nucleus) crosses the centre column. ``scale`` multiplies every length (not ``half``).
    """
    cy, cx = centre
    spacing, r2_out, r2_in = 40 * scale, (9 * scale) ** 2, (6.5 * scale) ** 2

    def paint(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        yy, xx = np.broadcast_arrays(yy, xx)
        img = np.empty((*yy.shape, 3), np.uint8)
        img[:] = GLASS
        if yy.max() <= cy - half or yy.min() >= cy + half or xx.max() <= cx - half or xx.min() >= cx + half:
            return img  # glass only: most of a slide
        tissue = (abs(yy - cy) < half) & (abs(xx - cx) < half)
        img[tissue] = EOSIN
        cell_y, cell_x = (yy - cy + spacing / 2) // spacing, (xx - cx + 7 * scale) // spacing
        gy, gx = yy - cy - cell_y * spacing, xx - cx - cell_x * spacing
        jitter = (cell_y * 7 + cell_x * 3) % 5 * scale
        d_a = gy**2 + (gx - jitter) ** 2
        d_b = gy**2 + (gx - 14 * scale - jitter) ** 2
        inside = tissue & ((d_a < r2_out) | (d_b < r2_out)) & (abs(yy - cy) < half - spacing)
        rim = inside & (((d_a >= r2_in) & (d_b >= r2_in)) | ((d_a < r2_out) & (d_b < r2_out)))
        img[inside] = NUCLEUS
        img[rim] = RIM
        if bar:
            bar_y, edge = cy + half - 20 * scale, 2 * scale
            in_bar = (abs(yy - bar_y) < 10 * scale) & (abs(xx - cx) < half - 40 * scale)
            img[in_bar] = NUCLEUS
            img[in_bar & ((abs(yy - bar_y) >= 10 * scale - edge)
                          | (abs(xx - cx) >= half - 40 * scale - edge))] = RIM
        return img

    return paint
