"""Objects over whole slides: one id per object from the blended map, block by block.

A model whose metadata says how its classes become objects (``ModelMeta.instances``) gets an
instance pass after the label blocks are final. The pass is exact — the ids are those a single
in-memory pass over the whole map would give, up to numbering — yet holds a few blocks at a time:

1. **Components.** The object foreground (interior + boundary probability above the threshold,
   or the object class) is labelled 4-connected per block; labels meeting across a block edge
   are joined with a union-find, and each joined component's bounding box is kept (only for
   components touching a block edge: the others are local).
2. **Objects.** A component belongs to the block holding its anchor, the top-left corner of its
   bounding box. That block reads its core plus a halo (the model's largest object size) below
   and to the right, which holds every component it owns, and runs the watershed restricted to
   them: the flood never leaves a component, so their ids are exactly the single-pass ones and
   no object is duplicated or cut at a tile or block border. A component too big for the halo
   (a sheet of false positives, never one object) is instead split at block borders.
3. **Records.** Each object is measured (``regionprops``' definitions, a block at once) and
   outlined where it was made, and appended to a records file; its pixels go to a uint32 zarr id
   map in the work dir. Two threads work on the next blocks; ids are still given in block order.

Ids run 1..N in block order, then in the watershed's own (raster) order: deterministic, so a
``--resume`` gives the same ids. The pass reruns from the finished blocks on every run (it is a
small part of the work), which is what keeps a resumed run exact without a journal of its own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from affine import Affine
from scipy import ndimage as ndi

from gigavim.engine.plan import Resolution
from gigavim.errors import ModelError, UsageError
from gigavim.io.base import Window
from gigavim.io.writers.objects import InstanceMap, ObjectRecord, RecordWriter
from gigavim.models.bundle import ModelMeta

METHODS = ("three-class-watershed", "boundary-distance-watershed", "connected-components")
THREE_CLASS_METHODS = METHODS[:2]
"""Methods that make objects from background/interior/boundary probabilities."""
BLOCK_PX = 1024
"""Side of an instance block (and chunk of the id map): memory is a few blocks of this size."""
DEFAULT_MAX_SIZE = {"um": 64.0, "m": 256.0, "px": 256.0}
"""Largest object expected (µm, m or px) when the model does not say: sets the halo."""

Block = tuple[int, int]
_Found = tuple[np.ndarray, Window, list[ObjectRecord]]  # a block's objects, its region, their records


@dataclass(frozen=True)
class InstanceSpec:
    """How one run turns class probabilities into objects, in working pixels."""

    method: str
    object_class: str
    object_index: int  # the class whose name and colour the objects carry
    interior: int
    boundary: int
    foreground_threshold: float
    marker_threshold: float
    min_marker_px: int
    marker_height_px: float
    boundary_weight: float
    min_area: float  # in `unit`², as asked (model metadata or --min-area)
    min_area_px: int
    halo_px: int
    unit: str  # "um" (slides), "m" (rasters) or "px" (no physical pixel size)
    pixel_size: float  # `unit` per working pixel

    @property
    def needs_probabilities(self) -> bool:
        return self.method in THREE_CLASS_METHODS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def instance_spec(meta: ModelMeta, res: Resolution, *, min_area: float | None = None) -> InstanceSpec | None:
    """The run's object rule from the model metadata (None: a semantic model), or a clear error.

    ``min_area`` overrides the model's minimum object area, in µm² (slides), m² (rasters) or
    pixels (inputs without a physical pixel size).
    """
    cfg = meta.instances or {}
    if not cfg:
        if min_area is not None:
            raise UsageError(f"--min-area applies to models that separate objects; {meta.name!r} "
                             "only labels classes")
        return None
    method = cfg.get("method")
    if method not in METHODS:
        raise ModelError(f"model {meta.name!r}: unknown instances method {method!r} "
                         f"(known: {', '.join(METHODS)})")
    classes = [c.lower() for c in meta.classes]
    interior, boundary = int(cfg.get("interior", 1)), int(cfg.get("boundary", 2))
    if method in THREE_CLASS_METHODS:
        if not (0 <= interior < len(classes) and 0 <= boundary < len(classes)) or interior == boundary:
            raise ModelError(f"model {meta.name!r}: instances interior/boundary classes {interior}/"
                             f"{boundary} do not fit its {len(classes)} classes")
        index = interior
        name = str(cfg.get("object_class") or meta.classes[interior])
    else:
        name = str(cfg.get("object_class", ""))
        if name.lower() not in classes:
            raise ModelError(f"model {meta.name!r}: instances object_class {name!r} is not one of "
                             f"its classes ({', '.join(meta.classes)})")
        index = classes.index(name.lower())
    if res.mpp:
        unit, size = "um", float(res.mpp)
    elif res.gsd_m:
        unit, size = "m", float(res.gsd_m)
    else:
        unit, size = "px", 1.0
    area = min_area if min_area is not None else float(cfg.get(f"min_area_{unit}2", 0) or 0)
    if not math.isfinite(area) or area < 0:
        raise UsageError(f"--min-area must be zero or a positive area, got {area}")
    max_size = float(cfg.get(f"max_size_{unit}", DEFAULT_MAX_SIZE[unit]))
    return InstanceSpec(
        method=method, object_class=name, object_index=index, interior=interior, boundary=boundary,
        foreground_threshold=float(cfg.get("foreground_threshold", 0.5)),
        marker_threshold=float(cfg.get("marker_threshold", 0.5)),
        min_marker_px=int(cfg.get("min_marker_px", 4)),
        marker_height_px=float(cfg.get("marker_height_px", 0.5)),
        boundary_weight=float(cfg.get("boundary_weight", 1.0)),
        min_area=area, min_area_px=max(1, math.ceil(area / size**2 - 1e-9)),
        halo_px=max(16, math.ceil(max_size / size)), unit=unit, pixel_size=size,
    )


def _as_probabilities(stored: np.ndarray) -> np.ndarray:
    """Stored uint8 probabilities → float32 0..1, the same arithmetic for every crop."""
    return stored.astype(np.float32) / np.float32(255)


class _UnionFind:
    """Components that touch a block edge, joined across edges, with their bounding boxes."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.box: dict[int, list[int]] = {}  # id → [y0, x0, y1, x1] (global, end exclusive)

    def add(self, ident: int, box: list[int]) -> None:
        self.parent[ident] = ident
        self.box[ident] = box

    def find(self, ident: int) -> int:
        parent = self.parent
        root = ident
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(ident, ident) != root:
            parent[ident], ident = root, parent[ident]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        keep, gone = min(ra, rb), max(ra, rb)
        self.parent[gone] = keep
        ka, kb = self.box[keep], self.box.pop(gone)
        self.box[keep] = [min(ka[0], kb[0]), min(ka[1], kb[1]), max(ka[2], kb[2]), max(ka[3], kb[3])]

    def roots(self, ids: np.ndarray) -> np.ndarray:
        """Each id's root (ids never joined are their own root)."""
        return np.array([self.find(int(i)) if int(i) in self.parent else int(i) for i in ids],
                        dtype=np.uint32)


