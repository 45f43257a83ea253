"""Training-time augmentation on raw (B, H, W, bands) patches and their (B, H, W) labels.

Geometric changes (flips, 90° rotations, optional zoom and small rotations) apply to image and
labels alike; photometric ones (colour jitter, H&E stain jitter, blur, JPEG re-compression) to the
image only. Stain jitter perturbs each pixel's haematoxylin/eosin/DAB optical densities
(``skimage.color.rgb2hed``), which mimics the slide-to-slide staining variation that plain RGB
jitter does not; blur and JPEG mimic other scanners' optics and the compression of most whole-
slide files. Every random choice comes from the caller's generator, so a seeded run is repeatable.
"""

from __future__ import annotations

import numpy as np

from gigavim.train.config import AugmentConfig
from gigavim.train.metrics import IGNORE_LABEL

__all__ = ["AugmentConfig", "augment_batch", "colour_jitter", "geometric", "stain_jitter", "zoom_rotate"]


def augment_batch(images: np.ndarray, labels: np.ndarray, cfg: AugmentConfig,
                  rng: np.random.Generator, value_max: float = 255.0,
                  clip: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Augment every sample independently; returns float32 images in the input's value range.

    Unsigned-integer images are clipped to [0, value_max]; float and signed images (dB,
    elevation, indices: possibly negative) are not clipped, and NaN stays where it was. ``clip``
    overrides that choice (resampled uint8 pixels arrive as float32 but are still 0..255).
    """
    bounded = np.issubdtype(images.dtype, np.unsignedinteger) if clip is None else clip
    out_img = np.empty(images.shape, dtype=np.float32)
    out_lab = np.empty_like(labels)
    for i in range(images.shape[0]):
        img, lab = geometric(images[i], labels[i], cfg, rng)
        img = img.astype(np.float32)
        if cfg.stain > 0 and img.shape[-1] == 3:
            img = stain_jitter(img, cfg.stain, rng, value_max)
        img = colour_jitter(img, cfg, rng, value_max, clip=bounded)
        if cfg.blur_p > 0 and rng.random() < cfg.blur_p:
            img = blur(img, float(rng.uniform(0.3, max(cfg.blur_sigma, 0.3))))
        if cfg.jpeg_p > 0 and img.shape[-1] in (1, 3) and rng.random() < cfg.jpeg_p:
            img = jpeg_round_trip(img, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)),
                                  value_max)
        out_img[i], out_lab[i] = img, lab
    return out_img, out_lab


def geometric(img: np.ndarray, lab: np.ndarray, cfg: AugmentConfig,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, 90° rotations and (if configured) zoom/rotation, the same for image and labels."""
    if cfg.zoom > 0 or cfg.rotate_deg > 0:
        img, lab = zoom_rotate(img, lab, cfg, rng)
    if cfg.flips and rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    if cfg.flips and rng.random() < 0.5:
        img, lab = img[::-1], lab[::-1]
    if cfg.rotate90:
        k = int(rng.integers(0, 4))
        img, lab = np.rot90(img, k), np.rot90(lab, k)
    return img, lab


def zoom_rotate(img: np.ndarray, lab: np.ndarray, cfg: AugmentConfig,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scale by ``exp(U(±ln(1 + zoom)))`` and rotate by ``U(±rotate_deg)``° about the patch centre
    (scipy's affine resampling: bilinear pixels, nearest labels). The patch keeps its shape; label
    pixels brought in from outside it are unlabelled (:data:`IGNORE_LABEL`), their image pixels
    mirrored, so the loss never learns from invented context."""
    from scipy.ndimage import affine_transform

    s = float(np.exp(rng.uniform(-1, 1) * np.log1p(cfg.zoom)))
    a = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    # affine_transform maps output → input coordinates: the inverse of "rotate by a, scale by s".
    inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) / s
    centre = (np.array(lab.shape[:2], dtype=np.float64) - 1) / 2
    offset = centre - inv @ centre
    bands = [affine_transform(np.asarray(img[..., b], np.float32), inv, offset=offset, order=1,
                              mode="mirror") for b in range(img.shape[-1])]
    out_lab = affine_transform(np.asarray(lab), inv, offset=offset, order=0, mode="constant",
                               cval=IGNORE_LABEL)
    return np.stack(bands, axis=-1), out_lab.astype(lab.dtype)


def colour_jitter(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
                  value_max: float, clip: bool = True) -> np.ndarray:
    """Brightness (additive), contrast (around the mean) and saturation (towards grey).

    The mean ignores NaN (nodata) so one NaN pixel does not blank the patch; ``clip`` bounds the
    result to [0, value_max] (for unsigned-integer images).
    """
    if cfg.brightness > 0:
        img = img + rng.uniform(-cfg.brightness, cfg.brightness) * value_max
    if cfg.contrast > 0:
        mean = _nanmean_or_zero(img, axis=(0, 1))
        img = (img - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    if cfg.saturation > 0 and img.shape[-1] == 3:
        grey = img.mean(axis=-1, keepdims=True)
        img = (img - grey) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + grey
    return np.clip(img, 0, value_max) if clip else img


def _nanmean_or_zero(img: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """Per-band mean over valid (non-NaN) pixels; 0 for an all-NaN band."""
    valid = ~np.isnan(img)
    total = np.where(valid, img, 0).sum(axis=axis, keepdims=True)
    return total / np.maximum(valid.sum(axis=axis, keepdims=True), 1)


def stain_jitter(img: np.ndarray, strength: float, rng: np.random.Generator,
                 value_max: float = 255.0) -> np.ndarray:
    """Perturb H, E and DAB optical densities: ``od * U(1±s) + U(±s/10)`` per channel."""
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(np.clip(img / value_max, 0, 1))
    scale = rng.uniform(1 - strength, 1 + strength, size=3)
    shift = rng.uniform(-strength / 10, strength / 10, size=3)
    rgb = hed2rgb(hed * scale + shift)
    return np.clip(rgb, 0, 1).astype(np.float32) * value_max


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every band (not across bands): a softer lens or focus."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma=(sigma, sigma, 0), mode="reflect").astype(np.float32)


def jpeg_round_trip(img: np.ndarray, quality: int, value_max: float = 255.0) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode (Pillow): the block and ringing artefacts of
    JPEG-compressed slides. Values are scaled to 8 bits and back."""
    import io

    from PIL import Image

    grey = img.shape[-1] == 1
    eight = np.clip(np.nan_to_num(img) / value_max * 255.0 + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(eight[..., 0] if grey else eight).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = np.asarray(Image.open(buf), dtype=np.float32) / 255.0 * value_max
    return out[..., None] if grey else out
