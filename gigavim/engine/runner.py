"""Run batches of tiles through the model while a thread pool reads the next ones.

Reading (JPEG decoding, resampling) and inference overlap: a bounded number of batches is
read ahead by background threads, so memory stays at a few batches whatever the image size.
Inference runs under ``torch.inference_mode`` (and bf16 autocast on CUDA); the network sees
exactly the tile, padded at its far edges to the size multiple the architecture needs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import torch

from gigavim.errors import ModelError, UsageError
from gigavim.io.base import Window
from gigavim.models.bundle import ModelBundle
from gigavim.models.vim import set_inference_chunk

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
    """Maps (B, h, w, bands) raw pixels to (B, K, h, w) float16 class probabilities.

    The three steps are public so the engine can run each where it costs least on a CPU:
    :meth:`prepare` (pad + normalise one tile, numpy) in the reader threads, :meth:`forward` (the
    network: the only torch work) in the inference thread, :meth:`finish` (softmax, numpy) in
    the merge thread. Calling the predictor runs all three in turn.
    """

    def __init__(self, bundle: ModelBundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = resolve_device(device)
        self.net = bundle.net.to(self.device).eval()
        # Tile batches are bounded: chunked Vim blocks would save little memory and add kernel
        # calls (nuclei-he, 4 × 256² tiles: +5-9 % CPU on one thread, 2-3.6× on two busy ones).
        set_inference_chunk(self.net, None)
        self.multiple = size_multiple(bundle)
        self.classes = bundle.num_classes

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        _b, h, w, _ = pixels.shape
        return self.finish(self.forward(self.prepare(pixels), h, w))

    def prepare(self, pixels: np.ndarray, sum_count: int = 1) -> np.ndarray:
        """(..., h, w, bands) raw pixels → (..., bands, h', w') float32 network input, edge-padded
        at the far edges to the network's size multiple (padding commutes with normalising).
        ``sum_count``: the pixels are block sums of that many 8-bit pixels (``TileReader``).

        The result is a view of (..., h', w', bands) memory: torch's channels_last layout, in
        which CPU convolutions run far faster than on contiguous NCHW (a 1×1 conv over a batch
        of four 256² tiles: 0.5 vs 19 ms); :func:`prefetched` keeps that layout per batch."""
        h, w = pixels.shape[-3:-1]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            pad = [(0, 0)] * (pixels.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
            pixels = np.pad(pixels, pad, mode="edge")
        return self.bundle.normalize_array(pixels, channels_last=True, sum_count=sum_count)

    def forward(self, x: np.ndarray, h: int, w: int) -> np.ndarray:
        """(B, bands, h', w') prepared input → (B, ·, h, w) float32 for :meth:`finish`: the logits
        on a CPU, the probabilities on a GPU (computed where the data is, one copy back)."""
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                    else nullcontext())
        with torch.inference_mode(), autocast:
            out = self.net(torch.from_numpy(x).to(self.device)).float()
            if self.device.type != "cpu":
                out = self.probabilities(out)
        return out[:, :, :h, :w].cpu().numpy()

    def finish(self, out: np.ndarray) -> np.ndarray:
        """:meth:`forward`'s output → (B, K, h, w) float16 class probabilities (numpy on a CPU)."""
        if self.device.type == "cpu":  # NCHW memory: reductions over classes are then plane by plane
            out = class_probabilities(np.ascontiguousarray(out), self.classes, self.bundle.meta.name)
        return out.astype(np.float16)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, K', h, w) logits → (B, K, h, w) class probabilities, as the engine stores them.

        Public because tile mode is not the only producer of logits: whole-image context
        (:mod:`gigavim.engine.whole_image`) upsamples streamed logits itself and must turn them
        into probabilities exactly as tiles are (softmax over K classes, or a single binary logit
        through a sigmoid). Raises ``ModelError`` when the head's channels match neither, or when
        a logit is NaN/inf (softmax would turn it into silent garbage). CPU tensors go through
        :func:`class_probabilities` (numpy, as tile mode on a CPU), others through torch.
        """
        name = self.bundle.meta.name
        if logits.device.type == "cpu":
            return torch.from_numpy(class_probabilities(logits.numpy(), self.classes, name))
        if not bool(torch.isfinite(logits).all()):  # one reduction per batch: cheap next to the net
            raise ModelError(_non_finite(name))
        if _check_channels(logits.shape[1], self.classes, name) == self.classes:
            return torch.softmax(logits, dim=1)
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)


def class_probabilities(logits: np.ndarray, classes: int, name: str) -> np.ndarray:
    """(B, K', h, w) float32 logits → (B, K, h, w) float32 probabilities, with numpy.

    Softmax over K = ``classes`` channels, or a single binary logit through a sigmoid; a NaN/inf
    logit or a channel count that is neither is a :class:`ModelError` naming the model ``name``.
    numpy runs in the calling thread (the engine's merge thread) and releases the GIL.
    """
    if not np.isfinite(logits).all():
        raise ModelError(_non_finite(name))
    k = _check_channels(logits.shape[1], classes, name)
    if k == classes:
        e = logits - logits.max(axis=1, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=1, keepdims=True)
        return e
    with np.errstate(over="ignore"):  # exp(88+) is inf, and 1 / (1 + inf) the right 0
        p = 1 / (1 + np.exp(-logits))
    return np.concatenate([1 - p, p], axis=1)


def _check_channels(k: int, classes: int, name: str) -> int:
    if k == classes or (k == 1 and classes == 2):  # K logits, or a single-logit binary head
        return k
    raise ModelError(f"model {name!r} outputs {k} channels but declares {classes} classes")


def _non_finite(name: str) -> str:
    return (f"model {name!r} produced non-finite outputs (NaN or inf): its weights are damaged, or "
            "the input's pixel values are far outside what it was trained on (an undeclared nodata value?)")


def prefetched(
    batches: Iterable[list[Window]],
    read: Callable[[Window], TileRead],
    *,
    workers: int = 2,
    ahead: int = 2,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (pixels (B,h,w,bands), valid (B,h,w)) per batch, reading ``ahead`` batches early.

    Each reader thread copies its tile into the batch's arrays itself, so the consuming thread
    (the network's) gets the batch without a stacking copy of its own."""
    pending: deque[tuple[_Batch, list[Future[None]]]] = deque()
    it = iter(batches)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gigavim-read") as pool:
        try:
            while True:
                while len(pending) <= ahead:
                    windows = next(it, None)
                    if windows is None:
                        break
                    batch = _Batch(len(windows))
                    pending.append((batch, [pool.submit(batch.fill, i, read, win)
                                            for i, win in enumerate(windows)]))
                if not pending:
                    return
                batch, futures = pending.popleft()
                for f in futures:
                    f.result()
                assert batch.pixels is not None and batch.valid is not None
                yield batch.pixels, batch.valid
        finally:
            for _, futures in pending:
                for f in futures:
                    f.cancel()


class _Batch:
    """One batch's arrays, allocated by the first tile read and filled slot by slot by readers."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pixels: np.ndarray | None = None
        self.valid: np.ndarray | None = None
        self._lock = threading.Lock()

    def fill(self, i: int, read: Callable[[Window], TileRead], window: Window) -> None:
        pixels, valid = read(window)
        with self._lock:
            if self.pixels is None:
                self.pixels = stacked_like(pixels, self.size)
                self.valid = np.empty((self.size, *valid.shape), valid.dtype)
        assert self.valid is not None
        self.pixels[i] = pixels
        self.valid[i] = valid


def stacked_like(item: np.ndarray, size: int) -> np.ndarray:
    """An empty (size, *item.shape) array whose items have ``item``'s memory layout (a batch of
    channels-last tiles stays channels-last, so filling a slot is a straight copy)."""
    order = sorted(range(item.ndim), key=lambda a: -abs(item.strides[a]))  # slowest axis first
    buffer = np.empty((size, *(item.shape[a] for a in order)), item.dtype)
    return buffer.transpose(0, *(1 + order.index(a) for a in range(item.ndim)))