class InstancePass:
    """The block-wise instance pass over one run's finished label arrays (see module doc)."""

    def __init__(self, spec: InstanceSpec, *, labels: Any, probabilities: Any, workdir: Path,
                 computed: list[Window] | None = None, reader: Any = None,
                 to_output: Affine = Affine.identity(), block_px: int = BLOCK_PX, workers: int = 2) -> None:
        """``computed``: windows of the computed tiles, the only places objects can be (None:
        everywhere); ``reader``: a TileReader whose RGB gives the mean haematoxylin OD (slides);
        ``workers``: threads separating and measuring blocks ahead (the ids do not depend on it)."""
        if spec.needs_probabilities and probabilities is None:
            raise RuntimeError("a three-class instance pass needs the stored probabilities")
        self.spec, self.labels, self.probs = spec, labels, probabilities
        self.shape: tuple[int, int] = tuple(labels.shape[:2])  # type: ignore[assignment]
        self.block = min(block_px, max(self.shape))
        self.workdir, self.reader, self.to_output = Path(workdir), reader, to_output
        self.workers = max(1, workers)
        self.n_blocks = (math.ceil(self.shape[0] / self.block), math.ceil(self.shape[1] / self.block))
        every = {(by, bx) for by in range(self.n_blocks[0]) for bx in range(self.n_blocks[1])}
        self.active = sorted(every if computed is None else every & blocks_under(computed, self.block))
        self.unions = _UnionFind()
        self.oversized: set[int] = set()
        self.id_range: dict[Block, tuple[int, int]] = {}  # component ids each block labelled

    # -- geometry ---------------------------------------------------------------------------
    def window(self, by: int, bx: int) -> Window:
        y, x = by * self.block, bx * self.block
        return Window(y, x, min(self.block, self.shape[0] - y), min(self.block, self.shape[1] - x))

    def region(self, by: int, bx: int) -> Window:
        """A block plus the halo below and to the right: where the objects it owns can reach."""
        win = self.window(by, bx)
        halo = self.spec.halo_px
        return Window(win.y, win.x, min(win.height + halo, self.shape[0] - win.y),
                      min(win.width + halo, self.shape[1] - win.x))

    def owner(self, y: int, x: int) -> Block:
        return (y // self.block, x // self.block)

    # -- the pass ---------------------------------------------------------------------------
    def run(self) -> InstanceMap:
        components = self._components()
        ids = zarr.create_array(self.workdir / "instances.zarr", shape=self.shape, dtype="uint32",
                                chunks=(self.block, self.block), fill_value=0, overwrite=True)
        writer = RecordWriter(self.workdir / "objects.tsv")
        columns: list[str] = []
        try:
            for found in self._found(components):
                if found is None:
                    continue
                objects, region, records = found
                base = writer.count  # ids follow block order, whichever thread finished first
                mine = objects > 0
                part = (slice(region.y, region.y + region.height), slice(region.x, region.x + region.width))
                stored = np.asarray(ids[part])
                stored[mine] = objects[mine].astype(np.uint32) + np.uint32(base)
                ids[part] = stored
                for record in records:
                    columns = columns or list(record.measurements)
                    writer.write(ObjectRecord(record.id + base, record.measurements, record.geometry))
        finally:
            writer.close()
        return InstanceMap(labels=ids, object_class=self.spec.object_class, color=(0, 0, 0),
                           records=writer.path, count=writer.count,
                           columns=columns or measurement_names(self.spec, self.reader is not None))

    def _found(self, components: zarr.Array) -> Iterator[_Found | None]:
        """Objects and records (ids from 1 within the region) of every active block, in block
        order. Blocks are independent once the components are joined, so ``workers`` threads
        work on the next blocks (the watershed, the measurements and the reads release the GIL
        for much of their time); at most ``workers + 1`` blocks are in memory."""
        def work(block: Block) -> _Found | None:
            objects, region = self._objects(block, components)
            if not objects.any():
                return None
            return objects, region, list(self._describe(objects, region))

        if self.workers <= 1:
            yield from map(work, self.active)
            return
        pending: deque[Future] = deque()
        blocks = iter(self.active)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="gigavim-objects") as pool:
            try:
                while True:
                    while len(pending) <= self.workers:
                        block = next(blocks, None)
                        if block is None:
                            break
                        pending.append(pool.submit(work, block))
                    if not pending:
                        return
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def _foreground(self, win: Window) -> np.ndarray:
        from gigavim.instances.postprocess import probability_foreground

        part = (slice(win.y, win.y + win.height), slice(win.x, win.x + win.width))
        s = self.spec
        if s.needs_probabilities:
            probs = _as_probabilities(np.asarray(self.probs[(slice(None), *part)]))
            return probability_foreground(probs, interior=s.interior, boundary=s.boundary,
                                          foreground_threshold=s.foreground_threshold)
        return np.asarray(self.labels[part]) == s.object_index

    def _components(self) -> zarr.Array:
        """Step 1: 4-connected foreground components, ids unique over the map, joined at edges."""
        comp = zarr.create_array(self.workdir / "components.zarr", shape=self.shape, dtype="uint32",
                                 chunks=(self.block, self.block), fill_value=0, overwrite=True)
        offset = 0
        for by, bx in self.active:
            win = self.window(by, bx)
            lab, n = ndi.label(self._foreground(win))
            if n == 0:
                continue
            ids = lab.astype(np.uint32)
            ids[lab > 0] += np.uint32(offset)
            comp[win.y:win.y + win.height, win.x:win.x + win.width] = ids
            edges = np.concatenate([ids[0], ids[-1], ids[:, 0], ids[:, -1]])
            slices = ndi.find_objects(lab)
            for ident in np.unique(edges[edges > 0]).tolist():
                sy, sx = slices[ident - offset - 1]
                self.unions.add(ident, [sy.start + win.y, sx.start + win.x, sy.stop + win.y, sx.stop + win.x])
            if win.y > 0:
                self._join(np.asarray(comp[win.y - 1, win.x:win.x + win.width]), ids[0])
            if win.x > 0:
                self._join(np.asarray(comp[win.y:win.y + win.height, win.x - 1]), ids[:, 0])
            self.id_range[(by, bx)] = (offset, offset + n)
            offset += n
        for root, (y0, x0, y1, x1) in self.unions.box.items():
            if self.unions.find(root) != root:
                continue
            reach = self.region(*self.owner(y0, x0))
            if y1 > reach.y + reach.height or x1 > reach.x + reach.width:
                self.oversized.add(root)
        return comp

    def _join(self, outside: np.ndarray, inside: np.ndarray) -> None:
        both = (outside > 0) & (inside > 0)
        for a, b in set(zip(outside[both].tolist(), inside[both].tolist(), strict=True)):
            self.unions.union(a, b)

    def _objects(self, block: Block, comp: zarr.Array) -> tuple[np.ndarray, Window]:
        """Step 2: (region ids 1..n, region) of the objects this block owns."""
        win, region = self.window(*block), self.region(*block)
        part = (slice(region.y, region.y + region.height), slice(region.x, region.x + region.width))
        raw = np.asarray(comp[part])
        found = raw > 0
        values = raw[found]  # only object pixels are looked at: most of a region is empty
        present = np.unique(values)
        roots = self.unions.roots(present)
        lo, hi = self.id_range.get(block, (0, 0))
        box = self.unions.box
        owned = np.array([r not in self.oversized and (self.owner(*box[r][:2]) == block if r in box
                                                       else lo < r <= hi) for r in roots.tolist()], bool)
        oversized = np.array([r in self.oversized for r in roots.tolist()], bool)
        where = np.searchsorted(present, values)
        objects = self._separate(part, self._mask(found, owned[where]))
        if oversized.any():
            core = (slice(0, win.height), slice(0, win.width))
            pieces = self._separate(part, self._mask(found, oversized[where])[core], core=True)
            objects[core] = np.where(pieces > 0, pieces + objects.max(), objects[core])
        return objects, region

    @staticmethod
    def _mask(found: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        mask = np.zeros(found.shape, bool)
        mask[found] = chosen
        return mask

    def _separate(self, part: tuple[slice, slice], within: np.ndarray, core: bool = False) -> np.ndarray:
        """Objects of the components in ``within`` (region-sized, or core-sized with ``core``):
        the watershed for a three-class model, else each component (or piece) itself."""
        from gigavim.instances.postprocess import (
            drop_small,
            instances_from_distance,
            instances_from_probabilities,
        )

        s = self.spec
        if core:
            part = (slice(part[0].start, part[0].start + within.shape[0]),
                    slice(part[1].start, part[1].start + within.shape[1]))
        if not within.any():
            return np.zeros(within.shape, np.int32)
        if s.method == "boundary-distance-watershed":
            probs = _as_probabilities(np.asarray(self.probs[(slice(None), *part)]))
            return instances_from_distance(
                probs, interior=s.interior, boundary=s.boundary,
                foreground_threshold=s.foreground_threshold, marker_height_px=s.marker_height_px,
                boundary_weight=s.boundary_weight, min_area_px=s.min_area_px, within=within)
        if s.needs_probabilities:
            probs = _as_probabilities(np.asarray(self.probs[(slice(None), *part)]))
            return instances_from_probabilities(
                probs, interior=s.interior, boundary=s.boundary,
                foreground_threshold=s.foreground_threshold, marker_threshold=s.marker_threshold,
                min_marker_px=s.min_marker_px, min_area_px=s.min_area_px, within=within)
        return drop_small(ndi.label(within)[0], s.min_area_px)  # components are 4-connected

    def _describe(self, objects: np.ndarray, region: Window) -> Iterator[ObjectRecord]:
        """Step 3: measurements and outline of every object of one region."""
        from gigavim.instances.measure import measure_objects

        rgb = None
        if self.reader is not None:
            rgb = np.clip(np.rint(self.reader.read(region)[0][..., :3]), 0, 255).astype(np.uint8)
        origin = Affine.translation(region.x, region.y)
        for ident, measurements, geometry in measure_objects(objects, self.spec.unit, self.spec.pixel_size,
                                                             self.to_output @ origin, rgb=rgb):
            yield ObjectRecord(ident, measurements, geometry)  # the writer adds the block's base


def measurement_names(spec: InstanceSpec, haematoxylin: bool) -> list[str]:
    from gigavim.instances.measure import column_names

    return column_names(spec.unit, haematoxylin)


def blocks_under(windows: list[Window], block_px: int = BLOCK_PX) -> set[Block]:
    """Instance blocks that some window (a computed tile) overlaps: the only ones with objects."""
    blocks: set[Block] = set()
    for w in windows:
        for by in range(w.y // block_px, (w.y + w.height - 1) // block_px + 1):
            blocks.update((by, bx) for bx in range(w.x // block_px, (w.x + w.width - 1) // block_px + 1))
    return blocks
