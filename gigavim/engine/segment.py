"""``segment()``: the one library call that turns an image into segmentation outputs.

source → working resolution + tile grid → foreground tiles (tissue / valid-data mask) →
prefetched, batched inference → blocks blended on disk → writers. The CLI, the batch pipeline
and the napari widget all call this, so they behave the same. Memory is bounded by the tile and
batch size: the label map is built block by block in a zarr work dir beside the first output.
"""

from __future__ import annotations

import errno
import hashlib
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gigavim.engine.bands import BandView, check_values, match_bands
from gigavim.engine.guard import check_working_grid, describe_request
from gigavim.engine.lanes import NetworkLanes, lane_count
from gigavim.engine.level_cache import cached_level0
from gigavim.engine.memory import MemoryReleaser
from gigavim.engine.merger import BlockMerger, Fill, labels_in_memory
from gigavim.engine.plan import Resolution, TileGrid, level0_scale_yx, resolve_resolution
from gigavim.engine.progress import Progress, ProgressCallback
from gigavim.engine.reader import TileReader
from gigavim.engine.runlock import RunLock
from gigavim.engine.runner import Predictor, prefetched, resolve_device
from gigavim.engine.workdir import WorkDir
from gigavim.errors import InputError, ModelError, OutputError, UsageError
from gigavim.io.base import ImageSource, Window
from gigavim.io.masks import LowResMask, foreground_mask
from gigavim.io.writers import check_outputs, preload_writers, write_outputs
from gigavim.io.writers.base import LabelMap
from gigavim.models.bundle import ModelBundle
from gigavim.models.tta import with_tta

if TYPE_CHECKING:
    from gigavim.engine.instances import InstanceSpec
    from gigavim.io.writers.objects import InstanceMap

NODATA_LABEL = 255
"""Label written where a raster has no data (nodata value, NaN, alpha 0); models have < 255 classes."""

WORKDIR_SUFFIX = ".gigavim-work"

CONTEXTS = ("tile", "image")
"""``tile``: independent overlapping tiles, blended; ``image``: the whole image as one sequence."""


@dataclass
class SegmentResult:
    """What a run did and how fast: the summary the CLI prints (and ``--json`` dumps)."""

    source: str
    outputs: list[str]
    model: str
    trained: bool
    device: str
    shape: tuple[int, int]
    level: int
    downsample: float
    mpp: float | None
    gsd_m: float | None
    seconds: float
    megapixels: float
    megapixels_level0: float
    foreground_fraction: float
    tiles_total: int
    tiles_foreground: int
    tiles_computed: int
    tiles_resumed: int
    resumed: bool
    context: str = "tile"  # "image": the whole image ran as one sequence
    tta: int = 1  # test-time augmentation: dihedral views averaged per tile (1: off)
    stain_norm: bool = False  # the image was re-stained like the model's training data
    objects: int | None = None  # instance models: objects found (after the minimum-area rule)
    object_class: str | None = None
    object_density: float | None = None  # objects per `density_unit`
    density_unit: str | None = None  # "mm² of tissue" (slides) or "km²" (rasters)
    warnings: list[str] = field(default_factory=list)
    input_check: dict[str, Any] = field(default_factory=dict)  # bands fed and values vs training range
    timings: dict[str, float] = field(default_factory=dict)  # mask_s, tiles_s, write_s (objects_s)

    @property
    def megapixels_per_s(self) -> float:
        return self.megapixels / self.seconds if self.seconds > 0 else 0.0

    @property
    def megapixels_per_s_level0(self) -> float:
        return self.megapixels_level0 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["megapixels_per_s"] = self.megapixels_per_s
        d["megapixels_per_s_level0"] = self.megapixels_per_s_level0
        return d


