"""Dense predictions → one integer id per object (marker-controlled watershed).

Two routes, both ending in `skimage.segmentation.watershed`:

* `instances_from_probabilities`: a three-class model (background, object interior, object
  boundary). Interior pixels far from a boundary seed one marker per object; the watershed
  floods the foreground (interior + boundary) from those markers over the boundary probability,
  so touching objects split along the boundary the model saw.
* `instances_from_distance`: the same three-class map, but one marker per h-maximum of the
  distance to background damped by the boundary probability. A model that is not yet sure of
  thin boundaries still gives one marker per round nucleus (measured better on held-out organs
  for the bundled `nuclei-he`, whose interior-minus-boundary markers missed or merged nuclei).
* `instances_from_foreground`: only a foreground mask (a binary model, or the classical
  baseline). Markers are the h-maxima of the distance transform, so touching round objects split
  at their necks.

`haematoxylin_baseline` is the classical nuclei segmentation pathologists' tools start from
(colour deconvolution → Otsu → distance-transform watershed), scored by the same code as the
models so that the tables compare like with like.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.color import hed_from_rgb, rgb2hed
from skimage.filters import gaussian, threshold_otsu
from skimage.morphology import disk, h_maxima
from skimage.segmentation import relabel_sequential, watershed


def drop_small(labels: np.ndarray, min_area_px: int) -> np.ndarray:
    """Drop objects under `min_area_px` and renumber 1..N (int32, 0 = background)."""
    if min_area_px > 1 and labels.any():
        areas = np.bincount(labels.ravel())
        small = areas < min_area_px
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels.astype(np.int32, copy=False))[0].astype(np.int32, copy=False)


def probability_foreground(probs: np.ndarray, *, interior: int = 1, boundary: int = 2,
                           foreground_threshold: float = 0.5) -> np.ndarray:
    """Object pixels of a three-class map: interior + boundary > `foreground_threshold`.

    One function for the in-memory pass and the slide engine's block-wise connected components,
    so both see exactly the same foreground.
    """
    probs = np.asarray(probs, dtype=np.float32)
    return (probs[interior] + probs[boundary]) > foreground_threshold


def instances_from_probabilities(probs: np.ndarray, *, interior: int = 1, boundary: int = 2,
                                 foreground_threshold: float = 0.5, marker_threshold: float = 0.5,
                                 min_marker_px: int = 4, min_area_px: int = 1,
                                 within: np.ndarray | None = None) -> np.ndarray:
    """(K, H, W) class probabilities of a background/interior/boundary model → (H, W) int32 ids.

    A pixel is foreground when interior + boundary > `foreground_threshold`; a marker pixel when
    interior − boundary > `marker_threshold`. Markers smaller than `min_marker_px` are noise and
    seed nothing (their pixels join a neighbour through the flood). `within` (boolean, H × W)
    restricts the foreground; restricted to whole 4-connected foreground regions it gives those
    regions exactly the ids they get without it (the flood never leaves a region).
    """
    probs = np.asarray(probs, dtype=np.float32)
    p_in, p_bd = probs[interior], probs[boundary]
    foreground = probability_foreground(probs, interior=interior, boundary=boundary,
                                        foreground_threshold=foreground_threshold)
    if within is not None:
        foreground &= within
    seeds = (p_in - p_bd) > marker_threshold
    seeds &= foreground
    markers, _ = ndi.label(seeds)
    if min_marker_px > 1:
        sizes = np.bincount(markers.ravel())
        tiny = sizes < min_marker_px
        tiny[0] = False
        markers[tiny[markers]] = 0
    labels = watershed(p_bd - p_in, markers=markers, mask=foreground)
    return drop_small(labels, min_area_px)


FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)


def instances_from_distance(probs: np.ndarray, *, interior: int = 1, boundary: int = 2,
                            foreground_threshold: float = 0.5, marker_height_px: float = 0.5,
                            boundary_weight: float = 1.0, min_area_px: int = 1,
                            within: np.ndarray | None = None) -> np.ndarray:
    """(K, H, W) class probabilities of a background/interior/boundary model → (H, W) int32 ids.

    Foreground as :func:`instances_from_probabilities`. The relief is the distance to background
    times ``1 − boundary_weight × p(boundary)`` (clipped to 0..1): it dips where the model sees a
    boundary and at the necks between touching round nuclei. Each h-maximum of height
    ``marker_height_px`` seeds one object and the watershed floods the foreground down the relief.
    Every step is 4-connected and the background is set below any relief, so each foreground
    component's ids depend on that component alone: restricting to whole components (``within``)
    gives them exactly the ids of the full pass, as the slide engine needs.
    """
    probs = np.asarray(probs, dtype=np.float32)
    foreground = probability_foreground(probs, interior=interior, boundary=boundary,
                                        foreground_threshold=foreground_threshold)
    if within is not None:
        foreground &= within
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    damp = np.clip(1.0 - boundary_weight * probs[boundary], 0.0, 1.0)
    # Beyond the array counts as background, so a crop holding whole components (a slide block)
    # sees the distances the full map gives them.
    relief = ndi.distance_transform_edt(np.pad(foreground, 1))[1:-1, 1:-1] * damp
    background = -(marker_height_px + 1.0)
    relief[~foreground] = background  # nothing is carried across the background
    components, _ = ndi.label(foreground)
    boxes = ndi.find_objects(components)
    # A component smaller than the minimum area can only give objects smaller still, all of
    # which drop_small removes: skip it (markers and ids of the others keep their order).
    sizes = np.bincount(components.ravel())
    big = [(index, box) for index, box in enumerate(boxes, start=1) if sizes[index] >= min_area_px]
    # h-maxima component by component, each on its bounding box framed by one pixel of
    # background: the reconstruction never crosses the background (4-connected, and set below
    # any relief), so these are the maxima of the whole map, without sorting the whole map
    # (skimage sorts every pixel: ~1 s per 1024² slide block, most of the objects pass)
    peaks = np.zeros(foreground.shape, bool)
    for index, box in big:
        mine = components[box] == index
        local = np.full((mine.shape[0] + 2, mine.shape[1] + 2), background, relief.dtype)
        local[1:-1, 1:-1] = np.where(mine, relief[box], background)
        local_peaks = h_maxima(local, marker_height_px, footprint=FOUR_CONNECTED)[1:-1, 1:-1]
        peaks[box] |= local_peaks.astype(bool) & mine
    markers, _ = ndi.label(peaks)
    # One flood per component: the watershed breaks ties between equal heights by queue order,
    # which other components would shift; alone on its bounding box a component always floods
    # alike. A component with one marker is that object whole (the flood fills it).
    labels = np.zeros(foreground.shape, np.int32)
    for index, box in big:
        mine = components[box] == index
        seeds = np.where(mine, markers[box], 0)
        present = seeds[seeds > 0]
        if present.size == 0:
            continue
        if present.min() == present.max():
            labels[box][mine] = present[0]
        else:
            flooded = watershed(-relief[box], markers=seeds, mask=mine)
            labels[box][mine] = flooded[mine]
    return drop_small(labels, min_area_px)


def instances_from_foreground(mask: np.ndarray, *, min_distance_px: float = 3.0, smooth_px: float = 1.0,
                              min_area_px: int = 1) -> np.ndarray:
    """(H, W) boolean foreground → (H, W) int32 ids by distance-transform watershed.

    Markers are the regional maxima of the (smoothed) distance to background that stand at least
    `min_distance_px` / 2 above their surroundings (h-maxima): two touching discs give two
    markers, a single elongated one gives one.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    if smooth_px > 0:
        distance = gaussian(distance, sigma=smooth_px, preserve_range=True)
    peaks = h_maxima(distance, max(min_distance_px / 2.0, 0.5)) & mask
    markers, _ = ndi.label(peaks)
    labels = watershed(-distance, markers=markers, mask=mask)
    return drop_small(labels, min_area_px)


