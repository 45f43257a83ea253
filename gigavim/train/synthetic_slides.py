"""Synthetic low-resolution slide scenes for the tissue model, labelled by construction.

There is no labelled tissue data to train a tissue detector on, so training scenes are made:
glass background (tinted, noisy, uneven illumination) with tissue-shaped regions filled with real
H&E texture, and the artefacts a tissue detector must not call tissue — pen strokes, air bubbles,
dust and fibres, dark slide/coverslip edges — plus blur. Labels come from how each scene was
built (an artefact over glass is background; tissue under ink or a bubble stays tissue), so they
are exact for these scenes. Real tissue is labelled with :func:`pseudo_tissue_mask` (colour +
morphology), which is a heuristic and is documented as such in the model card.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import color, draw, filters, morphology

PEN_COLOURS = [(30, 70, 170), (35, 140, 75), (30, 30, 35), (175, 40, 55), (20, 110, 120)]


def pseudo_tissue_mask(rgb: np.ndarray, min_size: int = 64) -> np.ndarray:
    """Tissue = saturated or darker than glass (Otsu), not green/blue ink, cleaned morphologically."""
    hsv = color.rgb2hsv(rgb[..., :3])
    sat, val, hue = hsv[..., 1], hsv[..., 2], hsv[..., 0]
    s_thr = max(filters.threshold_otsu(sat), 0.07)
    v_thr = min(filters.threshold_otsu(val), 0.85)
    tissue = (sat > s_thr) | (val < v_thr)
    ink = (hue > 0.2) & (hue < 0.6) & (sat > 0.15)  # green/teal/blue marker, not H&E pink/purple
    tissue &= ~ink
    tissue = ndi.binary_closing(tissue, structure=morphology.disk(2))
    tissue = ~_drop_small(~tissue, min_size)  # fill small holes, keep real lumina / gaps
    return _drop_small(tissue, min_size)


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """``mask`` without connected components smaller than ``min_size`` pixels."""
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def smooth_blob(shape: tuple[int, int], rng: np.random.Generator, coverage: float) -> np.ndarray:
    """A random smooth region covering about ``coverage`` of the canvas."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape), sigma=min(shape) / rng.uniform(6, 12))
    return noise > np.quantile(noise, 1 - coverage)


