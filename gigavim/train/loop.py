"""The training loop: patches → Vim segmenter → cross-entropy + Dice, AdamW, warm-up + cosine.

``train(config)`` returns the trained :class:`~gigavim.models.bundle.ModelBundle` and writes it
to ``config.out``; the bundle carries the full configuration (architecture, classes, colours,
normalisation, resolution, training summary), so ``gigavim segment --model out.pt`` needs
nothing else. A training-state file (weights, optimizer, scheduler, step, RNG, history) holds
only tensors and plain containers, so ``--resume`` loads it with ``weights_only=True``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gigavim.errors import InputError, OutputError, UsageError
from gigavim.io.writers.atomic import check_writable
from gigavim.models.bundle import ModelBundle, ModelMeta, load_bundle_file, load_tagged
from gigavim.train.augment import augment_batch
from gigavim.train.config import TrainConfig
from gigavim.train.contract import training_contract
from gigavim.train.dataset import (
    PatchSampler,
    TrainImage,
    image_bands,
    load_train_image,
    split_holdout,
)
from gigavim.train.labels import check_class_ids
from gigavim.train.metrics import IGNORE_LABEL, confusion_matrix, scores
from gigavim.train.predict import predict_labels

STATE_FORMAT = "gigavim-train-state"
Progress = Callable[[dict[str, Any]], None]


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when present; otherwise the engine's check (unavailable → UsageError)."""
    from gigavim.engine.runner import resolve_device

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(name)


def load_pairs(cfg: TrainConfig, pairs: list[tuple[str, str]]) -> list[TrainImage]:
    """Images and labels at the working resolution; labels must be class ids of ``cfg.classes``."""
    images: list[TrainImage] = []
    try:
        for img, lab, *own_mpp in pairs:  # a third element: this image's µm/px
            images.append(load_train_image(img, lab, mpp=cfg.mpp, gsd_m=cfg.gsd_m,
                                           image_mpp=float(own_mpp[0]) if own_mpp else cfg.image_mpp,
                                           mode=cfg.label_mode,  # type: ignore[arg-type]
                                           value_map=cfg.value_map, class_names=cfg.classes,
                                           boundary_um=cfg.boundary_um, label_nodata=cfg.label_nodata))
            check_class_ids(images[-1].labels, cfg.classes, images[-1].label_path)
    except BaseException:
        close_images(images)
        raise
    return images


def close_images(images: list[TrainImage]) -> None:
    """Release the files of lazily read images."""
    for im in images:
        im.close()


def value_range(images: list[TrainImage]) -> float:
    """The full-scale value of the images' dtype: 255 when all are uint8, else the data maximum
    over every image (a 16-bit image after an 8-bit one must not be scaled and clipped at 255)."""
    if all(im.value_dtype == np.uint8 for im in images):
        return 255.0
    peak = -np.inf
    for im in images:
        for pixels, _ in im.blocks():
            finite = pixels[~np.isnan(pixels)]
            if finite.size:
                peak = max(peak, float(finite.max()))
    return peak if peak > 0 else 1.0


def band_statistics(images: list[TrainImage], scale: float | np.ndarray, offset: float | np.ndarray = 0.0,
                    ) -> tuple[list[float], list[float]]:
    """Per-band mean and std of the scaled training pixels, ``(v - offset) * scale`` (labelled only).

    Accumulated strip by strip (Chan et al.'s pairwise update), so a large image is never held
    as float64 all at once; equal to the one-pass ``mean``/``std`` up to rounding.
    """
    bands = images[0].image.shape[-1]
    n, mean, m2 = 0, np.zeros(bands), np.zeros(bands)
    for im in images:
        for pixels, labels in im.blocks():
            vals = (pixels[labels != IGNORE_LABEL].reshape(-1, bands).astype(np.float64) - offset) * scale
            if not len(vals):
                continue
            block_mean = vals.mean(axis=0)
            delta, total = block_mean - mean, n + len(vals)
            m2 += ((vals - block_mean) ** 2).sum(axis=0) + delta**2 * n * len(vals) / total
            mean += delta * len(vals) / total
            n = total
    std = np.sqrt(m2 / max(n, 1))
    return mean.tolist(), np.maximum(std, 1e-3).tolist()


