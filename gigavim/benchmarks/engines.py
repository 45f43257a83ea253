"""gigavim's tile engine against the tool a user would pick instead (section ``engines-cpu`` / ``-cuda``).

Same slide region (the bundled CMU-1 sample, 2220×2967 px = 6.59 MP at 0.499 µm/px, level 0), same
network and weights, same tile / overlap / batch and torch threads, output written to disk:

* ``gigavim``: ``gigavim.segment`` → OME-Zarr (tissue mask, tiles read by threads, cosine blending
  on disk, labels pyramid);
* ``monai``: OpenSlide reads the region, MONAI's ``sliding_window_inference`` (Gaussian blending,
  the nearest to gigavim's cosine ramps) on the whole region in memory, softmax + argmax, the
  labels written to a zarr array (no pyramid) — what its docs show for a WSI;
* ``tiatoolbox``: TIAToolbox's ``SemanticSegmentor`` on the slide (its default Otsu tissue mask,
  averaging of overlaps, argmax labels written to its zarr), under a side interpreter
  (``--tia-python``, see :mod:`gigavim.benchmarks.tiatoolbox_case`).

Networks: ``pixel`` (a fixed 1×1 conv: the engines' own cost), ``unet`` (a MONAI U-Net, 101 k
parameters, seeded, untrained: a small CNN's cost) and the bundled ``nuclei-he`` Vim. Each case runs
in its own process (its peak RSS is its own); cases are interleaved (network by network, engine by
engine, repeat by repeat) so load on a shared host hits all alike, and the table gives medians.
Time is from the start of the engine call to the output on disk; imports and model building come
before it (a batch of slides pays them once); gigavim's imports of its slide reader and writers
too, as MONAI's case imports OpenSlide and MONAI first. gigavim runs without stain normalisation
and test-time augmentation (whatever the model's defaults), as MONAI's case does. MONAI is an
optional extra of this benchmark only (``pip install monai``), never a runtime dependency;
missing, its rows say so. TIAToolbox 2.x pins ``torch<2.13`` and so cannot be installed beside
gigavim (torch 2.13): its case runs in a side venv's Python, on the pixel and U-Net networks
saved by this process (:mod:`gigavim.benchmarks.portable_net`: same weights, same input
scaling); without that interpreter its rows say why they are empty.
"""

from __future__ import annotations

import importlib.util
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from gigavim.benchmarks.report import (
    BenchReport,
    Column,
    Progress,
    bench_device,
    child_main,
    device_kind,
    load_average,
    peak_rss_mib,
    run_child,
    run_command,
    show_row,
)
from gigavim.benchmarks.usage import cpu_seconds
from gigavim.data import sample_slide
from gigavim.errors import UsageError

TILE, OVERLAP, BATCH, THREADS = 256, 64, 4, 2
NETWORKS = ("pixel", "unet", "nuclei-he")
ENGINES = ("gigavim", "monai", "tiatoolbox")
PORTABLE = ("pixel", "unet")  # the networks a side interpreter can rebuild (nuclei-he is gigavim's Vim)
REPEATS, QUICK_REPEATS = 3, 1
NOT_INSTALLED = "not installed"
NO_SIDE_PYTHON = "no --tia-python (needs torch<2.13: its own venv, see docs/benchmarks.md)"
Side = dict[str, str | None]  # the TIAToolbox interpreter's package versions (None: not there)
NOT_PORTABLE = "a gigavim Vim: not run under TIAToolbox's interpreter"

COLUMNS = [
    Column("network", "network"),
    Column("engine", "engine"),
    Column("seconds", "seconds (median)", ".2f"),
    Column("runs", "runs s"),
    Column("cpu_s", "CPU s (median)", ".2f"),
    Column("megapixels_per_s", "MP/s", ".2f"),
    Column("peak_rss_mib", "peak RSS MiB", ".0f"),
    Column("vs_gigavim", "time / gigavim's", ".2f"),
]


def network(name: str):
    """The ModelBundle of a benchmark network, at this benchmark's tile and overlap."""
    import dataclasses

    import torch

    from gigavim.benchmarks import portable_net
    from gigavim.benchmarks.segment import bundle as engine_bundle
    from gigavim.models.bundle import ModelBundle

    if name == "pixel":
        b = engine_bundle("pixel")
    elif name == "unet":
        torch.manual_seed(0)
        net = portable_net.build("monai-unet", portable_net.UNET_CONFIG)
        b = engine_bundle("pixel")
        b = ModelBundle(net.eval(), dataclasses.replace(b.meta, name="unet", arch={"size_multiple": 8}))
    else:
        from gigavim.models.catalog import load_model

        b = load_model(name)
    return ModelBundle(b.net.eval(), dataclasses.replace(b.meta, tile=TILE, overlap=OVERLAP))