def tile_texture(texture: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Fill ``shape`` with mirrored copies of a randomly flipped/rotated texture."""
    tex = np.rot90(texture, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        tex = tex[:, ::-1]
    reps = (shape[0] // tex.shape[0] + 2, shape[1] // tex.shape[1] + 2)
    big = np.pad(tex, ((0, tex.shape[0] * (reps[0] - 1)), (0, tex.shape[1] * (reps[1] - 1)), (0, 0)),
                 mode="symmetric")
    y, x = rng.integers(0, tex.shape[0]), rng.integers(0, tex.shape[1])
    return big[y : y + shape[0], x : x + shape[1]]


def glass(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Empty slide glass: bright, slightly tinted, noisy, unevenly lit."""
    base = rng.uniform(215, 248) + rng.uniform(-6, 6, size=3)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    ramp = rng.uniform(-12, 12) * yy + rng.uniform(-12, 12) * xx
    img = base[None, None, :] + ramp[..., None] + rng.normal(0, rng.uniform(1, 4), (*shape, 3))
    return img


def add_pen(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A thick smooth marker stroke; returns the mask it covers."""
    h, w = img.shape[:2]
    n = 6
    pts = np.cumsum(rng.normal(0, max(h, w) / 6, size=(n, 2)), axis=0) + rng.uniform(0, [h, w])
    t = np.linspace(0, 1, 200)
    curve = np.stack([np.interp(t, np.linspace(0, 1, n), pts[:, i]) for i in range(2)], axis=1)
    mask = np.zeros((h, w), bool)
    inside = (curve[:, 0] >= 0) & (curve[:, 0] < h) & (curve[:, 1] >= 0) & (curve[:, 1] < w)
    mask[curve[inside, 0].astype(int), curve[inside, 1].astype(int)] = True
    mask = ndi.binary_dilation(mask, iterations=int(rng.integers(2, 6)))
    colour = np.array(PEN_COLOURS[int(rng.integers(0, len(PEN_COLOURS)))], float)
    alpha = rng.uniform(0.5, 0.9)
    img[mask] = img[mask] * (1 - alpha) + colour * alpha
    return mask


def add_bubble(img: np.ndarray, rng: np.random.Generator) -> None:
    """An air bubble: a dark thin rim and a slightly shifted interior."""
    h, w = img.shape[:2]
    r = rng.uniform(8, min(h, w) / 3)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    rr, cc = draw.disk((cy, cx), r, shape=(h, w))
    img[rr, cc] = img[rr, cc] * rng.uniform(0.93, 1.04)
    rim = np.zeros((h, w), bool)
    rr, cc = draw.circle_perimeter(int(cy), int(cx), int(r), shape=(h, w))
    rim[rr, cc] = True
    rim = ndi.binary_dilation(rim, iterations=int(rng.integers(0, 2)))
    img[rim] = img[rim] * 0.4 + rng.uniform(90, 150) * 0.6


def add_dust(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark specks and short fibres; returns their mask."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(5, 40))):
        rr, cc = draw.disk((rng.uniform(0, h), rng.uniform(0, w)), rng.uniform(0.7, 3), shape=(h, w))
        mask[rr, cc] = True
    for _ in range(int(rng.integers(0, 5))):
        y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        ang, ln = rng.uniform(0, np.pi), rng.uniform(8, 40)
        rr, cc = draw.line(int(y0), int(x0), int(np.clip(y0 + ln * np.sin(ang), 0, h - 1)),
                           int(np.clip(x0 + ln * np.cos(ang), 0, w - 1)))
        mask[np.clip(rr, 0, h - 1), np.clip(cc, 0, w - 1)] = True
    img[mask] = img[mask] * 0.3 + rng.uniform(20, 110) * 0.7
    return mask


def add_edge(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark band along one side (slide or coverslip edge, label area); returns its mask."""
    h, w = img.shape[:2]
    width = int(rng.integers(4, max(5, min(h, w) // 5)))
    mask = np.zeros((h, w), bool)
    side = int(rng.integers(0, 4))
    sl = [(slice(0, width), slice(None)), (slice(h - width, h), slice(None)),
          (slice(None), slice(0, width)), (slice(None), slice(w - width, w))][side]
    mask[sl] = True
    img[mask] = rng.uniform(10, 90) + rng.normal(0, 4, (int(mask.sum()), 3))
    return mask


def make_scene(textures: list[np.ndarray], rng: np.random.Generator,
               shape: tuple[int, int] = (192, 192)) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic scene (uint8 RGB) and its labels (0 glass/artefact, 1 tissue)."""
    img = glass(shape, rng)
    tissue = smooth_blob(shape, rng, rng.uniform(0.0, 0.6)) if rng.random() < 0.85 else np.zeros(shape, bool)
    if tissue.any():
        tex = tile_texture(textures[int(rng.integers(0, len(textures)))], shape, rng).astype(float)
        pale = rng.uniform(0.6, 1.0)  # faint / fatty tissue is still tissue
        img[tissue] = img[tissue] * (1 - pale) + tex[tissue] * pale
    if rng.random() < 0.5:
        add_bubble(img, rng)
    if rng.random() < 0.5:
        add_pen(img, rng)
    if rng.random() < 0.6:
        add_dust(img, rng)
    if rng.random() < 0.3:
        edge = add_edge(img, rng)
        tissue &= ~edge
    if rng.random() < 0.3:
        img = ndi.gaussian_filter(img, sigma=(rng.uniform(0.5, 2.5),) * 2 + (0,))
    return np.clip(img, 0, 255).astype(np.uint8), tissue.astype(np.uint8)
