"""The block-wise instance pass equals one in-memory pass: no object duplicated or cut at borders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gigavim.engine.instances import InstancePass, instance_spec
from gigavim.engine.plan import Resolution
from gigavim.errors import ModelError, UsageError
from gigavim.instances.postprocess import instances_from_distance, instances_from_probabilities
from gigavim.models.bundle import ModelMeta

THREE_CLASS = {"method": "three-class-watershed", "object_class": "nucleus", "interior": 1,
               "boundary": 2, "min_area_um2": 2.0, "max_size_um": 15.0}
DISTANCE = {**THREE_CLASS, "method": "boundary-distance-watershed", "marker_height_px": 0.5,
            "boundary_weight": 1.5}


def _meta(instances: dict) -> ModelMeta:
    return ModelMeta(name="m", classes=["background", "nucleus", "boundary"],
                     colors=[(0, 0, 0), (255, 0, 0), (0, 0, 255)], arch={}, mpp=0.5, instances=instances)


def _res(shape: tuple[int, int], mpp: float | None = 0.5) -> Resolution:
    return Resolution(level=0, downsample=1.0, level_downsample=1.0, shape=shape, mpp=mpp)


def _touching_discs(shape: tuple[int, int], seed: int = 0, cell: int = 26) -> np.ndarray:
    """uint8 (3, H, W) probabilities: one to three touching discs per cell (clusters smaller than
    the halo), the lines where discs meet marked boundary, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    owner = np.zeros(shape, np.int32)
    k = 0
    for y0 in range(-cell // 2, shape[0], cell):  # offset grid: clusters cross every border
        for x0 in range(-cell // 3, shape[1], cell):
            cy, cx = y0 + cell // 2 + rng.integers(-2, 3), x0 + cell // 2 + rng.integers(-2, 3)
            for _ in range(rng.integers(1, 4)):
                k += 1
                dy, dx, r = rng.integers(-4, 5), rng.integers(-4, 5), rng.integers(4, 7)
                owner[((yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 < r * r) & (owner == 0)] = k
    edge = np.zeros(shape, bool)  # pixels next to another object or to background
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        edge |= (owner != np.roll(owner, (dy, dx), axis=(0, 1))) & (owner > 0)
    probs = np.zeros((3, *shape), np.float32)
    probs[0] = owner == 0
    probs[1] = (owner > 0) & ~edge
    probs[2] = edge
    noise = rng.random(probs.shape).astype(np.float32) * 0.2
    probs = (probs + noise) / (probs + noise).sum(0)
    return np.round(probs * 255).astype(np.uint8)


def _same_objects(a: np.ndarray, b: np.ndarray) -> None:
    """Two id maps hold the same objects (same pixel sets), whatever their numbering."""
    assert ((a > 0) == (b > 0)).all()
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.mark.parametrize(("block_px", "settings"), [(48, THREE_CLASS), (64, THREE_CLASS), (100, THREE_CLASS),
                                                    (48, DISTANCE), (64, DISTANCE)])
def test_blockwise_ids_equal_a_single_pass(tmp_path: Path, block_px: int, settings: dict) -> None:
    probs = _touching_discs((230, 310))
    spec = instance_spec(_meta(settings), _res((230, 310)))
    assert spec is not None and spec.halo_px == 30 and spec.min_area_px == 8
    labels = np.argmax(probs, axis=0).astype(np.uint8)
    instance_pass = InstancePass(spec, labels=labels, probabilities=probs, workdir=tmp_path,
                                 block_px=block_px)
    result = instance_pass.run()
    assert not instance_pass.oversized
    ids = np.asarray(result.labels[:])
    if settings is DISTANCE:
        single = instances_from_distance(probs.astype(np.float32) / 255, min_area_px=spec.min_area_px,
                                         marker_height_px=0.5, boundary_weight=1.5)
    else:
        single = instances_from_probabilities(probs.astype(np.float32) / 255, min_area_px=spec.min_area_px)
    _same_objects(ids, single)
    assert sorted(np.unique(ids[ids > 0])) == list(range(1, result.count + 1))  # unique, 1..N
    crossing = [i for i in np.unique(single[single > 0])
                if len(np.unique(np.nonzero(single == i)[1] // block_px)) > 1]
    assert crossing, "the scene must put objects across block borders"
    records = list(result)
    assert [r.id for r in records] == list(range(1, result.count + 1))
    areas = {r.id: r.measurements["area_um2"] for r in records}
    for ident in (1, result.count):
        assert areas[ident] == pytest.approx((ids == ident).sum() * 0.25)


def test_threads_do_not_change_ids_or_records(tmp_path: Path) -> None:
    probs = _touching_discs((230, 310), seed=4)
    spec = instance_spec(_meta(DISTANCE), _res((230, 310)))
    labels = np.argmax(probs, axis=0).astype(np.uint8)
    runs = []
    for workers in (1, 3):
        result = InstancePass(spec, labels=labels, probabilities=probs, workdir=tmp_path / str(workers),
                              block_px=48, workers=workers).run()
        runs.append((np.asarray(result.labels[:]), [r.line() for r in result]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and len(runs[0][1]) > 20


def test_an_object_larger_than_the_halo_is_split_at_block_borders_only(tmp_path: Path) -> None:
    probs = np.zeros((3, 80, 200), np.uint8)
    probs[0] = 255
    probs[:, 30:50, 10:190] = np.array([0, 255, 0], np.uint8)[:, None, None]  # a 180-px bar
    spec = instance_spec(_meta(THREE_CLASS), _res((80, 200)))
    result = InstancePass(spec, labels=probs.argmax(0).astype(np.uint8), probabilities=probs,
                          workdir=tmp_path, block_px=64).run()
    ids = np.asarray(result.labels[:])
    assert result.count == 3  # the bar crosses the borders at x = 64 and 128
    for ident in range(1, 4):
        cols = np.nonzero(ids == ident)[1]
        assert len(np.unique(cols // 64)) == 1
    assert ((ids > 0) == (probs[1] > 0)).all()


def test_connected_components_of_a_class(tmp_path: Path) -> None:
    meta = ModelMeta(name="b", classes=["background", "building"], colors=[(0, 0, 0), (255, 255, 0)],
                     arch={}, gsd_m=0.5, instances={"method": "connected-components",
                                                    "object_class": "building", "min_area_m2": 2.0})
    labels = np.zeros((120, 120), np.uint8)
    labels[10:30, 58:70] = 1  # crosses the block border at x = 64
    labels[60:62, 60:62] = 1  # 1 m²: under the minimum
    labels[80:100, 10:110] = 1
    spec = instance_spec(meta, Resolution(0, 1.0, 1.0, (120, 120), gsd_m=0.5))
    assert spec.unit == "m" and spec.min_area_px == 8
    result = InstancePass(spec, labels=labels, probabilities=None, workdir=tmp_path, block_px=64).run()
    ids = np.asarray(result.labels[:])
    assert result.count == 2 and ids[60, 60] == 0
    assert len(np.unique(ids[10:30, 58:70])) == 1
    assert next(iter(result)).measurements["area_m2"] == pytest.approx(20 * 12 * 0.25)


def test_instance_rules_come_from_the_metadata_and_errors_are_clear() -> None:
    assert instance_spec(_meta({}), _res((10, 10))) is None
    with pytest.raises(UsageError, match="--min-area"):
        instance_spec(_meta({}), _res((10, 10)), min_area=3)
    with pytest.raises(ModelError, match="unknown instances method"):
        instance_spec(_meta({"method": "magic"}), _res((10, 10)))
    with pytest.raises(ModelError, match="not one of its classes"):
        instance_spec(_meta({"method": "connected-components", "object_class": "cell"}), _res((10, 10)))
    spec = instance_spec(_meta(THREE_CLASS), _res((10, 10)), min_area=10)
    assert spec.min_area == 10 and spec.min_area_px == 40
    no_size = instance_spec(_meta(THREE_CLASS), _res((10, 10), mpp=None), min_area=12)
    assert no_size.unit == "px" and no_size.min_area_px == 12