def segment(
    source: str | Path | ImageSource,
    outputs: str | Path | list[str | Path],
    *,
    model: str | Path | ModelBundle | None = None,
    mpp: float | None = None,
    gsd: float | None = None,
    level: int | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    allow_untrained: bool = False,
    probabilities: bool = False,
    workdir: str | Path | None = None,
    workers: int = 2,
    tissue_model: str | Path | ModelBundle | None = None,
    progress: ProgressCallback | None = None,
    context: str = "tile",
    with_image: bool = False,
    bands: str | list[int | str] | None = None,
    min_area: float | None = None,
    image_mpp: float | None = None,
    force_resolution: bool = False,
    tta: int | bool | None = None,
    stain_norm: bool | None = None,
) -> SegmentResult:
    """Segment ``source`` with ``model`` and write every output (format from its extension).

    Resolution: ``mpp`` (µm/px, slides), ``gsd`` (m/px, rasters) or a pyramid ``level``; by
    default the model's training resolution. ``tile``/``overlap`` default to the model's.
    Slides are masked by saturation/Otsu, or by ``tissue_model`` (e.g. ``"tissue"``) if given.
    ``device="auto"`` runs on CUDA when this machine has a GPU, else on the CPU.
    With ``resume`` a run interrupted at any point continues from its work dir and produces the
    same output as an uninterrupted run. ``context="image"`` runs the model over the whole image
    as one token sequence (:mod:`gigavim.engine.whole_image`) instead of independent tiles.
    ``with_image`` makes an OME-Zarr output carry the source's pixels on the label grid as the
    labels' parent image (a pyramid, streamed), instead of a copy of the class ids.
    ``bands`` maps the image's bands to the model's (``"4,3,2"``, 1-based, or band names); an
    image whose bands do not match the model's input contract is refused without it.
    A model that separates objects (``ModelMeta.instances``, e.g. ``nuclei-he``) also gets one
    id per object (:mod:`gigavim.engine.instances`); ``min_area`` overrides its minimum object
    area (µm² for slides, m² for rasters). ``image_mpp`` is the µm/px of an input that records
    no pixel size (a PNG or plain TIFF tile); it is ignored for inputs that record one.
    A working grid upsampled more than 4× from level 0, or too big for the disk or memory, is
    refused before any work (:mod:`gigavim.engine.guard`) unless ``force_resolution``.
    ``tta``: average each tile's probabilities over 1 (off), 2, 4 or 8 flipped/rotated views
    (``True``: 8; default: the model's ``meta.tta``); see :mod:`gigavim.models.tta`.
    ``stain_norm``: re-stain the image like the model's training data (Macenko, estimated from
    up to 16 foreground tiles; default: when the model has a reference stain); see
    :mod:`gigavim.models.stain`.
    Raises :class:`gigavim.GigavimError` subclasses for anything the user can fix.
    """
    started = time.perf_counter()
    dests = _check_outputs(outputs, overwrite=overwrite)
    if batch_size < 1 or workers < 1:
        raise UsageError(f"--batch-size and --workers must be at least 1, got {batch_size} and {workers}")
    if context not in CONTEXTS:
        raise UsageError(f"--context must be one of {', '.join(CONTEXTS)}, not {context!r}")
    device = str(resolve_device(device))  # before any work: a missing GPU is a usage error
    preload_writers(dests)  # their imports (dask, ome-zarr: ~2 s) overlap the tiles
    lock = RunLock(_work_path(dests, workdir), dests[0])  # taken with the work dir, held to the end
    src, owned = _open(source)
    try:
        _check_not_input(dests, src)
        _apply_image_mpp(src, image_mpp)
        bundle = with_tta(_load_model(model, src.kind, device, src), tta, context)
        notes = _check_trained(bundle, allow_untrained)
        src, band_check = match_bands(src, bundle.meta, bands)  # before any read or work dir
        if context == "image":  # likewise: even a run with no tile to compute must refuse it
            from gigavim.models.streaming import check_streamable

            check_streamable(bundle.net, bundle.meta.name)
        res = resolve_resolution(src, mpp=mpp, gsd_m=gsd, level=level,
                                 model_mpp=bundle.meta.mpp, model_gsd_m=bundle.meta.gsd_m)
        grid = TileGrid(res.shape, bundle.meta.tile if tile is None else tile,
                        bundle.meta.overlap if overlap is None else overlap)
        check_working_grid(src, res, grid, asked=describe_request(mpp, gsd, level, res, bundle.meta),
                           bytes_per_pixel=1 + probabilities * bundle.num_classes,
                           out_dir=dests[0].parent, force=force_resolution)
        spec = _instance_spec(bundle, res, min_area, dests)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gigavim-values") as checking:
            # the value-range sample (small reads, a warning at most) beside level 0 and the mask
            values = checking.submit(check_values, src, bundle.meta.contract(), band_check, bundle.meta.name)
            pixels = cached_level0(src, res, mask_from_model=tissue_model is not None)  # or src itself
            mask = _mask(pixels, tissue_model, device, allow_untrained, notes)
            value_note = values.result()
        notes += [value_note] if value_note else []
        t_mask = time.perf_counter()
        foreground = _foreground_tiles(grid, res, mask)
        if not foreground and src.kind != "slide":
            raise InputError(f"{src.path}: every pixel is nodata (or NaN/transparent); nothing to segment")
        bundle = _stain_normalised(bundle, stain_norm, pixels, res, grid, foreground, notes)
        work = WorkDir(lock.workdir)
        lock.acquire()  # another run on these outputs is refused, never mixed with or deleted
        settings = _settings(src, res, grid, bundle, batch_size, probabilities, mask, context)
        with _disk_errors(work.path):
            if overwrite and not resume:
                work.discard()
            resumed = work.prepare(settings, resume=resume)
            try:
                run = _Run(pixels, res, grid, bundle, work, foreground, probabilities, resumed,
                           store_probabilities=bool(spec and spec.needs_probabilities))
                if context == "image":
                    from gigavim.engine.whole_image import execute_whole_image

                    done_before, computed = execute_whole_image(run, device, progress, started)
                else:
                    done_before, computed = run.execute(device, batch_size, workers, progress, started)
            except (InputError, ModelError, UsageError):
                work.discard()  # a corrupt input or unusable model: nothing worth resuming
                raise
        t_infer = time.perf_counter()
        label_map = run.label_map(mask, settings, bundle, with_image=with_image)
        t_objects = time.perf_counter()
        if spec is not None:
            with _disk_errors(work.path):
                label_map.instances = run.instances(spec, label_map, workers)
            label_map.settings["instances"] = spec.to_dict()
        t_objects = time.perf_counter() - t_objects
        write_outputs(label_map, dests, overwrite=overwrite)
        t_write = time.perf_counter()
        fg, data = run.merger.counts()
        work.discard()
    finally:
        lock.release()
        if owned:
            src.close()
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return SegmentResult(
        source=str(src.path), outputs=[str(d) for d in dests], model=bundle.meta.name,
        trained=bool(bundle.meta.trained), device=device, shape=res.shape, level=res.level,
        downsample=res.downsample, mpp=res.mpp, gsd_m=res.gsd_m,
        seconds=time.perf_counter() - started,
        megapixels=res.shape[0] * res.shape[1] / 1e6,
        megapixels_level0=src.width * src.height / 1e6,
        foreground_fraction=fg / data if data else 0.0,
        tiles_total=grid.tile_count, tiles_foreground=len(foreground), tiles_computed=computed,
        context=context, tta=bundle.meta.tta, stain_norm="image" in bundle.meta.stain,
        input_check=band_check.to_dict(),
        tiles_resumed=done_before, resumed=resumed, warnings=notes,
        **_object_summary(label_map, src, res, mask, data),
        timings={"mask_s": t_mask - started, "tiles_s": t_infer - t_mask,
                 "write_s": t_write - t_infer - t_objects, **({"objects_s": t_objects} if spec else {})},
    )


