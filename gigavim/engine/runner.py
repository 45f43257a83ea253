"""Run batches of tiles through the model while a thread pool reads the next ones.

Reading (JPEG decoding, resampling) and inference overlap: a bounded number of batches is
read ahead by background threads, so memory stays at a few batches whatever the image size.
Inference runs under ``torch.inference_mode`` (and bf16 autocast on CUDA); the network sees
exactly the tile, padded at its far edges to the size multiple the architecture needs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import torch

from gigavim.errors import ModelError, UsageError
from gigavim.io.base import Window
from gigavim.models.bundle import ModelBundle

TileRead = tuple[np.ndarray, np.ndarray]


def resolve_device(device: str) -> torch.device:
    """A torch device (``auto``: CUDA when present, else CPU), refusing CUDA when this machine has
    none (a usage error, not a crash)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda)") from exc
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device}: unsupported device (use auto, cpu or cuda)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return dev


def size_multiple(bundle: ModelBundle) -> int:
    """The input size multiple the network needs (its patch stride; 1 for plain conv nets)."""
    arch = bundle.meta.arch or {}
    return int(arch.get("size_multiple") or arch.get("patch_size") or 1)


class Predictor:
    """Maps (B, h, w, bands) raw pixels to (B, K, h, w) float16 class probabilities."""

    def __init__(self, bundle: ModelBundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = resolve_device(device)
        self.net = bundle.net.to(self.device).eval()
        self.multiple = size_multiple(bundle)
        self.classes = bundle.num_classes

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        _b, h, w, _ = pixels.shape
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            pixels = np.pad(pixels, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
        x = self.bundle.normalize(pixels).to(self.device)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                    else nullcontext())
        with torch.inference_mode(), autocast:
            logits = self.net(x)
        probs = self.probabilities(logits.float())[:, :, :h, :w]
        return probs.to(torch.float16).cpu().numpy()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, K', h, w) logits → (B, K, h, w) class probabilities, as the engine stores them.

        Public because tile mode is not the only producer of logits: whole-image context
        (:mod:`gigavim.engine.whole_image`) upsamples streamed logits itself and must turn them
        into probabilities exactly as tiles are (softmax over K classes, or a single binary logit
        through a sigmoid). Raises ``ModelError`` when the head's channels match neither, or when
        a logit is NaN/inf (softmax would turn it into silent garbage)."""
        if not bool(torch.isfinite(logits).all()):  # one reduction per batch: cheap next to the net
            raise ModelError(f"model {self.bundle.meta.name!r} produced non-finite outputs (NaN or inf): "
                             "its weights are damaged, or the input's pixel values are far outside "
                             "what it was trained on (an undeclared nodata value?)")
        k = logits.shape[1]
        if k == self.classes:
            return torch.softmax(logits, dim=1)
        if k == 1 and self.classes == 2:  # a single-logit binary head
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], dim=1)
        raise ModelError(f"model {self.bundle.meta.name!r} outputs {k} channels "
                         f"but declares {self.classes} classes")


def prefetched(
    batches: Iterable[list[Window]],
    read: Callable[[Window], TileRead],
    *,
    workers: int = 2,
    ahead: int = 2,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (pixels (B,h,w,bands), valid (B,h,w)) per batch, reading ``ahead`` batches early."""
    pending: deque[list[Future[TileRead]]] = deque()
    it = iter(batches)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gigavim-read") as pool:
        try:
            while True:
                while len(pending) <= ahead:
                    batch = next(it, None)
                    if batch is None:
                        break
                    pending.append([pool.submit(read, win) for win in batch])
                if not pending:
                    return
                reads = [f.result() for f in pending.popleft()]
                yield np.stack([r[0] for r in reads]), np.stack([r[1] for r in reads])
        finally:
            for futures in pending:
                for f in futures:
                    f.cancel()
