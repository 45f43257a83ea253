"""Everything one training run needs, as one JSON-serialisable dataclass.

The CLI builds it from flags (and optionally a JSON/YAML file); the same dict is stored in the
training-state file and, summarised, in the model bundle, so a run can be resumed or repeated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gigavim.errors import UsageError

DEFAULT_COLORS = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
                  (245, 130, 48), (145, 30, 180), (70, 240, 240)]


@dataclass
class AugmentConfig:
    """Which augmentations run, and how strongly (0 disables a jitter).

    Kept here (not in :mod:`gigavim.train.augment`) so that reading the defaults, as
    ``gigavim train --help`` does, imports no numpy or torch.
    """

    flips: bool = True
    rotate90: bool = True
    zoom: float = 0.0  # scale ~ exp(U(±ln(1+zoom))): 0.2 is 0.83-1.2x (buildings at other GSDs/sizes)
    rotate_deg: float = 0.0  # rotation ~ U(±rotate_deg) degrees on top of the 90° ones
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    stain: float = 0.0  # H&E jitter strength: scale ~ U(1±s), shift ~ U(±s/10) in OD space
    blur_p: float = 0.0  # probability of a Gaussian blur of sigma ~ U(0.3, blur_sigma) px
    blur_sigma: float = 1.0
    jpeg_p: float = 0.0  # probability of a JPEG round trip at quality ~ U(jpeg_quality)
    jpeg_quality: tuple[int, int] = (30, 90)


_CHOICES = {"label_mode": ("binary", "values", "boundary"), "label_nodata": ("tag", "none"),
            "sampling": ("random", "balanced", "foreground"),
            "model_resolution": ("training", "native"), "scaling": ("auto", "fixed", "percentile")}


@dataclass
class TrainConfig:
    """A training run: data, model, optimisation and outputs.

    ``pairs`` / ``val_pairs`` are ``(image, labels)`` path pairs, or ``(image, labels, µm/px)``
    for an image that records no pixel size (mixing 20x and 40x tiles); without ``val_pairs`` the
    right-most ``val_fraction`` of each image is held out for validation. ``arch`` is passed
    to :func:`gigavim.models.factory.build_segmenter` as keywords.
    """

    pairs: list[tuple[str, str]]
    out: str
    name: str = "model"
    classes: list[str] = field(default_factory=lambda: ["background", "foreground"])
    colors: list[tuple[int, int, int]] | None = None
    description: str = ""
    task: str = "semantic-segmentation"
    input_kind: str = "any"
    label_mode: str | None = None  # None: "binary" for two classes, else "values" (as eval)
    value_map: dict[int, int] | None = None
    label_nodata: str = "tag"  # "none": a label raster's nodata tag is ignored (its value is a label)
    boundary_um: float = 0.5  # label mode "boundary": width of each object's boundary band in µm
    val_pairs: list[tuple[str, str]] = field(default_factory=list)
    val_fraction: float = 0.0
    val_gap: int = 0  # columns between the training part and the held-out part (used by neither)
    mpp: float | None = None
    gsd_m: float | None = None
    image_mpp: float | None = None
    model_resolution: str = "training"  # or "native": the model runs at the input's own pixels
    arch: dict[str, Any] = field(default_factory=dict)
    init_backbone: str | None = None
    init_model: str | None = None  # a model bundle whose weights (backbone and head) start the run
    patch: int = 128
    batch_size: int = 8
    steps: int = 500
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    dice_weight: float = 0.5
    class_weights: list[float] | None = None  # cross-entropy weight per class (None: all 1)
    sampling: str = "balanced"
    foreground_p: float = 0.5
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_every: int = 100
    checkpoint_every: int = 0
    keep_checkpoints: bool = False  # also keep each checkpoint's bundle as OUT-stepN.pt (to pick a stage)
    state_path: str | None = None
    resume: str | None = None
    device: str = "auto"
    seed: int = 0
    tile: int = 512
    overlap: int = 64
    log_every: int = 10
    time_limit_s: float | None = None  # stop early (recorded in the bundle) on a shared machine
    # The input contract (gigavim.train.contract): band names, sensor, and how values are scaled
    band_names: list[str] | None = None  # None: the files' band descriptions, else red,green,blue / bandN
    sensor: str | None = None
    scaling: str = "auto"  # auto: fixed 1/255 for uint8, per-band percentiles otherwise
    scale: float | None = None  # the factor of --scaling fixed (e.g. 1e-4 for Sentinel-2 L1C)

    def __post_init__(self) -> None:
        self.pairs = [tuple(p) for p in self.pairs]  # type: ignore[misc]
        self.val_pairs = [tuple(p) for p in self.val_pairs]  # type: ignore[misc]
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        if self.colors is None:
            self.colors = [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(len(self.classes))]
        self.colors = [tuple(int(v) for v in c) for c in self.colors]  # type: ignore[misc]
        if self.value_map:
            self.value_map = {int(k): int(v) for k, v in self.value_map.items()}
        if len(self.classes) < 2:  # one class has nothing to separate (and a NaN Dice term)
            raise UsageError(f"give at least two classes, background first (got {self.classes})")
        if len(self.colors) != len(self.classes):
            raise UsageError(f"{len(self.classes)} classes but {len(self.colors)} colours")
        if not self.pairs:
            raise UsageError("no training images given (IMAGE:LABELS pairs)")
        if self.label_mode is None:
            self.label_mode = "binary" if len(self.classes) == 2 else "values"
        if self.label_mode == "boundary" and len(self.classes) != 3:
            raise UsageError(f"label mode 'boundary' gives three classes (background, interior, "
                             f"boundary), but {len(self.classes)} classes were given")
        if self.class_weights is not None:
            self.class_weights = [float(w) for w in self.class_weights]
            weights = self.class_weights
            if len(weights) != len(self.classes) or min(weights) < 0 or max(weights) <= 0:
                raise UsageError(f"class weights: give one non-negative weight per class "
                                 f"({len(self.classes)}: {', '.join(self.classes)}), not all zero; "
                                 f"got {weights}")
        if not self.boundary_um > 0:
            raise UsageError(f"boundary width must be positive, not {self.boundary_um!r} µm")
        for pair in [*self.pairs, *self.val_pairs]:
            if len(pair) not in (2, 3):
                raise UsageError(f"a training pair is (image, labels) or (image, labels, µm/px), not {pair}")
        if self.label_mode == "binary" and len(self.classes) > 2:
            raise UsageError(f"binary labels only give classes 0 and 1, but {len(self.classes)} classes "
                             "were given; use label mode 'values' (class ids) for more")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.val_gap < 0:
            raise UsageError(f"val_gap must be 0 or more pixels, not {self.val_gap!r}")
        for name in ("patch", "batch_size", "val_every", "log_every", "tile"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if not 0 <= 2 * self.overlap <= self.tile:  # the engine's rule: the bundle's default tiling
            raise UsageError(f"overlap must be between 0 and half the tile ({self.tile // 2}), "
                             f"not {self.overlap!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise UsageError(f"device must be auto, cpu or cuda[:N], not {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pairs"] = [list(p) for p in self.pairs]
        d["val_pairs"] = [list(p) for p in self.val_pairs]
        d["colors"] = [list(c) for c in self.colors or []]
        if self.value_map:
            d["value_map"] = {str(k): v for k, v in self.value_map.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**d)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML (if PyYAML is installed) file of :class:`TrainConfig` fields."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a valid config file (not text)") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError as exc:
        raise UsageError(f"{path}: YAML config needs PyYAML (pip install pyyaml), or use JSON") from exc
    except Exception as exc:  # json/yaml syntax errors
        raise UsageError(f"{path}: not a valid config file ({exc})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: config must be a mapping of option names to values")
    return data
