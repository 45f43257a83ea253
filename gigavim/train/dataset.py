"""Training images at the working resolution, and patch sampling from them.

Each (image, labels) pair is put on the model's training grid (µm/px for slides and microscopy,
m/px for rasters) — the very grid ``gigavim segment`` would work on
(:func:`gigavim.engine.plan.resolve_resolution`). The image stays on disk as a
:class:`WorkingImage`: every patch, validation tile or statistics strip is one
:class:`~gigavim.engine.reader.TileReader` read, so a model is trained and scored on exactly the
resampled pixels inference feeds it, and a whole-slide level is never loaded. Labels are held in
memory (one byte per working pixel). Patches are then drawn at random, class-balanced or
foreground-aware.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from gigavim.engine.plan import Resolution, resolve_resolution
from gigavim.errors import UsageError
from gigavim.io.base import ImageSource, Level, Window
from gigavim.io.windows import read_padded
from gigavim.train.labels import LabelMode, LabelNodata, load_label_map
from gigavim.train.metrics import IGNORE_LABEL
from gigavim.train.working_image import WorkingImage, row_blocks

Sampling = Literal["random", "balanced", "foreground"]


@dataclass
class TrainImage:
    """One image and its class-id labels on the same grid (labels use :data:`IGNORE_LABEL`)."""

    image: np.ndarray | WorkingImage  # (H, W, bands) pixel values, in memory or read lazily
    labels: np.ndarray  # (H, W) uint8
    path: Path
    label_path: Path | None = None
    kind: str = "image"
    pixel_size: dict[str, float] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape  # type: ignore[return-value]

    @property
    def value_dtype(self) -> np.dtype:
        """The dtype whose range the pixel values span: the file's, even when read as float32."""
        if isinstance(self.image, WorkingImage):
            return self.image.source_dtype
        return self.image.dtype

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> TrainImage:
        """A view of rows y0:y1 and columns x0:x1 (used to hold out a region); reads nothing."""
        image = (self.image.view(y0, y1, x0, x1) if isinstance(self.image, WorkingImage)
                 else self.image[y0:y1, x0:x1])
        return TrainImage(image, self.labels[y0:y1, x0:x1], self.path,
                          self.label_path, self.kind, dict(self.pixel_size))

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(pixels, labels) strips covering the image, so statistics never hold it all at once."""
        h, w = self.shape
        strips = self.image.strips() if isinstance(self.image, WorkingImage) else row_blocks(h, w)
        for y0, y1 in strips:
            yield np.asarray(self.image[y0:y1, 0:w]), self.labels[y0:y1]

    def close(self) -> None:
        """Release the file handle of a lazily read image (in-memory images hold none)."""
        if isinstance(self.image, WorkingImage):
            self.image.source.close()


def image_bands(path: str | Path) -> int:
    """The band count of an image file (header only), for up-front model checks."""
    from gigavim import open_image

    with open_image(path) as source:
        return source.bands


def training_resolution(source: ImageSource, mpp: float | None, gsd_m: float | None) -> Resolution:
    """The working grid ``segment`` uses for a requested µm/px or m/px (level 0 if none given).

    A request within 2 % of a pyramid level snaps to that level, as in the engine.
    """
    if mpp is not None and not source.mpp:
        raise UsageError(f"{source.path}: the image has no µm/px; give its pixel size "
                         "(--image-mpp) or train at its native resolution (no --mpp)")
    if gsd_m is not None and not source.gsd_m:
        raise UsageError(f"{source.path}: the image has no ground sample distance; "
                         "train at its native resolution (no --gsd)")
    return resolve_resolution(source, mpp=mpp, gsd_m=gsd_m)


def load_train_image(image_path: str | Path, label_path: str | Path, *, mpp: float | None = None,
                     gsd_m: float | None = None, image_mpp: float | None = None,
                     mode: LabelMode = "binary", value_map: Mapping[int, int] | None = None,
                     class_names: list[str] | None = None, boundary_um: float | None = None,
                     label_nodata: LabelNodata = "tag", bands: list[int] | None = None) -> TrainImage:
    """An image (read lazily) and its labels on the working grid ``segment`` would use.

    ``image_mpp`` supplies the µm/px of images that do not record one (PNG tiles); ``bands``
    (0-based) picks and orders the bands read, as ``segment --bands`` does. The returned
    image is a :class:`WorkingImage` holding the file open; call :meth:`TrainImage.close` when
    done with it.
    """
    from gigavim import open_image

    source = open_image(image_path)
    try:
        if image_mpp is not None and not source.mpp:
            source.mpp = image_mpp
        if bands is not None:
            from gigavim.engine.bands import BandView

            source = BandView(source, bands)
        res = training_resolution(source, mpp, gsd_m)
        labels = load_label_map(source, label_path, resolution=res, mode=mode, value_map=value_map,
                                class_names=class_names, boundary_um=boundary_um, label_nodata=label_nodata)
        image = WorkingImage(source, res)
        _ignore_invalid(image, labels)
    except BaseException:
        source.close()
        raise
    pixel_size = {}
    if source.mpp:
        pixel_size["mpp"] = float(source.mpp * res.downsample)
    if source.gsd_m:
        pixel_size["gsd_m"] = float(source.gsd_m * res.downsample)
    return TrainImage(image, labels, Path(image_path), Path(label_path), source.kind, pixel_size)


def _ignore_invalid(image: WorkingImage, labels: np.ndarray) -> None:
    """Mark the pixels the engine reads as no data (nodata, NaN, alpha 0) ignore, strip by strip.

    Slides have no such pixels for the engine (the unscanned area is composited on white and
    segmented like glass), so for them nothing is read here.
    """
    if image.source.kind == "slide":
        return
    for y0, y1 in image.strips():
        labels[y0:y1][~image.read(y0, y1, 0, labels.shape[1])[1]] = IGNORE_LABEL


def split_holdout(images: list[TrainImage], fraction: float,
                  gap: int = 0) -> tuple[list[TrainImage], list[TrainImage]]:
    """Hold out the right-most ``fraction`` of every image's columns for validation.

    A spatial split (not random pixels) so validation measures generalisation to unseen areas.
    ``gap`` columns left of the held-out part are dropped from training too, so no training
    patch (padded, not read, past its crop) touches pixels next to the held-out ones.
    """
    if not 0 < fraction < 1:
        return images, []
    train, val = [], []
    for img in images:
        h, w = img.shape
        cut = round(w * (1 - fraction))
        if cut - gap < 1:
            raise UsageError(f"{img.path}: a gap of {gap} columns leaves nothing to train on "
                             f"left of the held-out {fraction:g} of its {w} columns")
        train.append(img.crop(0, h, 0, cut - gap))
        val.append(img.crop(0, h, cut, w))
    return train, val


class PatchSampler:
    """Draws (patch, labels) pairs of a fixed size from training images.

    ``random``: an image in proportion to its labelled pixels, then a uniform position.
    ``balanced``: pick a class uniformly among those present in any image, then centre the patch
    on a random pixel of it over all images (rare classes are seen as often as common ones, even
    one found in a single small image). ``foreground``: like balanced with probability
    ``foreground_p`` for non-background classes, otherwise random. Patches reaching past an edge
    are padded and marked ignore.
    """

    def __init__(self, images: list[TrainImage], patch: int, num_classes: int,
                 sampling: Sampling = "balanced", foreground_p: float = 0.5,
                 seed: int = 0) -> None:
        if not images:
            raise UsageError("no training images")
        self.images, self.patch, self.num_classes = images, patch, num_classes
        self.sampling, self.foreground_p = sampling, foreground_p
        self.rng = np.random.default_rng(seed)
        self.weights = np.array([max(1, (im.labels != IGNORE_LABEL).sum()) for im in images], float)
        self.weights /= self.weights.sum()
        self._class_rows = [ClassRows(im.labels, num_classes) for im in images]
        self.present = sorted({c for rows in self._class_rows for c in rows.present})

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One (patch, patch, bands) raw image patch and its (patch, patch) labels."""
        cls = self._pick_class(self.present)
        if cls is None:
            i = int(self.rng.choice(len(self.images), p=self.weights))
            h, w = self.images[i].shape
            cy, cx = self.rng.integers(0, h), self.rng.integers(0, w)
        else:  # every pixel of the class equally likely, whichever image holds it
            counts = np.array([rows.count(cls) for rows in self._class_rows], float)
            i = int(self.rng.choice(len(self.images), p=counts / counts.sum()))
            cy, cx = self._class_rows[i].nth(cls, int(self.rng.integers(0, int(counts[i]))))
        im = self.images[i]
        half = self.patch // 2
        jitter = self.rng.integers(-half // 2, half // 2 + 1, size=2) if self.patch > 3 else (0, 0)
        y0, x0 = int(cy - half + jitter[0]), int(cx - half + jitter[1])
        return crop_padded(im.image, y0, x0, self.patch, 0), crop_padded(
            im.labels, y0, x0, self.patch, IGNORE_LABEL)

    def _pick_class(self, present: list[int]) -> int | None:
        if self.sampling == "random" or not present:
            return None
        if self.sampling == "foreground":
            fg = [c for c in present if c != 0]
            if not fg or self.rng.random() >= self.foreground_p:
                return None
            return int(self.rng.choice(fg))
        return int(self.rng.choice(present))

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, P, P, bands) images and (B, P, P) labels."""
        pairs = [self.sample() for _ in range(size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


class ClassRows:
    """Where each class lies in a label map, as cumulative per-row pixel counts.

    ``nth(c, k)`` is the k-th pixel of class ``c`` in row-major order, as a flat index array
    would give, but at the cost of one count per row and class instead of 8 bytes per pixel.
    """

    def __init__(self, labels: np.ndarray, num_classes: int) -> None:
        self.labels = labels
        h, w = labels.shape
        counts = np.zeros((h, num_classes), dtype=np.int64)
        for y0, y1 in row_blocks(h, w):
            strip = labels[y0:y1]
            for c in range(num_classes):
                counts[y0:y1, c] = np.count_nonzero(strip == c, axis=1)
        cumulative = np.cumsum(counts, axis=0)
        self.cumulative = {c: cumulative[:, c] for c in range(num_classes) if h and cumulative[-1, c]}
        self.present = sorted(self.cumulative)

    def count(self, cls: int) -> int:
        return int(self.cumulative[cls][-1]) if cls in self.cumulative else 0

    def nth(self, cls: int, k: int) -> tuple[int, int]:
        """(row, column) of the ``k``-th pixel (0-based, row-major) of class ``cls``."""
        cumulative = self.cumulative[cls]
        row = int(np.searchsorted(cumulative, k, side="right"))
        before = int(cumulative[row - 1]) if row else 0
        return row, int(np.flatnonzero(self.labels[row] == cls)[k - before])


def crop_padded(arr: np.ndarray | WorkingImage, y0: int, x0: int, size: int, fill: float) -> np.ndarray:
    """A copy of ``arr[y0:y0+size, x0:x0+size]`` with parts outside the array set to ``fill``."""
    h, w = arr.shape[:2]
    crop = read_padded(Window(y0, x0, size, size), Level(w, h, 1.0), fill, arr.shape[2:], arr.dtype,
                       lambda win: arr[win.y : win.y + win.height, win.x : win.x + win.width])
    return np.array(crop, copy=True)