def describe_network(name: str) -> dict[str, Any]:
    """``network(name)`` as plain data a side interpreter rebuilds (pixel, unet): same weights and scaling."""
    from gigavim.benchmarks import portable_net

    if name not in PORTABLE:
        raise ValueError(f"network {name!r} is not portable (one of {', '.join(PORTABLE)})")
    bundle = network(name)
    if name == "pixel":
        kind, config = "conv2d", portable_net.conv2d_config(bundle.net)
    else:
        kind, config = "monai-unet", portable_net.UNET_CONFIG
    offset, scale = bundle.meta.contract().offset_scale()
    return portable_net.describe(bundle.net, kind, config, offset, scale, bundle.meta.mean, bundle.meta.std)


def side_versions(python: str) -> Side:
    """tiatoolbox / torch / monai versions in the side interpreter (None: not installed there).

    Raises UsageError (one line) when ``python`` does not run or has no TIAToolbox."""
    probe = ("import json, importlib.util as u, importlib.metadata as m; print(json.dumps({p: "
             "m.version(p) if u.find_spec(p) else None for p in ('tiatoolbox', 'torch', 'monai')}))")
    try:
        versions = run_command([python, "-c", probe])
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--tia-python {python}: does not run as Python ({reason})") from None
    if not versions.get("tiatoolbox"):
        raise UsageError(f"--tia-python {python}: tiatoolbox is not installed in that interpreter "
                         f"(pip install tiatoolbox there)")
    return versions


def measure(engine: str, net_name: str, slide: str, out: str, device: str, threads: str) -> dict[str, Any]:
    """One case in this process (a child): seconds from the engine call to its output on disk."""
    import torch

    torch.set_num_threads(int(threads))
    bundle = network(net_name)
    run = _gigavim if engine == "gigavim" else _monai
    prepare = _prepare_gigavim if engine == "gigavim" else _prepare_monai
    prepare(out)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    megapixels = run(bundle, slide, out, device)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": cpu_seconds() - cpu_before, "megapixels": megapixels,
            "peak_rss_mib": peak_rss_mib()}


def _prepare_gigavim(out: str) -> None:
    """Imports, as ``_prepare_monai``'s: the engine, its slide reader and its writer's."""
    import gigavim.engine.segment
    import gigavim.io.openslide_source
    import gigavim.io.raster_source  # noqa: F401 (open_image imports every reader it may need)
    from gigavim.io.writers import preload_writers

    preload_writers([out]).join()


def _gigavim(bundle: Any, slide: str, out: str, device: str) -> float:
    from gigavim.engine import segment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "untrained model" is the point for pixel / unet
        # no stain normalisation, one view: MONAI's case runs the network once on the plain
        # normalisation (same work, whatever the bundled model's defaults)
        result = segment(slide, [out], model=bundle, level=0, tile=TILE, overlap=OVERLAP,
                         batch_size=BATCH, device=device, overwrite=True, allow_untrained=True,
                         stain_norm=False, tta=1)
    return result.megapixels


def _prepare_monai(out: str) -> None:
    import monai.inferers  # noqa: F401
    import openslide  # noqa: F401
    import zarr  # noqa: F401


def _monai(bundle: Any, slide: str, out: str, device: str) -> float:
    """The MONAI way: read the region, sliding-window inference in memory, write the labels."""
    import numpy as np
    import openslide
    import torch
    import zarr
    from monai.inferers import sliding_window_inference

    with openslide.OpenSlide(slide) as s:
        rgb = np.asarray(s.read_region((0, 0), 0, s.dimensions))[..., :3]
    x = bundle.normalize(rgb[None])
    net = bundle.net.to(device)
    with torch.inference_mode():
        logits = sliding_window_inference(x, (TILE, TILE), BATCH, net, overlap=OVERLAP / TILE,
                                          mode="gaussian", sw_device=device, device="cpu")
        labels = torch.softmax(logits, dim=1).argmax(dim=1)[0].to(torch.uint8).numpy()
    shutil.rmtree(out, ignore_errors=True)
    zarr.create_array(out, shape=labels.shape, chunks=(1024, 1024), dtype="uint8")[:] = labels
    return labels.size / 1e6


def available(engine: str) -> bool:
    """Whether ``engine`` runs in this interpreter (TIAToolbox never does: it has its own)."""
    return engine == "gigavim" or (engine == "monai" and importlib.util.find_spec("monai") is not None)


def missing_reasons(networks: tuple[str, ...], side: Side | None) -> dict[tuple[str, str], str]:
    """Why a (network, engine) case does not run, for each case that does not (shown in its row).

    ``side``: the TIAToolbox interpreter's package versions (:func:`side_versions`), None without one."""
    reasons = {}
    for net in networks:
        if not available("monai"):
            reasons[net, "monai"] = NOT_INSTALLED
        if side is None:
            reasons[net, "tiatoolbox"] = NO_SIDE_PYTHON
        elif net not in PORTABLE:
            reasons[net, "tiatoolbox"] = NOT_PORTABLE
        elif net == "unet" and not side.get("monai"):
            reasons[net, "tiatoolbox"] = "monai not installed in TIAToolbox's venv (the U-Net is MONAI's)"
    return reasons