class _Run:
    """One run's moving parts: the work dir's arrays, the merger, and the batch loop."""

    def __init__(self, src: ImageSource, res: Resolution, grid: TileGrid, bundle: ModelBundle,
                 work: WorkDir, foreground: set[tuple[int, int]], probabilities: bool,
                 resumed: bool, store_probabilities: bool = False) -> None:
        """``probabilities``: the outputs get them; ``store_probabilities``: the work dir keeps
        them anyway (an instance model's watershed reads them)."""
        self.src, self.res, self.grid, self.bundle, self.work = src, res, grid, bundle, work
        self.foreground = foreground
        k = bundle.num_classes
        if k >= NODATA_LABEL:
            raise ModelError(f"model {bundle.meta.name!r} has {k} classes; at most 254 are supported")
        if src.kind == "slide":
            fill = Fill(0, None, np.array([255] + [0] * (k - 1), dtype=np.uint8))
        else:
            fill = Fill(NODATA_LABEL, NODATA_LABEL, np.zeros(k, dtype=np.uint8))
        self.fill = fill
        self.labels, self.probs = work.label_arrays(grid, k, fill.label,
                                                    probabilities=probabilities or store_probabilities,
                                                    create=not resumed)
        self.output_probabilities = probabilities
        self.labels_in_memory = labels_in_memory(self.labels, resumed)
        self.merger = BlockMerger(work, grid, foreground, fill, self.labels, self.probs,
                                  self.labels_in_memory)
        self.memory = MemoryReleaser()

    def execute(self, device: str, batch_size: int, workers: int, progress: ProgressCallback | None,
                started: float) -> tuple[int, int]:
        """Compute every tile still needed; returns (tiles done before this run, tiles computed)."""
        self.merger.finalize_ready(self.grid.iter_blocks())
        order = sorted(self.foreground)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        todo = [b for b in batches if any(self.merger.pending(t) for t in b)]
        done = len(order) - sum(len(b) for b in todo)
        done_before, computed, pixels = done, 0, 0
        if progress is not None:  # the total (and any resumed tiles) before the first batch
            progress(Progress(done, len(order), 0, time.perf_counter() - started))
        if todo:
            predictor = Predictor(self.bundle, device)
            reader = TileReader(self.src, self.res, keep_dtype=True)

            def read(window: Window) -> tuple[np.ndarray, np.ndarray]:  # decode, resample, normalise
                pixels, valid = reader.read(window)
                return predictor.prepare(pixels, reader.sum_count), valid

            windows = ([self.grid.tile_window(*t) for t in b] for b in todo)
            # Three stages overlap: reader threads decode, resample and normalise the next
            # batches, the network runs in its lanes (on a CPU two batches at once, each on half
            # of torch's threads: gigavim.engine.lanes), one merge thread turns logits into
            # probabilities, caches tiles and blends/writes blocks (numpy, zarr and file writes
            # release the GIL; torch's own thread pool is left to the network, since each small
            # torch op costs a pool barrier). One merge at a time, in batch order, so the work dir
            # changes exactly as in a sequential run.
            lanes = NetworkLanes(lane_count(predictor.device))
            ahead = max(2, lanes.lanes + 1)  # a read batch ready whenever a lane frees up
            # With two lanes, each lane also turns its logits into probabilities (numpy softmax)
            # and saves its batch's tiles to the work dir: the merge thread is the pipeline's
            # longest stage on a CPU, so it keeps only the blending. One lane: the merge does all.
            in_lane = lanes.lanes > 1

            def infer(batch: list[tuple[int, int]], x: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
                out = predictor.forward(x, *valid.shape[1:])
                if not in_lane:
                    return out
                self._store(batch, predictor.finish(out), valid)
                return None

            inflight: deque[tuple[list[tuple[int, int]], Future[np.ndarray | None], np.ndarray]] = deque()
            with (self.merger.persisting_in_background(),
                  ThreadPoolExecutor(max_workers=1, thread_name_prefix="gigavim-merge") as merging, lanes):
                merge: Future[None] | None = None

                def hand_over() -> None:  # the oldest batch in flight: network done → merge
                    nonlocal merge, done, computed, pixels
                    batch, out, valid = inflight.popleft()
                    logits = out.result()  # None: its lane has stored the batch's tiles
                    if merge is not None:
                        merge.result()  # its errors surface here (disk full → OutputError)
                    merge = merging.submit(self._merge, batch, logits, valid, predictor.finish)
                    done, computed = done + len(batch), computed + len(batch)
                    pixels += valid.size
                    if progress is not None:
                        progress(Progress(done, len(order), pixels, time.perf_counter() - started))

                batches = prefetched(windows, read, workers=workers, ahead=ahead)
                for batch, (x, valid) in zip(todo, batches, strict=True):
                    inflight.append((batch, lanes.submit(infer, batch, x, valid), valid))
                    if len(inflight) >= lanes.lanes:
                        hand_over()
                while inflight:
                    hand_over()
                if merge is not None:
                    merge.result()
        missing = [b for b in self.grid.iter_blocks() if b not in self.merger.finalized]
        if missing:  # a bug, not a user error: every block must be final by now
            raise RuntimeError(f"{len(missing)} output blocks were never finalized")
        return done_before, computed

    def _store(self, batch: list[tuple[int, int]], probs: np.ndarray, valid: np.ndarray) -> None:
        """The batch's float16 probabilities (+ valid) saved as its tiles in the work dir."""
        self.merger.store(batch, np.concatenate([probs, valid[:, None].astype(np.float16)], axis=1))

    def _merge(self, batch: list[tuple[int, int]], logits: np.ndarray | None, valid: np.ndarray,
               finish: Callable[[np.ndarray], np.ndarray]) -> None:
        """Merge thread: the batch's tiles (stored first from ``logits`` unless its lane did)
        into finished blocks."""
        if logits is not None:
            self._store(batch, finish(logits), valid)
        self.merger.merge(batch)
        self.memory.release()  # freed tile buffers back to the OS (RSS stays flat), off the network's thread

    def label_map(self, mask: LowResMask, settings: dict[str, Any], bundle: ModelBundle,
                  with_image: bool = False) -> LabelMap:
        src, res, meta = self.src, self.res, bundle.meta
        scale_yx = level0_scale_yx(src, res)
        transform = None
        if src.transform is not None:
            from rasterio.transform import Affine

            transform = src.transform * Affine.scale(scale_yx[1], scale_yx[0])
        image = None
        if with_image:
            from gigavim.engine.source_pixels import working_pixels

            image = working_pixels(src, res)
        return LabelMap(
            labels=self.labels if self.labels_in_memory is None else self.labels_in_memory,
            classes=list(meta.classes), colors=[tuple(c) for c in meta.colors],
            source_path=src.path, source_kind=src.kind,
            probabilities=self.probs if self.output_probabilities else None,
            mpp=res.mpp, gsd_m=res.gsd_m, crs=src.crs, transform=transform,
            scale_to_level0=scale_yx, nodata_label=self.fill.nodata_label,
            model={"name": meta.name, "version": meta.version, "trained": bool(meta.trained),
                   "digest": settings["model"]["digest"]},
            settings={k: v for k, v in settings.items() if k not in ("model", "source")},
            image=image,
        )

    def instances(self, spec: InstanceSpec, label_map: LabelMap, workers: int = 2) -> InstanceMap:
        """One id per object over the finished map (:mod:`gigavim.engine.instances`), ``workers``
        threads separating and measuring blocks (``--workers``, as for reading tiles)."""
        from gigavim.engine.instances import InstancePass
        from gigavim.io.writers.geojson import output_transform

        meta = self.bundle.meta
        reader = None
        if self.src.kind == "slide" and self.src.bands >= 3 and np.dtype(self.src.dtype) == np.uint8:
            reader = TileReader(self.src, self.res)  # the mean haematoxylin OD of each nucleus
        windows = [self.grid.tile_window(*t) for t in self.foreground]
        objects = InstancePass(spec, labels=self.labels, probabilities=self.probs, workdir=self.work.path,
                               computed=windows, reader=reader,
                               to_output=output_transform(label_map), workers=workers).run()
        objects.color = tuple(meta.colors[spec.object_index]) if spec.object_index < len(meta.colors) \
            else (255, 0, 0)
        return objects


# -- helpers ----------------------------------------------------------------------------------
def _check_outputs(outputs: str | Path | list[str | Path], *, overwrite: bool) -> list[Path]:
    """Every output problem is reported before any work: format, duplicates, existing, parent."""
    dests = [Path(outputs)] if isinstance(outputs, (str, Path)) else [Path(o) for o in outputs]
    if not dests:
        raise UsageError("give at least one output (-o OUTPUT)")
    return check_outputs(dests, overwrite=overwrite)


def _apply_image_mpp(src: ImageSource, image_mpp: float | None) -> None:
    """``--image-mpp``: the µm/px of an input that records none (inputs that do keep theirs)."""
    if image_mpp is None:
        return
    if not math.isfinite(image_mpp) or image_mpp <= 0:
        raise UsageError(f"--image-mpp must be a positive number of µm/px, got {image_mpp}")
    if src.kind == "raster" or src.gsd_m is not None:
        raise UsageError(f"{src.path}: --image-mpp is for microscopy images; this raster's pixel size "
                         "comes from its georeference (use --gsd for the working resolution)")
    if src.mpp is None:
        src.mpp = float(image_mpp)


def _instance_spec(bundle: ModelBundle, res: Resolution, min_area: float | None,
                   dests: list[Path]) -> InstanceSpec | None:
    """The model's object rule; a table output from a model without objects is refused now."""
    from gigavim.engine.instances import instance_spec

    spec = instance_spec(bundle.meta, res, min_area=min_area)
    tables = [d for d in dests if d.suffix.lower() == ".csv"]
    if spec is None and tables:
        raise UsageError(f"{tables[0]}: a table of objects needs a model that separates objects; "
                         f"{bundle.meta.name!r} only labels classes")
    return spec


def _object_summary(label_map: LabelMap, src: ImageSource, res: Resolution, mask: LowResMask,
                    data_px: int) -> dict[str, Any]:
    """Object count and density: per mm² of tissue (slides), per km² of data (rasters)."""
    objects = label_map.instances
    if objects is None:
        return {}
    area, unit = None, None
    if res.gsd_m:
        area, unit = data_px * res.gsd_m**2 / 1e6, "km²"
    elif src.mpp:
        area, unit = mask.fraction * src.height * src.width * src.mpp**2 / 1e6, "mm² of tissue"
    return {"objects": objects.count, "object_class": objects.object_class,
            "object_density": objects.count / area if area else None,
            "density_unit": unit if area else None}


def _work_path(dests: list[Path], workdir: str | Path | None) -> Path:
    """The run's work dir: ``workdir``, or ``OUTPUT.gigavim-work`` beside the first output."""
    return Path(workdir) if workdir else dests[0].with_name(dests[0].name + WORKDIR_SUFFIX)


def _check_not_input(dests: list[Path], src: ImageSource) -> None:
    """Even with ``overwrite``, an output must never replace the image being read."""
    for dest in dests:
        if dest.resolve() == Path(src.path).resolve():
            raise OutputError(f"{dest}: this output is the input image; choose another output name")


def _open(source: str | Path | ImageSource) -> tuple[ImageSource, bool]:
    if isinstance(source, ImageSource):
        return source, False
    from gigavim.io import open_image

    return open_image(source), True


def _load_model(model: str | Path | ModelBundle | None, kind: str, device: str,
                src: ImageSource | None = None) -> ModelBundle:
    """The named model, or the default for the input (rasters: by bands and pixel size)."""
    if isinstance(model, ModelBundle):
        return model
    from gigavim.models.catalog import load_model

    if src is None:
        return load_model(model, input_kind=kind)
    return load_model(model, input_kind=kind, bands=src.bands, gsd_m=src.gsd_m)


def _stain_normalised(bundle: ModelBundle, stain_norm: bool | None, src: ImageSource, res: Resolution,
                      grid: TileGrid, foreground: set[tuple[int, int]], notes: list[str]) -> ModelBundle:
    """The bundle re-staining this image like its training data, when the run asks for it; an
    image with too little stained tissue to estimate its stain runs as it is (with a note)."""
    from gigavim.models.stain import wants_stain_norm, with_stain_norm

    if not wants_stain_norm(bundle, stain_norm):
        return bundle
    reader = TileReader(src, res)
    windows = [grid.tile_window(*t) for t in sorted(foreground)]
    try:
        return with_stain_norm(bundle, lambda w: reader.read(w)[0], windows, str(src.path))
    except InputError as exc:
        notes.append(f"stain normalisation skipped: {exc}")
        return bundle


def _mask(src: ImageSource, tissue_model: str | Path | ModelBundle | None, device: str,
          allow_untrained: bool, notes: list[str]) -> LowResMask:
    """The foreground mask: a tissue model's when one is given for a slide, else Otsu / nodata."""
    if tissue_model is None or src.kind != "slide":
        return foreground_mask(src)
    from gigavim.engine.tissue import model_tissue_mask

    bundle = _load_model(tissue_model, src.kind, device)
    notes += _check_trained(bundle, allow_untrained)
    return model_tissue_mask(src, bundle, device)


def _check_trained(bundle: ModelBundle, allow_untrained: bool) -> list[str]:
    if bundle.meta.trained:
        return []
    if not allow_untrained:
        raise ModelError(f"model {bundle.meta.name!r} is untrained (randomly initialised); its output "
                         "would be meaningless. Pass --allow-untrained to run it anyway")
    return [f"model {bundle.meta.name!r} is untrained: its segmentation is random and the outputs "
            "are labelled as such"]


def _foreground_tiles(grid: TileGrid, res: Resolution, mask: LowResMask) -> set[tuple[int, int]]:
    ds = res.downsample
    tiles = set()
    for t in grid.iter_tiles():
        w = grid.tile_window(*t)
        if mask.any_in(w.y * ds, w.x * ds, (w.y + w.height) * ds, (w.x + w.width) * ds):
            tiles.add(t)
    return tiles


def _settings(src: ImageSource, res: Resolution, grid: TileGrid, bundle: ModelBundle,
              batch_size: int, probabilities: bool, mask: LowResMask, context: str = "tile",
              ) -> dict[str, Any]:
    """What determines the result; a resume must match it exactly."""
    return {
        "source": {"path": str(Path(src.path).resolve()), "size": [src.height, src.width],
                   "levels": src.level_count, "kind": src.kind,
                   "bands": [i + 1 for i in src.indexes] if isinstance(src, BandView) else None},
        "resolution": res.to_dict(),
        "grid": grid.to_dict(),
        "model": {"name": bundle.meta.name, "version": bundle.meta.version,
                  "digest": _weights_digest(bundle), "tta": bundle.meta.tta,
                  "stain": bundle.meta.stain.get("image")},
        "batch_size": batch_size,
        "probabilities": probabilities,
        "blend": "cosine",
        "context": context,
        "foreground_mask": {"shape": list(mask.mask.shape), "fraction": round(mask.fraction, 6),
                            "digest": hashlib.sha256(np.packbits(mask.mask).tobytes()).hexdigest()[:16]},
    }


def _weights_digest(bundle: ModelBundle) -> str:
    """A short hash of the weights, so a resume never mixes tiles from two different models."""
    h = hashlib.sha256()
    for name, tensor in sorted(bundle.net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
}


@contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    """OS errors while writing the work dir (full disk, permissions) → one-line OutputError."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        raise OutputError(f"{path}: {_DISK_ERRORS[exc.errno]} while writing the work dir "
                          f"(free space or choose another output location)") from exc