def haematoxylin_density(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin optical density of an RGB image (Ruifrok–Johnston deconvolution, skimage)."""
    rgb = np.asarray(rgb)[..., :3]
    return rgb2hed(rgb)[..., 0].astype(np.float32)


def haematoxylin_od(pixels: np.ndarray) -> np.ndarray:
    """(k, 3) uint8 RGB pixels → (k,) haematoxylin optical density, skimage's ``rgb2hed`` per
    pixel: for the pixels of the objects only, not the whole image around them."""
    rgb = np.maximum(np.asarray(pixels, dtype=np.float64) / 255.0, 1e-6)
    return np.maximum((np.log(rgb) / np.log(1e-6)) @ hed_from_rgb[:, 0], 0.0)


def haematoxylin_baseline(rgb: np.ndarray, *, mpp: float, min_area_um2: float = 10.0) -> np.ndarray:
    """Classical nuclei instances: haematoxylin OD → Otsu → opening → distance watershed.

    Scales its structuring elements with the pixel size `mpp` (µm/px) so one setting serves 20x
    and 40x images.
    """
    hema = haematoxylin_density(rgb)
    hema = gaussian(hema, sigma=max(0.5 / mpp, 0.5), preserve_range=True)
    try:
        mask = hema > threshold_otsu(hema)
    except ValueError:  # a constant image has no threshold
        return np.zeros(hema.shape, np.int32)
    mask = ndi.binary_opening(mask, structure=disk(max(1, round(1.0 / mpp))))
    mask = ndi.binary_fill_holes(mask)
    return instances_from_foreground(mask, min_distance_px=2.0 / mpp, smooth_px=0.5 / mpp,
                                     min_area_px=max(1, round(min_area_um2 / mpp**2)))