def run(
    device: str = "auto",
    quick: bool = False,
    networks: tuple[str, ...] | None = None,
    repeats: int | None = None,
    threads: int = THREADS,
    progress: Progress | None = None,
    tiatoolbox_python: str | None = None,
) -> BenchReport:
    """Every (network, engine) case ``repeats`` times, interleaved; ``quick``: pixel, once.

    ``tiatoolbox_python``: a Python with TIAToolbox (its own venv) for the TIAToolbox rows."""
    device = bench_device(device)
    networks = networks or (("pixel",) if quick else NETWORKS)
    repeats = repeats or (QUICK_REPEATS if quick else REPEATS)
    if "unet" in networks and not available("monai"):
        networks = tuple(n for n in networks if n != "unet")  # the U-Net is MONAI's
    side = side_versions(tiatoolbox_python) if tiatoolbox_python else None
    missing = missing_reasons(networks, side)
    slide = sample_slide()  # the bundled CMU-1 region
    folder = Path(tempfile.mkdtemp(prefix="gigavim-engines-"))
    runs: Runs = {}
    try:
        for _ in range(repeats):
            for net in networks:
                for engine in ENGINES:
                    if (net, engine) in missing:
                        continue
                    out = folder / f"{net}-{engine}.{'ome.zarr' if engine == 'gigavim' else 'zarr'}"
                    if engine == "tiatoolbox":
                        r = run_command(tiatoolbox_command(str(tiatoolbox_python), folder, net, slide, out,
                                                           device, threads))
                    else:
                        r = run_child(__name__, engine, net, slide, out, device, threads)
                    runs.setdefault((net, engine), []).append(r)
                    if progress:
                        progress(f"{net} {engine}: {r['seconds']:.2f} s, {r['peak_rss_mib']:.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = _rows(networks, runs, missing)
    for row in rows:
        show_row(progress, COLUMNS, row)
    kind = device_kind(device)
    return BenchReport(
        name="engines", section=f"engines-{kind}",
        title=f"gigavim vs MONAI's sliding window and TIAToolbox on {kind.upper()}",
        columns=COLUMNS, rows=rows, device=device, quick=quick,
        intro=(f"the bundled CMU-1 sample region (2220×2967 px, 6.59 MP, level 0), tile {TILE}, overlap "
               f"{OVERLAP}, batch {BATCH}, {threads} torch threads, device {device}; medians of {repeats} "
               f"interleaved runs, each case in its own process. `time / gigavim's` > 1: gigavim is that "
               f"many times faster. gigavim skips glass (its tissue mask) and writes an OME-Zarr pyramid; "
               f"MONAI infers the whole region and writes one zarr array; with `nuclei-he` gigavim also "
               f"separates and measures every nucleus (its instance pass), which the others do not; "
               f"{_tiatoolbox_note(side)} "
               f"`CPU s`: user + system "
               f"time of all the case's threads (torch's intra-op workers spin while they wait, so "
               f"a busy host inflates it). "
               f"Load average at the end: {load_average():.1f} (shared host: compare within a table)."),
    )


def tiatoolbox_command(python: str, folder: Path, net: str, slide: str | Path, out: Path, device: str,
                       threads: int) -> list[str]:
    """The side interpreter's command for one TIAToolbox case; saves ``net``'s description once."""
    from gigavim.benchmarks import portable_net, tiatoolbox_case

    description = folder / f"{net}.network.pt"
    if not description.exists():
        portable_net.save(describe_network(net), description)
    return tiatoolbox_case.command(python, description, slide, out, device, threads, TILE, OVERLAP, BATCH)


def _tiatoolbox_note(side: Side | None) -> str:
    if side is None:
        return ("TIAToolbox (2.x needs torch < 2.13, so it runs only under its own venv's Python, "
                "`--tia-python`) was not given one here, so its rows are empty.")
    return (f"TIAToolbox {side['tiatoolbox']} (torch {side['torch']}, its own venv) runs `SemanticSegmentor` "
            f"on the slide with its default Otsu tissue mask, averages overlaps and writes argmax "
            f"labels to its zarr; same weights and input scaling as the others.")


Runs = dict[tuple[str, str], list[dict[str, Any]]]


def _rows(networks: tuple[str, ...], runs: Runs,
          missing: dict[tuple[str, str], str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for net in networks:
        base = runs.get((net, "gigavim"))
        base_s = statistics.median(r["seconds"] for r in base) if base else None
        for engine in ENGINES:
            cases = runs.get((net, engine))
            if not cases:
                reason = (missing or {}).get((net, engine), NOT_INSTALLED)
                rows.append({"network": net, "engine": engine, "runs": reason})
                continue
            seconds = statistics.median(r["seconds"] for r in cases)
            rows.append({
                "network": net, "engine": engine, "seconds": seconds,
                "runs": " / ".join(f"{r['seconds']:.1f}" for r in cases),
                "cpu_s": statistics.median(r.get("cpu_s", float("nan")) for r in cases),
                "megapixels_per_s": cases[0]["megapixels"] / seconds,
                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in cases),
                "vs_gigavim": seconds / base_s if base_s else None,
            })
    return rows


if __name__ == "__main__":
    child_main(measure)
