"""Whole-image context: a :class:`VimSegmenter` run over ONE token sequence spanning the image.

A Vim block's cost is linear in the sequence length, but a forward pass still holds the whole
sequence (tokens × width) in memory, which for a slide does not fit. This module computes the
same numbers as ``segmenter(full_image)`` one *band* of whole token rows at a time, layer by
layer, with every per-token array on disk (numpy ``.npy`` memmaps in a caller-given folder):

* embedding: each band's pixels → patch tokens + sincos positions of their place in the image;
* per block, pass 1 walks the bands first → last and computes the forward direction, carrying
  the causal conv's last ``d_conv − 1`` inputs and the scan state from band to band; pass 2
  walks last → first for the backward direction (the anti-causal conv's state is the next
  band's first inputs, the reverse scan's state flows backwards), combines it with the stored
  forward output, gates, projects and adds the result to the residual stream;
* head (:class:`LightHead`): the tapped maps go through its first 1×1 conv band by band; the
  GroupNorm after it needs statistics over the *whole* map, gathered in one pass (per-band
  mean/M2, merged exactly) before normalising. This equals the single pass on the full image —
  not the statistics of the tiles the model was trained on.

RAM is O(band × width); disk holds two residual streams, one directional output and the small
head maps, read and written by explicit row ranges (:class:`RowArray`). Scans and convs go
through :mod:`gigavim.kernels`, so CUDA tensors use Triton.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gigavim import kernels
from gigavim.errors import ModelError
from gigavim.io.base import Window
from gigavim.models.heads import LightHead
from gigavim.models.layers import compute_dtype
from gigavim.models.mixer import BiMambaMixer
from gigavim.models.pos_embed import sincos_2d
from gigavim.models.segmenter import VimSegmenter
from gigavim.models.vim import VimBlock

PixelRows = Callable[[int, int], torch.Tensor]
"""(y0, y1) → (bands, y1 − y0, width) normalised network input for image rows y0..y1."""

StepCallback = Callable[[int, int], None]
"""Called with (steps done, steps total) once before the first band (steps a resumed run skips),
then after every band of every pass."""

DEFAULT_BAND_TOKENS = 16384


def check_streamable(net: nn.Module, name: str = "model") -> VimSegmenter:
    """The segmenter if this module can stream it exactly, else a one-line :class:`ModelError`."""
    why = None
    if not isinstance(net, VimSegmenter):
        why = f"it is a {type(net).__name__}, not a Vim segmenter"
    elif net.backbone.cls_layout != "none":
        why = (f"it has a class token ({net.backbone.cls_layout!r}), whose place in the sequence "
               "depends on the whole image")
    elif net.backbone.pos_embed is not None:
        why = ("it uses a learned position table, which has no values outside its training grid "
               f"(pos_embed_mode {net.backbone.pos_embed_mode!r}; sincos or none can stream)")
    elif not isinstance(net.head, LightHead):
        why = f"its {type(net.head).__name__} mixes neighbouring tokens; only the light head can stream"
    if why:
        raise ModelError(f"model {name!r} cannot run with whole-image context: {why}")
    return net


def token_bands(grid_hw: tuple[int, int], band_rows: int) -> list[tuple[int, int]]:
    """(first row, end row) of each band of whole token rows, top to bottom."""
    return [(r, min(r + band_rows, grid_hw[0])) for r in range(0, grid_hw[0], band_rows)]


class WholeImageStreamer:
    """Streams one segmenter over images' whole token grids, arrays under ``workdir``.

    ``band_tokens`` bounds the tokens per band (RAM ∝ band_tokens × model width); a band is at
    least one token row. ``pos_offset`` is the (row, col) of the image's first token in the
    sincos position grid (as ``VimSegmenter.forward``). A run interrupted after a finished
    layer resumes from the next one when called again on the same ``workdir`` — which belongs
    to one model and image (the engine's work dir checks both; here only the size is checked).
    """

    def __init__(self, net: nn.Module, workdir: str | Path, *, device: str | torch.device = "cpu",
                 band_tokens: int = DEFAULT_BAND_TOKENS, name: str = "model",
                 pos_offset: tuple[float, float] = (0.0, 0.0)) -> None:
        self.net = check_streamable(net, name)
        self.backbone, self.head = self.net.backbone, self.net.head
        self.workdir = Path(workdir)
        self.device = torch.device(device)
        self.band_tokens = max(1, int(band_tokens))
        self.pos_offset = pos_offset
        self.taps = list(self.net.indices)
        self.dtype = self.backbone.patch_embed.proj.weight.dtype
        self.head_dtype = self.head.classifier.weight.dtype
        self.residual_dtype = compute_dtype(self.dtype) if self.backbone.residual_in_fp32 else self.dtype

    # ------------------------------------------------------------------ public
    def grid(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """Token grid (rows, cols) of an image of ``image_hw`` pixels."""
        return self.backbone.grid(*image_hw)

    def logits(self, read_rows: PixelRows, image_hw: tuple[int, int],
               progress: StepCallback | None = None) -> np.ndarray:
        """Class logits (K, grid rows, grid cols) on disk, equal to the head's pre-upsampling map."""
        was_training = self.net.training
        self.net.eval()
        self.workdir.mkdir(parents=True, exist_ok=True)
        grid_hw = self.grid(image_hw)
        bands = token_bands(grid_hw, max(1, self.band_tokens // grid_hw[1]))
        head_passes = 2 if isinstance(self.head.hidden, nn.Sequential) else 1
        steps = _Steps(len(bands) * (1 + 2 * (self.taps[-1] + 1) + len(self.taps) + head_passes), progress)
        try:
            with torch.inference_mode():
                done = self._stage(image_hw)
                finished_layers = range(max(done - 1, 0))
                skipped = min(done, 1) + sum(2 + int(i in self.taps) for i in finished_layers)
                steps.advance(len(bands) * skipped)  # also the first report: the total, before any band
                if done == 0:
                    self._embed(read_rows, image_hw, grid_hw, bands, steps)
                    self._mark(1, image_hw)
                for i, block in enumerate(self.backbone.layers[:self.taps[-1] + 1]):
                    if i in finished_layers:
                        continue
                    self._block(block, i, bands, steps)
                    if i in self.taps:
                        self._tap(i, bands, steps)
                    self._mark(i + 2, image_hw)
                    if i in self.taps[1:]:  # only now: a resumed tap re-reads the previous sum
                        self._drop(f"head_in_{self.taps.index(i) - 1}")
                # Every layer is done: only the last head input is read from here on (also by
                # a resume), so the residual streams, most of the disk, go before any output is.
                stale = [f"head_in_{j}" for j in range(len(self.taps) - 1)]
                for name in ("residual_0", "residual_1", *stale):
                    self._drop(name)
                return self._head(grid_hw, bands, steps)
        finally:
            self.net.train(was_training)

    # ------------------------------------------------------------------ disk arrays
    def _array(self, name: str, shape: tuple[int, ...] | None = None,
               dtype: torch.dtype | None = None) -> RowArray:
        """Create (with ``shape``) or reopen the on-disk array ``name`` in the work dir."""
        np_dtype = None if dtype is None else torch.empty(0, dtype=dtype).numpy().dtype
        return RowArray(self.workdir / f"{name}.npy", shape, np_dtype)

    def _drop(self, name: str) -> None:
        (self.workdir / f"{name}.npy").unlink(missing_ok=True)

    def _residual(self, layer: int, create: bool = False, length: int = 0) -> RowArray:
        """The residual stream entering block ``layer`` (two files, used in turn)."""
        name = f"residual_{layer % 2}"
        return (self._array(name, (length, self.backbone.embed_dim), self.residual_dtype) if create
                else self._array(name))

    def _stage(self, image_hw: tuple[int, int]) -> int:
        """Stages an earlier call finished for this image size: 0 none, 1 embedded, i + 2 block i."""
        state = self.workdir / "stream.json"
        if not state.exists():
            return 0
        stored = json.loads(state.read_text())
        return int(stored["stages_done"]) if stored.get("image_hw") == list(image_hw) else 0

    def _mark(self, stages_done: int, image_hw: tuple[int, int]) -> None:
        state = self.workdir / "stream.json"
        tmp = state.with_name(state.name + ".partial")
        tmp.write_text(json.dumps({"stages_done": stages_done, "image_hw": list(image_hw)}))
        os.replace(tmp, state)

    def _load(self, arr: RowArray, start: int, stop: int) -> torch.Tensor:
        return torch.from_numpy(arr[start:stop]).to(self.device)

    # ------------------------------------------------------------------ embedding
    def _embed(self, read_rows: PixelRows, image_hw: tuple[int, int], grid_hw: tuple[int, int],
               bands: list[tuple[int, int]], steps: _Steps) -> None:
        """Patch tokens + sincos positions of every band into the first residual stream."""
        pe = self.backbone.patch_embed
        stride, patch, gw = pe.stride, pe.patch_size, grid_hw[1]
        residual = self._residual(0, create=True, length=grid_hw[0] * gw)
        for r0, r1 in bands:
            y0, y1 = r0 * stride, (r1 - 1) * stride + patch
            pixels = read_rows(y0, min(y1, image_hw[0])).to(self.device, self.dtype)
            pixels = F.pad(pixels[None], (0, (gw - 1) * stride + patch - image_hw[1],
                                          0, y1 - min(y1, image_hw[0])))
            tokens = pe.proj(pixels).flatten(2).transpose(1, 2)[0]  # (band tokens, D)
            offset = (self.pos_offset[0] + r0, self.pos_offset[1])
            if self.backbone.pos_embed_mode == "sincos":
                tokens = tokens + sincos_2d((r1 - r0, gw), self.backbone.embed_dim, offset,
                                            self.backbone.sincos_temperature, tokens.dtype, tokens.device)
            residual[r0 * gw:r1 * gw] = tokens.to(self.residual_dtype).cpu().numpy()
            steps.advance()
        residual.flush()

    # ------------------------------------------------------------------ one block
    def _block(self, block: VimBlock, layer: int, bands: list[tuple[int, int]], steps: _Steps) -> None:
        """residual_{layer+1} = residual_layer + mixer(norm(residual_layer)), in two band passes."""
        mixer = block.mixer
        residual_in = self._residual(layer)
        gw = residual_in.shape[0] // bands[-1][1]
        forward = self._array("forward_out", (residual_in.shape[0], mixer.d_inner),
                              mixer.in_proj.weight.dtype)
        carry: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        for r0, r1 in bands:  # pass 1: the forward direction, top to bottom
            x, _z = _in_proj(block, self._load(residual_in, r0 * gw, r1 * gw))
            y, carry = _direction_scan(mixer, x, carry, reverse=False)
            forward[r0 * gw:r1 * gw] = y[0].T.cpu().numpy()
            steps.advance()
        residual_out = self._residual(layer + 1, create=True, length=residual_in.shape[0])
        carry = (None, None)
        for r0, r1 in reversed(bands):  # pass 2: the backward direction, bottom to top
            res = self._load(residual_in, r0 * gw, r1 * gw)
            x, z = _in_proj(block, res)
            y_b, carry = _direction_scan(mixer, x, carry, reverse=True)
            y_f = self._load(forward, r0 * gw, r1 * gw).T[None]
            y = (y_f + y_b) * 0.5 * F.silu(z.to(y_b.dtype))
            if not mixer.divide_out:
                y = y * 2.0
            out = F.linear(y.transpose(1, 2), mixer.out_proj.weight.to(y.dtype))[0]
            residual_out[r0 * gw:r1 * gw] = (res + out.to(res.dtype)).cpu().numpy()
            steps.advance()
        residual_out.flush()
        del forward
        self._drop("forward_out")

    # ------------------------------------------------------------------ head
    def _first_head_conv(self) -> nn.Conv2d:
        """The head's first 1×1 conv (hidden layer, or the classifier without one): linear in taps."""
        return self.head.hidden[0] if isinstance(self.head.hidden, nn.Sequential) else self.head.classifier

    def _tap(self, layer: int, bands: list[tuple[int, int]], steps: _Steps) -> None:
        """Add tapped block ``layer``'s share of the head's first conv to the head input map.

        The conv over the concatenated taps is a sum over taps, so each tap is added when its
        block finishes; each sum goes to a new file so that a resumed run never adds twice.
        """
        conv = self._first_head_conv()
        j = self.taps.index(layer)
        dim = self.backbone.embed_dim
        weight = conv.weight[:, j * dim:(j + 1) * dim, 0, 0]
        residual = self._residual(layer + 1)
        gw = residual.shape[0] // bands[-1][1]
        previous = self._array(f"head_in_{j - 1}") if j else None
        head_in = self._array(f"head_in_{j}", (residual.shape[0], conv.out_channels), self.head_dtype)
        for r0, r1 in bands:
            feat = self._load(residual, r0 * gw, r1 * gw)
            if self.net.norm_features:
                feat = self.backbone.norm_f(feat, out_dtype=self.dtype)
            part = F.linear(feat.to(self.head_dtype), weight)
            if previous is not None:
                part = part + self._load(previous, r0 * gw, r1 * gw)
            elif conv.bias is not None:
                part = part + conv.bias
            head_in[r0 * gw:r1 * gw] = part.cpu().numpy()
            steps.advance()
        head_in.flush()

    def _head(self, grid_hw: tuple[int, int], bands: list[tuple[int, int]], steps: _Steps) -> np.ndarray:
        """Head input → (GroupNorm over the whole map → ReLU → classifier) → logits (K, gh, gw)."""
        head_in = self._array(f"head_in_{len(self.taps) - 1}")
        gw = grid_hw[1]
        hidden = self.head.hidden if isinstance(self.head.hidden, nn.Sequential) else None
        stats = _group_stats(head_in, hidden[1], bands, gw, steps) if hidden is not None else None
        # Written by row ranges like every other array (a memmap dies of SIGBUS on a full disk);
        # stored (gh, K, gw) so a band is contiguous, handed back as a read-only (K, gh, gw) view.
        logits = self._array("logits", (grid_hw[0], self.head.classifier.out_channels, gw),
                             self.head_dtype)
        for r0, r1 in bands:
            x = self._load(head_in, r0 * gw, r1 * gw)  # (tokens, C)
            if hidden is not None:
                x = _apply_group_norm(x, hidden[1], *stats)
                x = F.linear(F.relu(x), self.head.classifier.weight[:, :, 0, 0], self.head.classifier.bias)
            logits[r0:r1] = x.reshape(r1 - r0, gw, -1).transpose(1, 2).cpu().numpy()
            steps.advance()
        logits.flush()
        logits.close()
        return np.load(logits.path, mmap_mode="r").transpose(1, 0, 2)


class RowArray:
    """An (n, ...) array in a ``.npy`` file, read and written by ranges of whole rows.

    Not a memmap on purpose: pages touched through a memmap count as the process's resident
    memory until it is unmapped, so streaming a whole image through memmaps would look (and be
    accounted) as if the whole sequence were in RAM. Explicit ``pread``/``pwrite`` of contiguous
    row ranges leave caching to the kernel's page cache.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...] | None = None,
                 dtype: np.dtype | None = None) -> None:
        self.path, self._fd = Path(path), -1
        if shape is not None:  # a standard .npy header, then a sparse file of the data's size
            fmt = np.lib.format
            with open(self.path, "wb") as fh:
                fmt.write_array_header_2_0(fh, {"descr": fmt.dtype_to_descr(np.dtype(dtype)),
                                                "fortran_order": False, "shape": tuple(shape)})
                fh.truncate(fh.tell() + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            self.shape, _, self.dtype = read_header(fh)
            self.offset = fh.tell()
        self.row_shape = tuple(self.shape[1:])
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDWR)

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        data = os.pread(self._fd, (stop - start) * self.row_bytes, self.offset + start * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, *self.row_shape).copy()

    def __setitem__(self, rows: slice, value: np.ndarray) -> None:
        start, stop, _ = rows.indices(self.shape[0])
        data = np.ascontiguousarray(value, dtype=self.dtype)
        if data.shape != (stop - start, *self.row_shape):
            raise ValueError(f"rows {start}:{stop} of {self.path} need shape "
                             f"{(stop - start, *self.row_shape)}, got {data.shape}")
        view, offset = memoryview(data.reshape(-1).view(np.uint8)), self.offset + start * self.row_bytes
        while view:  # pwrite may write less than asked (a filling disk: ENOSPC comes on the next call)
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


class _Steps:
    """Counts band steps for a progress callback."""

    def __init__(self, total: int, callback: StepCallback | None) -> None:
        self.done, self.total, self.callback = 0, total, callback

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(min(self.done, self.total), self.total)


def _in_proj(block: VimBlock, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Band residual (tokens, D) → the mixer's x and z, (1, E, tokens) each, as in BiMambaMixer."""
    mixer = block.mixer
    hidden = block.norm(residual[None], out_dtype=mixer.in_proj.weight.dtype)
    xz = torch.matmul(mixer.in_proj.weight.to(hidden.dtype), hidden.transpose(1, 2))
    return xz[:, :mixer.d_inner], xz[:, mixer.d_inner:]


def _direction_scan(mixer: BiMambaMixer, x: torch.Tensor,
                    carry: tuple[torch.Tensor | None, torch.Tensor | None], *, reverse: bool,
                    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One direction's conv + SiLU, projections and scan (+ D·u) over a band, states carried."""
    conv, x_proj, dt_proj, a_log, d = (
        (mixer.conv1d_b, mixer.x_proj_b, mixer.dt_proj_b, mixer.A_b_log, mixer.D_b) if reverse
        else (mixer.conv1d, mixer.x_proj, mixer.dt_proj, mixer.A_log, mixer.D))
    cd = compute_dtype(x.dtype)
    u, conv_state = kernels.causal_conv1d(x, conv.weight, conv.bias, activation="silu",
                                          initial_state=carry[0], return_final_state=True,
                                          reverse=reverse)
    x_dbl = torch.matmul(x_proj.weight, u)
    r, n = mixer.dt_rank, mixer.d_state
    delta = torch.matmul(dt_proj.weight, x_dbl[:, :r])
    y, scan_state = kernels.selective_scan(
        u, delta, -torch.exp(a_log.to(cd)), x_dbl[:, r:r + n], x_dbl[:, r + n:], d.to(cd),
        delta_bias=dt_proj.bias.to(cd), delta_softplus=True, initial_state=carry[1],
        return_last_state=True, reverse=reverse)
    return y, (conv_state, scan_state)


def _group_stats(head_in: RowArray, norm: nn.GroupNorm, bands: list[tuple[int, int]], gw: int,
                 steps: _Steps) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group mean and variance over the whole map, merged from per-band (n, mean, M2).

    Chan's pairwise update keeps float64 precision however many bands there are (a running
    Σx² − (Σx)²/n would cancel catastrophically for large means).
    """
    groups = norm.num_groups
    count, mean, m2 = 0, torch.zeros(groups, dtype=torch.float64), torch.zeros(groups, dtype=torch.float64)
    for r0, r1 in bands:
        x = torch.from_numpy(head_in[r0 * gw:r1 * gw]).double()
        x = x.reshape(x.shape[0], groups, -1).transpose(0, 1).reshape(groups, -1)
        n_b, mean_b = x.shape[1], x.mean(dim=1)
        m2_b = (x - mean_b[:, None]).square().sum(dim=1)
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta.square() * (count * n_b / total)
        count = total
        steps.advance()
    return mean, m2 / count


def _apply_group_norm(x: torch.Tensor, norm: nn.GroupNorm, mean: torch.Tensor, var: torch.Tensor,
                      ) -> torch.Tensor:
    """(tokens, C) → GroupNorm with the given per-group statistics and the layer's affine."""
    per_group = x.shape[1] // norm.num_groups
    mean_c = mean.repeat_interleave(per_group).to(x.device)
    inv_c = torch.rsqrt(var + norm.eps).repeat_interleave(per_group).to(x.device)
    y = (x.double() - mean_c) * inv_c
    if norm.affine:
        y = y * norm.weight.double() + norm.bias.double()
    return y.to(x.dtype)


def upsample_window(logits: np.ndarray | torch.Tensor, window: Window, stride: int, patch: int,
                    ) -> torch.Tensor:
    """``upsample_to_image`` of a (K, gh, gw) token map, for one pixel window only.

    Bilinear ×stride upsampling reads at most the two nearest tokens per axis, so the window's
    token rows/cols plus a one-token margin give exactly the values upsampling the whole map
    would (same scale factor, same clamping at the map's true edges): blocks join seamlessly.
    """
    gh, gw = logits.shape[-2:]
    shift = (patch - stride) // 2
    rows = np.clip(np.arange(window.y, window.y + window.height) - shift, 0, gh * stride - 1)
    cols = np.clip(np.arange(window.x, window.x + window.width) - shift, 0, gw * stride - 1)
    t0, t1 = max(0, rows[0] // stride - 1), min(gh, math.ceil((rows[-1] + 1) / stride) + 1)
    c0, c1 = max(0, cols[0] // stride - 1), min(gw, math.ceil((cols[-1] + 1) / stride) + 1)
    crop = torch.as_tensor(np.array(logits[:, t0:t1, c0:c1]))[None]  # a copy: the map may be read-only
    up = F.interpolate(crop, size=((t1 - t0) * stride, (c1 - c0) * stride), mode="bilinear",
                       align_corners=False)[0]
    return up[:, torch.from_numpy(rows - t0 * stride)][:, :, torch.from_numpy(cols - c0 * stride)]