def lr_factor(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio``.

    ``time_fraction`` (elapsed / time budget of a time-capped run) advances the decay when the
    clock runs out before the steps do, so a run stopped by ``time_limit_s`` on a busy machine
    still ends annealed instead of at a high learning rate.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = max((step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps), time_fraction)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _time_fraction(cfg: TrainConfig, t0: float, loop_t0: float) -> float:
    """How much of a time cap the loop has used (0 without a cap); loading time is not counted
    against the schedule."""
    if cfg.time_limit_s is None:
        return 0.0
    budget = max(1e-6, cfg.time_limit_s - (loop_t0 - t0))
    return (time.perf_counter() - loop_t0) / budget


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float,
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy plus soft Dice over non-background classes, both ignoring unlabelled pixels.

    The cross-entropy is summed over labelled pixels and divided by their count (at least 1) —
    or, with ``class_weights`` (one per class), by their summed weights, torch's weighted mean —
    because torch's mean is 0/0 = NaN for a batch with no labelled pixel, which would poison every
    weight at the next step; here such a batch gives 0 and no gradient (and no GPU sync). A
    heavier thin class (an object boundary) is how a model learns to predict it at all.
    """
    labelled = target != IGNORE_LABEL
    if class_weights is None:
        norm = labelled.sum()
    else:
        norm = (class_weights[target.clamp(max=logits.shape[1] - 1)] * labelled).sum()
    ce = (F.cross_entropy(logits, target, weight=class_weights, ignore_index=IGNORE_LABEL, reduction="sum")
          / norm.clamp_min(1e-6 if class_weights is not None else 1))
    if dice_weight <= 0:
        return ce
    valid = labelled.unsqueeze(1)
    probs = torch.softmax(logits.float(), dim=1) * valid
    onehot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2)
    onehot = onehot.float() * valid
    inter = (probs * onehot).sum(dim=(0, 2, 3))[1:]
    denom = (probs + onehot).sum(dim=(0, 2, 3))[1:]
    dice = (2 * inter + 1) / (denom + 1)
    return ce + dice_weight * (1 - dice.mean())


def model_arch(cfg: TrainConfig, bands: int) -> dict[str, Any]:
    """``build_segmenter`` keywords: the configured arch with input bands and class count set."""
    arch = json.loads(json.dumps(cfg.arch))  # deep copy of a JSON-able dict
    arch.setdefault("backbone", {})["in_chans"] = bands
    arch["num_classes"] = len(cfg.classes)
    return arch


def model_resolution(cfg: TrainConfig, image: TrainImage) -> dict[str, float | None]:
    """The µm/px (slides, images) or m/px (rasters) stored in the bundle; none for "native"."""
    if cfg.model_resolution == "native":
        return {"mpp": None, "gsd_m": None}
    if image.kind == "raster":
        return {"mpp": None, "gsd_m": image.pixel_size.get("gsd_m")}
    return {"mpp": image.pixel_size.get("mpp"), "gsd_m": None}


def default_instances(cfg: TrainConfig) -> dict[str, Any]:
    """How a boundary-mode model's classes become objects (thresholds to be tuned after training);
    empty for a purely semantic model."""
    if cfg.label_mode != "boundary":
        return {}
    from gigavim.instances.settings import DEFAULT_THREE_CLASS

    return {"method": "three-class-watershed", "object_class": cfg.classes[1], "interior": 1,
            "boundary": 2, **DEFAULT_THREE_CLASS, "boundary_um": cfg.boundary_um}


def build_bundle(cfg: TrainConfig, images: list[TrainImage], resumed: dict[str, Any] | None) -> ModelBundle:
    """A fresh (or resumed) bundle: network from the arch, normalisation from the training pixels."""
    from gigavim.models.factory import build_segmenter

    start = init_model(cfg) if resumed is None else None
    if resumed is not None:
        meta = ModelMeta.from_dict(resumed["meta"])
    else:
        bands = images[0].image.shape[-1]
        if start is not None and start.meta.bands != bands:
            raise UsageError(f"{cfg.init_model}: the model takes {start.meta.bands} bands, "
                             f"the training images have {bands}")
        contract = training_contract(images, names=cfg.band_names, sensor=cfg.sensor,
                                     scaling=cfg.scaling, scale=cfg.scale)
        offset, per_band_scale = contract.offset_scale()
        mean, std = band_statistics(images, per_band_scale, offset)
        # input_scale: what older readers use, and the augmentation's full-scale value (1/max)
        fixed = contract.scaling["method"] == "fixed"
        scale = contract.scaling["scale"] if fixed else 1.0 / value_range(images)
        meta = ModelMeta(name=cfg.name, classes=list(cfg.classes), colors=list(cfg.colors or []),
                         arch=start.meta.arch if start else model_arch(cfg, bands), task=cfg.task,
                         input_kind=cfg.input_kind,  # type: ignore[arg-type]
                         bands=bands, input_scale=scale, mean=mean, std=std,
                         input_contract=contract.to_dict(),
                         **model_resolution(cfg, images[0]), tile=cfg.tile, overlap=cfg.overlap,
                         trained=False, description=cfg.description,
                         instances=default_instances(cfg))
    extra = {"pretrained_backbone": cfg.init_backbone} if (cfg.init_backbone and resumed is None) else {}
    try:
        net = build_segmenter(**meta.arch, **extra)
    except TypeError as exc:
        raise UsageError(f"invalid architecture options {meta.arch}: {exc}") from exc
    if resumed is not None:
        net.load_state_dict(resumed["model"])
    elif start is not None:
        net.load_state_dict(start.net.state_dict())
    return ModelBundle(net=net, meta=meta)


def init_model(cfg: TrainConfig) -> ModelBundle | None:
    """The bundle named by ``init_model`` (fine-tuning starts from all its weights), checked
    against the run: as many classes, and no conflicting backbone options."""
    if not cfg.init_model:
        return None
    if cfg.init_backbone:
        raise UsageError("give --init-model or --init-backbone, not both")
    start = load_bundle_file(cfg.init_model)
    if start.num_classes != len(cfg.classes):
        raise UsageError(f"{cfg.init_model}: the model has {start.num_classes} classes "
                         f"({', '.join(start.meta.classes)}), the run {len(cfg.classes)}")
    return start


def evaluate_images(bundle: ModelBundle, images: list[TrainImage], cfg: TrainConfig,
                    device: torch.device) -> dict[str, Any]:
    """Confusion-matrix scores of the model over whole images (validation)."""
    k = bundle.num_classes
    cm = np.zeros((k, k), dtype=np.int64)
    for im in images:
        pred = predict_labels(bundle, im.image, tile=cfg.tile, overlap=cfg.overlap,
                              device=device)
        cm += confusion_matrix(im.labels, pred, k)
    return scores(cm, bundle.meta.classes)


def save_state(path: Path, bundle: ModelBundle, opt: torch.optim.Optimizer, sched: Any, step: int,
               cfg: TrainConfig, history: list[dict[str, Any]], rng: np.random.Generator,
               sampler_rng: np.random.Generator) -> None:
    """Training state as plain tensors and containers (loads with ``weights_only=True``)."""
    payload = {
        "format": STATE_FORMAT, "step": step, "config": cfg.to_dict(), "meta": bundle.meta.to_dict(),
        "model": {k: v.detach().cpu() for k, v in bundle.net.state_dict().items()},
        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": history,
        "numpy_rng": rng.bit_generator.state, "sampler_rng": sampler_rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    tmp.replace(path)


def restore_rngs(resumed: dict[str, Any], rng: np.random.Generator, sampler_rng: np.random.Generator) -> None:
    """Continue every generator where the saved run stopped: augmentation, patch sampling, torch's
    CPU generator and, where the state has them and GPUs are present, the CUDA generators."""
    rng.bit_generator.state = resumed["numpy_rng"]
    sampler_rng.bit_generator.state = resumed.get("sampler_rng", resumed["numpy_rng"])
    torch.set_rng_state(resumed["torch_rng"])
    cuda = resumed.get("cuda_rng") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def load_state(path: str | Path) -> dict[str, Any]:
    """A training-state file written by :func:`save_state` (for ``--resume``)."""
    return load_tagged(path, STATE_FORMAT, "gigavim training-state file", UsageError)


def train(cfg: TrainConfig, progress: Progress | None = None) -> ModelBundle:
    """Train (or resume) and write the bundle to ``cfg.out``; returns the bundle."""
    t0 = time.perf_counter()
    report = progress or (lambda _e: None)
    out = Path(cfg.out)
    state_path = Path(cfg.state_path) if cfg.state_path else out.with_suffix(".state.pt")
    for path in (out, state_path):
        check_output_path(path)
    resumed = load_state(cfg.resume) if cfg.resume else None
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    check_training_bands(cfg, resumed)
    images: list[TrainImage] = []
    val_images: list[TrainImage] = []
    try:
        images = load_pairs(cfg, cfg.pairs)
        val_images = load_pairs(cfg, cfg.val_pairs) if cfg.val_pairs else []
        return _train(cfg, report, t0, out, state_path, resumed, rng, images, val_images)
    finally:
        close_images([*images, *val_images])


def _train(cfg: TrainConfig, report: Progress, t0: float, out: Path, state_path: Path,
           resumed: dict[str, Any] | None, rng: np.random.Generator, images: list[TrainImage],
           val_images: list[TrainImage]) -> ModelBundle:
    """The loop proper, over images already loaded (lazily read ones are closed by the caller)."""
    if not val_images and cfg.val_fraction > 0:
        images, val_images = split_holdout(images, cfg.val_fraction, cfg.val_gap)
    if not any((im.labels != IGNORE_LABEL).any() for im in images):
        held_out = f" outside the held-out {cfg.val_fraction:g} of columns" if cfg.val_fraction > 0 else ""
        raise UsageError(f"no labelled pixels{held_out} in the training labels "
                         f"({', '.join(str(im.label_path) for im in images)}): every pixel is ignore (255) "
                         "or outside the image")
    bundle = build_bundle(cfg, images, resumed)
    device = pick_device(cfg.device)
    net = bundle.net.to(device)
    sampler = PatchSampler(images, cfg.patch, len(cfg.classes), cfg.sampling,  # type: ignore[arg-type]
                           cfg.foreground_p, seed=cfg.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loop_t0 = time.perf_counter()
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg, _time_fraction(cfg, t0, loop_t0)))
    step, history = 0, []
    if resumed is not None:
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
        step, history = int(resumed["step"]), list(resumed["history"])
        for group, base in zip(opt.param_groups, sched.base_lrs, strict=True):  # this run's schedule
            group["lr"] = base * lr_factor(step, cfg)  # (--steps may differ from the saved run's)
        restore_rngs(resumed, rng, sampler.rng)
    value_max = 1.0 / bundle.meta.input_scale
    unsigned = all(np.issubdtype(im.value_dtype, np.unsignedinteger) for im in images)  # clip to [0, max]
    autocast = device.type == "cuda"
    losses: list[float] = []
    class_weights = (torch.tensor(cfg.class_weights, dtype=torch.float32, device=device)
                     if cfg.class_weights else None)
    while step < cfg.steps and not _out_of_time(cfg, t0):
        net.train()
        raw, labels = sampler.batch(cfg.batch_size)
        raw, labels = augment_batch(raw, labels, cfg.augment, rng, value_max, clip=unsigned)
        x = bundle.normalize(raw).to(device)
        y = torch.from_numpy(labels.astype(np.int64)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = net(x)
        loss = segmentation_loss(logits.float(), y, cfg.dice_weight, class_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if step % cfg.log_every == 0 or step == cfg.steps or _out_of_time(cfg, t0):
            entry = {"step": step, "loss": float(np.mean(losses[-cfg.log_every:])),
                     "lr": sched.get_last_lr()[0], "seconds": time.perf_counter() - t0}
            history.append(entry)
            report({"event": "step", **entry})
        if val_images and step % cfg.val_every == 0 and step < cfg.steps:
            net.eval()
            val = evaluate_images(bundle, val_images, cfg, device)
            history.append({"step": step, "val_mean_iou": val["mean_iou"], "val_mean_dice": val["mean_dice"]})
            report({"event": "validation", "step": step, **val})
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save_state(state_path, bundle, opt, sched, step, cfg, history, rng, sampler.rng)
            _finish(bundle, cfg, images, val_images, history, step, t0, device, final=False).save(out)
            if cfg.keep_checkpoints:  # every stage of the run, to choose one on a validation image
                shutil.copyfile(out, checkpoint_copy(out, step))
            report({"event": "checkpoint", "step": step, "path": str(out), "state": str(state_path)})
    save_state(state_path, bundle, opt, sched, step, cfg, history, rng, sampler.rng)
    final = _finish(bundle, cfg, images, val_images, history, step, t0, device, final=True)
    final.save(out)
    report({"event": "done", "path": str(out), "state": str(state_path), **final.meta.training})
    return final


def checkpoint_copy(out: Path, step: int) -> Path:
    """Where ``keep_checkpoints`` keeps the bundle of step ``step``: ``OUT-stepN.pt`` beside OUT."""
    return out.with_name(f"{out.stem}-step{step}{out.suffix}")


def check_training_bands(cfg: TrainConfig, resumed: dict[str, Any] | None) -> None:
    """Every training/validation image must have the model's band count; checked before any read.

    The model's bands are the resumed model's, else the first training image's.
    """
    paths = [pair[0] for pair in [*cfg.pairs, *cfg.val_pairs]]
    if resumed is not None:
        meta = ModelMeta.from_dict(resumed["meta"])
        expected, what = meta.bands, f"model {meta.name!r} (resumed) expects {meta.bands}"
    else:
        expected = image_bands(paths[0])
        what = f"the first training image {paths[0]} has {expected}"
    for path in paths:
        have = image_bands(path)
        if have != expected:
            raise InputError(f"{path}: has {have} band{'s' if have != 1 else ''} but {what}; every "
                             "training and validation image needs the same bands")


def check_output_path(path: Path) -> None:
    """Fail before training when the bundle or state file could not be written at the end."""
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, not a model file name")
    check_writable(path, overwrite=True)


def stopped_early(cfg: TrainConfig, step: int) -> str | None:
    """Why a finished run did fewer steps than planned (the time limit), or None if it did not."""
    if step >= cfg.steps:
        return None
    limit = f"{cfg.time_limit_s / 60:g} min" if cfg.time_limit_s is not None else "a limit"
    return (f"time limit of {limit} reached after {step} of {cfg.steps} planned steps: the model "
            "is under-trained (continue with --resume STATE and a longer --time-limit)")


def _out_of_time(cfg: TrainConfig, t0: float) -> bool:
    return cfg.time_limit_s is not None and time.perf_counter() - t0 >= cfg.time_limit_s


def _finish(bundle: ModelBundle, cfg: TrainConfig, images: list[TrainImage],
            val_images: list[TrainImage], history: list[dict[str, Any]], step: int, t0: float,
            device: torch.device, final: bool) -> ModelBundle:
    """The bundle with ``trained`` set and the training summary filled in."""
    bundle.net.eval()
    val = evaluate_images(bundle, val_images, cfg, device) if (final and val_images) else None
    bundle.meta.trained = step > 0
    bundle.meta.training = {
        "steps": step,
        "planned_steps": cfg.steps,
        "stopped_early": stopped_early(cfg, step) if final else None,
        "seconds": round(time.perf_counter() - t0, 1),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "images": [{"image": str(im.path), "labels": str(im.label_path), "shape": list(im.shape)}
                   for im in images],
        "validation": ({"images": [str(im.path) for im in val_images], "fraction": cfg.val_fraction,
                        "scores": {k: v for k, v in val.items() if k != "per_class"} | {
                            "per_class": val["per_class"]}} if val else None),
        "final_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
        "config": {k: v for k, v in cfg.to_dict().items() if k not in ("pairs", "val_pairs")},
    }
    bundle.net.to("cpu")
    result = ModelBundle(net=bundle.net, meta=bundle.meta)
    if not final:
        bundle.net.to(device)
    return result
