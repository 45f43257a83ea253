"""The layer-streamed whole-image forward equals the in-memory single pass ``segmenter(image)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gigavim.errors import ModelError
from gigavim.io.base import Window
from gigavim.models.catalog import load_model
from gigavim.models.factory import build_segmenter
from gigavim.models.heads import upsample_to_image
from gigavim.models.segmenter import VimSegmenter
from gigavim.models.streaming import WholeImageStreamer, check_streamable, upsample_window

IMAGE_HW = (37, 29)  # patch 4 → a 10 × 8 token grid, with bottom/right padding


def _random_segmenter(patch: int = 4, stride: int = 4, hidden: int = 8, indices: list[int] | None = None,
                      norm_features: bool = True, pos_embed_mode: str = "sincos") -> VimSegmenter:
    """Depth 3, sincos, light head; every weight perturbed so no branch is an identity."""
    torch.manual_seed(0)
    head = {"kind": "light", "hidden": hidden, "indices": indices or [0, 2], "norm_features": norm_features}
    net = build_segmenter(backbone={"embed_dim": 16, "depth": 3, "patch_size": patch, "stride": stride,
                                    "img_size": 32, "cls_token": "none", "pos_embed_mode": pos_embed_mode,
                                    "d_state": 4},
                          num_classes=3, head=head).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net


def _streamed(net: VimSegmenter, image: torch.Tensor, workdir: Path, band_tokens: int,
              **kwargs) -> torch.Tensor:
    """Streamed logits upsampled to the image, (1, K, H, W)."""
    hw = tuple(image.shape[-2:])
    logits = WholeImageStreamer(net, workdir, band_tokens=band_tokens, **kwargs).logits(
        lambda y0, y1: image[0, :, y0:y1], hw)
    pe = net.backbone.patch_embed
    return upsample_to_image(torch.from_numpy(np.array(logits))[None], logits.shape[1:], hw,
                             pe.stride, pe.patch_size)


@pytest.mark.parametrize("band_tokens", [1, 8, 3 * 8, 4 * 8 + 5, 10**6],
                         ids=["1-token→1-row", "1-row", "3-rows", "4-rows", "single-band"])
def test_streamed_equals_single_pass_float64(tmp_path: Path, band_tokens: int) -> None:
    net = _random_segmenter()
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    with torch.no_grad():
        expected = net(image)
    got = _streamed(net, image, tmp_path, band_tokens)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("variant", [
    {"patch": 6, "stride": 4},  # overlapping patches: bands read extra pixel rows
    {"hidden": 0, "indices": [1]},  # no hidden layer: the classifier is the head's first conv
    {"norm_features": False, "indices": [2]},  # raw residual stream as the tapped feature
    {"pos_embed_mode": "none"},
])
def test_streamed_equals_single_pass_other_architectures(tmp_path: Path, variant: dict) -> None:
    net = _random_segmenter(**variant)
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    with torch.no_grad():
        expected = net(image)
    torch.testing.assert_close(_streamed(net, image, tmp_path, 17), expected, atol=1e-10, rtol=0)


def test_position_offset_matches_the_segmenter(tmp_path: Path) -> None:
    net = _random_segmenter()
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    with torch.no_grad():
        expected = net(image, pos_offset=(5.0, 7.0))
    got = _streamed(net, image, tmp_path, 16, pos_offset=(5.0, 7.0))
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def test_bundled_model_float32(tmp_path: Path) -> None:
    net = load_model("tissue").net.eval()
    torch.manual_seed(1)
    image = torch.randn(1, 3, 203, 150)  # 26 × 19 tokens at patch 8
    with torch.no_grad():
        expected = net(image)
    got = _streamed(net, image, tmp_path, 5 * 19)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_interrupted_run_resumes_from_the_last_finished_layer(tmp_path: Path) -> None:
    net = _random_segmenter()
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    with torch.no_grad():
        expected = net(image)
    reports: list[tuple[int, int]] = []

    def killed(done: int, total: int) -> None:
        reports.append((done, total))
        if done == total // 2:
            raise KeyboardInterrupt

    streamer = WholeImageStreamer(net, tmp_path, band_tokens=24)
    with pytest.raises(KeyboardInterrupt):
        streamer.logits(lambda y0, y1: image[0, :, y0:y1], IMAGE_HW, killed)
    reads: list[int] = []

    def read(y0: int, y1: int) -> torch.Tensor:
        reads.append(y0)
        return image[0, :, y0:y1]

    resumed: list[tuple[int, int]] = []
    logits = streamer.logits(read, IMAGE_HW, lambda d, t: resumed.append((d, t)))
    assert not reads  # the embedding was finished: pixels are not read again
    assert resumed[0][0] > 1  # finished layers are skipped, not recomputed
    got = upsample_to_image(torch.from_numpy(np.array(logits))[None], logits.shape[1:], IMAGE_HW, 4, 4)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize(("patch", "stride"), [(4, 4), (6, 4), (16, 8)])
def test_upsample_window_equals_whole_map_upsampling(patch: int, stride: int) -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 9, 7, dtype=torch.float64)
    hw = ((9 - 1) * stride + patch - 3, (7 - 1) * stride + patch - 1)
    full = upsample_to_image(logits[None], (9, 7), hw, stride, patch)[0]
    for win in (Window(0, 0, hw[0], hw[1]), Window(0, 0, 5, 3), Window(7, 5, 11, 13),
                Window(hw[0] - 6, hw[1] - 9, 6, 9), Window(stride, stride, 1, 1)):
        got = upsample_window(logits.numpy(), win, stride, patch)
        want = full[:, win.y:win.y + win.height, win.x:win.x + win.width]
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("arch", "reason"), [
    ({"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 16,
                   "cls_token": "middle", "pos_embed_mode": "sincos"}}, "class token"),
    ({"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 16,
                   "cls_token": "none", "pos_embed_mode": "learned"}}, "learned position table"),
    ({"backbone": {"embed_dim": 16, "depth": 4, "patch_size": 4, "stride": 4, "img_size": 16,
                   "cls_token": "none", "pos_embed_mode": "sincos"},
      "head": {"kind": "fpn", "channels": 16}}, "FPNHead"),
])
def test_unstreamable_models_are_refused_in_one_line(tmp_path: Path, arch: dict, reason: str) -> None:
    net = build_segmenter(num_classes=2, **arch)
    with pytest.raises(ModelError, match=reason) as err:
        WholeImageStreamer(net, tmp_path, name="mine")
    assert "\n" not in str(err.value) and "'mine'" in str(err.value)


def test_every_bundled_model_streams_or_is_refused_in_one_line() -> None:
    for name in ("tissue", "land-water"):
        check_streamable(load_model(name).net, name)
    # nuclei-he's FPN head (sharper nucleus boundaries) mixes neighbouring tokens: tile mode only
    with pytest.raises(ModelError, match="'nuclei-he' cannot run with whole-image context") as err:
        check_streamable(load_model("nuclei-he").net, "nuclei-he")
    assert "\n" not in str(err.value)


def test_a_work_dir_left_by_another_image_size_is_not_resumed(tmp_path: Path) -> None:
    net = _random_segmenter()
    _streamed(net, torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64), tmp_path, 24)
    other = torch.randn(1, 3, 21, 30, dtype=torch.float64)
    with torch.no_grad():
        expected = net(other)
    torch.testing.assert_close(_streamed(net, other, tmp_path, 24), expected, atol=1e-10, rtol=0)


def test_streamed_through_the_triton_kernels_equals_the_torch_single_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA path: Triton conv and scans with carried states (interpreted on CPU-only hosts)."""
    pytest.importorskip("triton")
    net = _random_segmenter().float()
    image = torch.randn(1, 3, 23, 21)
    with torch.no_grad():
        expected = net(image)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "triton")
    got = _streamed(net.to(device), image, tmp_path, 12, device=device)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_a_disk_that_fills_at_any_step_is_an_oserror_not_a_crash(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every array is written by ``pwrite``, so a full disk is an ENOSPC the engine reports in one
    line. (A memmap would instead die of SIGBUS when a sparse page cannot be allocated.)"""
    import errno
    import os

    from gigavim.models import streaming

    net = _random_segmenter()
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    real_pwrite, full_from, steps_done = os.pwrite, {"step": 10**9}, [0]

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if steps_done[0] >= full_from["step"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(streaming.os, "pwrite", pwrite)

    def progress(done: int, total: int) -> None:
        steps_done[0] = done

    streamer = WholeImageStreamer(net, tmp_path / "count", band_tokens=24)
    streamer.logits(lambda y0, y1: image[0, :, y0:y1], IMAGE_HW, progress)
    total = steps_done[0]
    for step in range(1, total):  # the disk is full from this step on: every later write fails
        full_from["step"], steps_done[0] = step, 0
        with pytest.raises(OSError) as err:
            WholeImageStreamer(net, tmp_path / f"full{step}", band_tokens=24).logits(
                lambda y0, y1: image[0, :, y0:y1], IMAGE_HW, progress)
        assert err.value.errno == errno.ENOSPC


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pwrite`` may write fewer bytes than asked (a disk filling up does: the bytes that fit,
    then ENOSPC on the next call); the rest must be written, not silently dropped."""
    import os

    from gigavim.models import streaming

    real_pwrite = os.pwrite
    monkeypatch.setattr(streaming.os, "pwrite", lambda fd, data, offset: real_pwrite(fd, data[:1000], offset))
    net = _random_segmenter()
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    with torch.no_grad():
        expected = net(image)
    torch.testing.assert_close(_streamed(net, image, tmp_path, 24), expected, atol=1e-10, rtol=0)


def test_once_streamed_only_the_head_input_stays_on_disk(tmp_path: Path) -> None:
    """The residual streams (the bulk of the disk use) are not needed once the last tapped layer
    is done: they go before the caller writes its outputs; a rerun (a resume that was killed
    while writing blocks) still gets the same logits from the head input, reading no pixel."""
    net = _random_segmenter()
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    first = np.array(WholeImageStreamer(net, tmp_path, band_tokens=24).logits(
        lambda y0, y1: image[0, :, y0:y1], IMAGE_HW))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head_in_1.npy", "logits.npy", "stream.json"]

    def no_read(y0: int, y1: int) -> torch.Tensor:
        raise AssertionError("pixels read again")

    again = WholeImageStreamer(net, tmp_path, band_tokens=24).logits(no_read, IMAGE_HW)
    np.testing.assert_array_equal(np.array(again), first)


def test_upsampling_the_read_only_logits_warns_nothing(tmp_path: Path) -> None:
    import warnings

    net = _random_segmenter()
    image = torch.randn(1, 3, *IMAGE_HW, dtype=torch.float64)
    logits = WholeImageStreamer(net, tmp_path).logits(lambda y0, y1: image[0, :, y0:y1], IMAGE_HW)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = upsample_window(logits, Window(0, 0, *IMAGE_HW), 4, 4)
    assert got.shape == (3, *IMAGE_HW)
