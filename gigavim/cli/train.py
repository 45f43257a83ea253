"""``gigavim train``: fit a Vim segmenter to labelled images and write a model bundle."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path

import typer

from gigavim.cli._app import app
from gigavim.train.config import AugmentConfig, TrainConfig

BACKBONE_DEFAULTS = {"embed_dim": 192, "depth": 24, "patch_size": 16}
"""``VisionMamba``'s own defaults (Vim-tiny), used when no --arch/--embed-dim/... is given; a
test keeps them equal to the class signature (importing torch here would slow every command)."""


def _default(name: str) -> str:
    """``[default: …]`` text for a :class:`TrainConfig` field, as ``--help`` shows it."""
    field = next(f for f in fields(TrainConfig) if f.name == name)
    value = field.default_factory() if field.default is MISSING else field.default  # type: ignore[misc]
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def parse_value_map(text: str | None) -> dict[int, int] | None:
    """``"0:0,255:1"`` → {0: 0, 255: 1}."""
    if not text:
        return None
    from gigavim.errors import UsageError

    try:
        return {int(a): int(b) for a, b in (item.split(":") for item in text.split(","))}
    except ValueError as exc:
        raise UsageError(f"--value-map {text!r}: expected RAW:CLASS pairs like 0:0,255:1") from exc


def parse_class_weights(text: str | None) -> list[float] | None:
    """``"1,1,3"`` → [1.0, 1.0, 3.0] (the count is checked against the classes by the config)."""
    if not text:
        return None
    from gigavim.errors import UsageError

    try:
        return [float(w) for w in text.split(",")]
    except ValueError as exc:
        raise UsageError(f"--class-weights {text!r}: expected numbers like 1,1,3") from exc


def parse_arch(text: str) -> dict:
    """The ``--arch`` JSON object, or a one-line UsageError."""
    from gigavim.errors import UsageError

    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--arch {text!r}: not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise UsageError(f"--arch {text!r}: expected a JSON object like {{\"backbone\": {{...}}}}")
    return parsed


def _split(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


@app.command()
def train(
    pairs: list[str] = typer.Argument(None, help="IMAGE:LABELS pairs (label image, raster or GeoJSON)."),
    out: Path = typer.Option(None, "--out", "-o", help="Model bundle to write (.pt)."),
    config: Path = typer.Option(None, "--config", help="JSON/YAML file of training options."),
    name: str = typer.Option(None, help="Model name stored in the bundle.", show_default=_default("name")),
    classes: str = typer.Option(None, help="Comma-separated class names, background first.",
                                show_default=_default("classes")),
    label_mode: str = typer.Option(
        None, help="binary (labels > 0 are class 1; default for 2 classes), values (class ids) or "
                   "boundary (instance ids → background/interior/boundary, for object models)."),
    boundary_um: float = typer.Option(None, help="Label mode boundary: boundary band width in µm."),
    value_map: str = typer.Option(None, help="Raw label value → class id, e.g. 0:0,255:1 (255 = ignore)."),
    label_nodata: str = typer.Option(
        None, help="tag: label pixels equal to the label raster's nodata value are unlabelled; none: "
                   "ignore the tag (masks that tag their background 0 as nodata).",
        show_default=_default("label_nodata")),
    val: list[str] = typer.Option(None, "--val", help="Validation IMAGE:LABELS pair (repeatable)."),
    val_fraction: float = typer.Option(None, help="Hold out this right-hand fraction of each image.",
                                       show_default=_default("val_fraction")),
    val_gap: int = typer.Option(None, help="Columns between trained and held-out parts (used by neither).",
                                show_default=_default("val_gap")),
    mpp: float = typer.Option(None, help="Training resolution in µm/px (slides, microscopy)."),
    gsd: float = typer.Option(None, "--gsd", help="Training resolution in m/px (rasters)."),
    image_mpp: float = typer.Option(None, help="µm/px of images that do not record one (PNG tiles)."),
    input_kind: str = typer.Option(None, help="slide, raster or any (what the model is meant for).",
                                   show_default=_default("input_kind")),
    native_resolution: bool = typer.Option(
        None, "--native-resolution/--training-resolution",
        help="Store no resolution: the model runs at each input's own pixel size."),
    embed_dim: int = typer.Option(None, help="Vim embedding width.",
                                  show_default=f"{BACKBONE_DEFAULTS['embed_dim']} (Vim-tiny)"),
    depth: int = typer.Option(None, help="Number of Vim blocks.",
                              show_default=f"{BACKBONE_DEFAULTS['depth']} (Vim-tiny)"),
    patch_size: int = typer.Option(None, help="Vim patch size in pixels.",
                                   show_default=f"{BACKBONE_DEFAULTS['patch_size']} (Vim-tiny)"),
    arch: str = typer.Option(None, help='Architecture JSON: {"backbone": {...}, "head": {...}}.'),
    init_backbone: Path = typer.Option(None, help="Official hustvl/Vim checkpoint to start from."),
    init_model: Path = typer.Option(
        None, help="Model bundle (.pt) whose weights start the run (fine-tuning): its architecture "
                   "replaces --arch; the classes must be as many."),
    patch: int = typer.Option(None, help="Training patch size in pixels.", show_default=_default("patch")),
    tile: int = typer.Option(None, help="Inference tile size stored in the model (pixels).",
                             show_default=_default("tile")),
    overlap: int = typer.Option(None, help="Inference tile overlap stored in the model (pixels).",
                                show_default=_default("overlap")),
    batch_size: int = typer.Option(None, help="Patches per step.", show_default=_default("batch_size")),
    steps: int = typer.Option(None, help="Optimizer steps.", show_default=_default("steps")),
    lr: float = typer.Option(None, help="Peak learning rate (AdamW).", show_default=_default("lr")),
    weight_decay: float = typer.Option(None, help="AdamW weight decay.",
                                       show_default=_default("weight_decay")),
    warmup_steps: int = typer.Option(None, help="Linear warm-up steps before cosine decay.",
                                     show_default=_default("warmup_steps")),
    class_weights: str = typer.Option(
        None, help="Cross-entropy weight per class, comma-separated, e.g. 1,1,3 (a heavier boundary "
                   "class).", show_default="all 1"),
    sampling: str = typer.Option(None, help="random, balanced or foreground.",
                                 show_default=_default("sampling")),
    stain_jitter: float = typer.Option(None, help="H&E stain jitter strength (0 = off).",
                                       show_default=str(AugmentConfig().stain)),
    colour_jitter: float = typer.Option(None, help="Brightness/contrast/saturation jitter (0 = off).",
                                        show_default=str(AugmentConfig().brightness)),
    val_every: int = typer.Option(None, help="Validate every N steps.", show_default=_default("val_every")),
    checkpoint_every: int = typer.Option(None, help="Write bundle + training state every N steps.",
                                         show_default="0 (only at the end)"),
    keep_checkpoints: bool = typer.Option(None, "--keep-checkpoints/--no-keep-checkpoints",
                                          help="Also keep each checkpoint's bundle as OUT-stepN.pt "
                                               "(to choose a stage on a validation image).",
                                          show_default="no"),
    state: Path = typer.Option(None, "--state", help="Training-state file (default: OUT.state.pt)."),
    resume: Path = typer.Option(None, "--resume", help="Continue from a training-state file."),
    device: str = typer.Option(None, help="auto, cpu or cuda.", show_default=_default("device")),
    seed: int = typer.Option(None, help="Random seed.", show_default=_default("seed")),
    time_limit: float = typer.Option(None, help="Stop after this many minutes (recorded in the bundle).",
                                     show_default="none"),
    description: str = typer.Option(None, help="One line stored in the bundle."),
    band_names: str = typer.Option(
        None, help="Comma-separated band names stored in the model's input contract, e.g. B4,B3,B2 "
                   "(default: the files' band descriptions, else red,green,blue or band1..N)."),
    sensor: str = typer.Option(None, help="Sensor stored in the input contract, e.g. 'Sentinel-2 MSI L1C'."),
    scaling: str = typer.Option(
        None, help="How raw values are scaled: auto (fixed 1/255 for 8-bit images, per-band 1st-99th "
                   "percentiles of the training pixels otherwise), fixed (needs --scale unless 8-bit) "
                   "or percentile. [default: auto]"),
    scale: float = typer.Option(None, help="Factor of --scaling fixed (1e-4 for Sentinel-2 reflectance)."),
    json_out: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
) -> None:
    """Train a segmentation model (Vim backbone + head) and write it as a model bundle.

    Unset options take the defaults shown. With no --arch the backbone is Vim-tiny (24 blocks of
    width 192), sized for a GPU: on a CPU give a small one (e.g. --embed-dim 48 --depth 3
    --patch-size 4) and a --time-limit; the recipes in scripts/ are worked examples. A run stopped
    by its time limit says so (and records it in the bundle).
    """
    from gigavim.train.config import read_config_file
    from gigavim.train.evaluate import parse_pair
    from gigavim.train.loop import load_state
    from gigavim.train.loop import train as run_training

    options: dict = read_config_file(config) if config else {}
    if resume and not config and not pairs:
        options = load_state(resume)["config"]
    flags = {
        "pairs": [list(parse_pair(p)) for p in pairs] if pairs else None,
        "out": str(out) if out else None, "name": name, "classes": _split(classes),
        "label_mode": label_mode, "boundary_um": boundary_um, "value_map": parse_value_map(value_map),
        "label_nodata": label_nodata,
        "val_pairs": [list(parse_pair(p)) for p in val] if val else None,
        "val_fraction": val_fraction, "val_gap": val_gap, "mpp": mpp, "gsd_m": gsd, "image_mpp": image_mpp,
        "input_kind": input_kind, "init_backbone": str(init_backbone) if init_backbone else None,
        "init_model": str(init_model) if init_model else None,
        "patch": patch, "tile": tile, "overlap": overlap, "batch_size": batch_size, "steps": steps, "lr": lr,
        "weight_decay": weight_decay, "warmup_steps": warmup_steps, "sampling": sampling,
        "class_weights": parse_class_weights(class_weights),
        "val_every": val_every, "checkpoint_every": checkpoint_every,
        "keep_checkpoints": keep_checkpoints,
        "state_path": str(state) if state else None, "resume": str(resume) if resume else None,
        "device": device, "seed": seed, "description": description,
        "band_names": _split(band_names), "sensor": sensor, "scaling": scaling, "scale": scale,
        "time_limit_s": time_limit * 60 if time_limit is not None else None,
        "model_resolution": (None if native_resolution is None
                             else "native" if native_resolution else "training"),
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    arch_opts = dict(options.get("arch") or {})
    if arch:
        arch_opts.update(parse_arch(arch))
    sizes = {"embed_dim": embed_dim, "depth": depth, "patch_size": patch_size, "stride": patch_size}
    backbone = dict(arch_opts.get("backbone") or {})
    backbone.update({k: v for k, v in sizes.items() if v is not None})
    arch_opts["backbone"] = backbone
    options["arch"] = arch_opts
    augment = dict(options.get("augment") or {})
    if stain_jitter is not None:
        augment["stain"] = stain_jitter
    if colour_jitter is not None:
        augment.update(brightness=colour_jitter, contrast=colour_jitter, saturation=colour_jitter)
    options["augment"] = augment
    if not options.get("out"):
        from gigavim.errors import UsageError

        raise UsageError("no output given: --out MODEL.pt")
    cfg = TrainConfig.from_dict(options)
    bundle = run_training(cfg, progress=None if json_out else _render)
    if json_out:
        typer.echo(json.dumps(bundle.meta.training, indent=2, default=str))


def _render(event: dict) -> None:
    kind = event.get("event")
    if kind == "step":
        typer.echo(f"step {event['step']:>6}  loss {event['loss']:.4f}  lr {event['lr']:.2e}  "
                   f"{event['seconds']:.0f} s")
    elif kind == "validation":
        miou = event.get("mean_iou")
        typer.echo(f"step {event['step']:>6}  validation mean IoU {_num(miou)}  "
                   f"pixel accuracy {_num(event.get('pixel_accuracy'))}")
    elif kind == "checkpoint":
        typer.echo(f"checkpoint: {event['path']} (state {event['state']})")
    elif kind == "done":
        typer.echo(f"wrote {event['path']} after {event['steps']} steps in {event['seconds']} s "
                   f"(training state: {event['state']})")
        if event.get("stopped_early"):
            typer.echo(f"stopped early: {event['stopped_early']}")
        val = (event.get("validation") or {}).get("scores")
        if val:
            per_class = ", ".join(f"{c['class']} IoU {_num(c['iou'])} Dice {_num(c['dice'])}"
                                  for c in val["per_class"])
            typer.echo(f"held-out validation: {per_class}; pixel accuracy {_num(val['pixel_accuracy'])}")


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
