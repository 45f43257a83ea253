"""Training end to end on a tiny synthetic task: the loss falls, the bundle is self-contained
(load_model, segment and eval need nothing else), and --resume continues where it stopped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.io import imsave

from gigavim.errors import InputError, OutputError, UsageError
from gigavim.models.catalog import load_model
from gigavim.train import TrainConfig, train
from gigavim.train.loop import load_state, lr_factor

TINY_ARCH = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 32,
                          "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light"}}


def write_squares(folder: Path, name: str, seed: int, size: int = 96) -> tuple[str, str]:
    """Red squares (instance labels 1..N) on a noisy dark background, as PNG image + label."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 40.0)
    lab = np.zeros((size, size), np.uint16)
    for k in range(6):
        y, x = rng.integers(0, size - 14, 2)
        img[y : y + 12, x : x + 12] = (200, 60, 60)
        lab[y : y + 12, x : x + 12] = k + 1
    img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    imsave(folder / f"{name}.png", img, check_contrast=False)
    imsave(folder / f"{name}_label.png", lab, check_contrast=False)
    return str(folder / f"{name}.png"), str(folder / f"{name}_label.png")


def tiny_config(tmp_path: Path, **kw: object) -> TrainConfig:
    options = dict(pairs=[write_squares(tmp_path, "train", 0)], val_pairs=[write_squares(tmp_path, "val", 1)],
                   out=str(tmp_path / "model.pt"), name="squares", classes=["background", "square"],
                   arch=TINY_ARCH, patch=32, batch_size=4, steps=12, lr=5e-3, warmup_steps=2,
                   log_every=3, val_every=100, tile=96, overlap=0, image_mpp=1.0, mpp=1.0)
    options.update(kw)
    return TrainConfig(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainConfig]:
    tmp = tmp_path_factory.mktemp("train")
    cfg = tiny_config(tmp)
    train(cfg)
    return tmp, cfg


def test_loss_falls_and_bundle_is_self_contained(trained: tuple[Path, TrainConfig]) -> None:
    tmp, cfg = trained
    bundle = load_model(cfg.out)
    meta = bundle.meta
    assert meta.trained and meta.name == "squares" and meta.classes == ["background", "square"]
    assert meta.mpp == pytest.approx(1.0) and meta.bands == 3 and meta.tile == 96
    contract = meta.contract()  # recorded, not derived: PNG RGB tiles, 8-bit, 1/255
    assert not contract.derived and contract.bands == ["red", "green", "blue"] and contract.dtype == "uint8"
    assert meta.arch["backbone"]["pos_embed_mode"] == "sincos" and meta.arch["num_classes"] == 2
    state = load_state(tmp / "model.state.pt")
    logged = [h["loss"] for h in state["history"] if "loss" in h]
    assert len(logged) == 4 and logged[-1] < 0.8 * logged[0]
    val = meta.training["validation"]["scores"]
    assert val["per_class"][1]["support"] > 0 and val["pixel_accuracy"] is not None
    with torch.no_grad():
        out = bundle.net(bundle.normalize(np.zeros((1, 40, 40, 3), np.uint8)))
    assert out.shape == (1, 2, 40, 40)


def test_segment_runs_the_trained_bundle(trained: tuple[Path, TrainConfig]) -> None:
    import zarr

    from gigavim import segment

    tmp, cfg = trained
    out = tmp / "seg.zarr"
    segment(cfg.val_pairs[0][0], [out], model=cfg.out, level=0)  # a PNG records no µm/px
    labels = zarr.open_group(str(out), mode="r")["labels/segmentation/0"][:]
    assert labels.shape == (96, 96) and set(np.unique(labels)) <= {0, 1}


def test_resume_continues_from_the_saved_step(trained: tuple[Path, TrainConfig]) -> None:
    tmp, _ = trained
    more = tiny_config(tmp, steps=15, resume=str(tmp / "model.state.pt"), out=str(tmp / "more.pt"))
    bundle = train(more)
    assert bundle.meta.training["steps"] == 15
    state = load_state(tmp / "more.state.pt")
    steps = [h["step"] for h in state["history"] if "loss" in h]
    assert steps == [3, 6, 9, 12, 15]  # the first four entries came from the resumed run


def test_learning_rate_warms_up_then_decays() -> None:
    cfg = TrainConfig(pairs=[("a", "b")], out="x.pt", steps=100, warmup_steps=10, min_lr_ratio=0.0)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(55, cfg) == pytest.approx(0.5) and lr_factor(100, cfg) == pytest.approx(0.0)


def test_backbone_initialised_from_an_official_checkpoint(tmp_path: Path) -> None:
    """``init_backbone``: an official-layout checkpoint (middle class token, learned positions,
    1000-class head) seeds the backbone; the head and the dense layout are the model's own."""
    from gigavim.models.vim import VisionMamba

    official = VisionMamba(img_size=32, patch_size=4, stride=4, depth=1, embed_dim=16, num_classes=10,
                           cls_token="middle", pos_embed_mode="learned")
    ckpt = tmp_path / "vim_official.pth"
    torch.save({"model": official.state_dict()}, ckpt)
    cfg = tiny_config(tmp_path, init_backbone=str(ckpt), steps=1, lr=1e-12, weight_decay=0.0,
                      val_pairs=[], out=str(tmp_path / "init.pt"))
    train(cfg)
    backbone = load_model(cfg.out).net.backbone
    key = "layers.0.mixer.in_proj.weight"
    torch.testing.assert_close(backbone.state_dict()[key], official.state_dict()[key])
    assert load_model(cfg.out).meta.training["config"]["init_backbone"] == str(ckpt)


def test_fine_tuning_starts_from_a_bundles_weights(trained: tuple[Path, TrainConfig], tmp_path: Path) -> None:
    """``init_model``: every weight (backbone and head) and the architecture come from the bundle
    (a run with a different --arch still gets the bundle's); a class-count mismatch is one line."""
    _, cfg = trained
    start = load_model(cfg.out).net.state_dict()
    other_arch = {"backbone": {**TINY_ARCH["backbone"], "embed_dim": 8}, "head": {"kind": "light"}}
    tuned = tiny_config(tmp_path, init_model=cfg.out, arch=other_arch, steps=1, lr=1e-12, weight_decay=0.0,
                        val_pairs=[], out=str(tmp_path / "tuned.pt"))
    train(tuned)
    weights = load_model(tuned.out).net.state_dict()
    assert weights.keys() == start.keys()
    for key in start:
        torch.testing.assert_close(weights[key], start[key], rtol=1e-5, atol=1e-6)
    three = tiny_config(tmp_path, init_model=cfg.out, classes=["background", "square", "edge"],
                        label_mode="boundary", val_pairs=[], out=str(tmp_path / "three.pt"))
    with pytest.raises(UsageError, match=r"model\.pt: the model has 2 classes .* the run 3"):
        train(three)


def test_label_values_beyond_the_classes_are_one_clear_error(tmp_path: Path) -> None:
    """A "values" label of 3 for a 2-class model must name the file, not crash cross-entropy."""
    image, label = write_squares(tmp_path, "many", 0)  # instance ids 1..6 kept as values
    cfg = tiny_config(tmp_path, pairs=[(image, label)], val_pairs=[], label_mode="values", steps=1)
    with pytest.raises(UsageError, match=r"many_label\.png: label value 2 .*2 classes"):
        train(cfg)


def test_labels_with_no_labelled_pixel_are_one_clear_error(tmp_path: Path) -> None:
    """All-ignore labels would give NaN normalisation and a NaN loss; refuse them instead."""
    image, label = write_squares(tmp_path, "blank", 0)
    cfg = tiny_config(tmp_path, pairs=[(image, label)], val_pairs=[], label_mode="values",
                      value_map={v: 255 for v in range(7)}, steps=1)
    # refused when the label file is read, naming it (before any statistics or training)
    with pytest.raises(InputError, match=r"blank_label\.png: no labelled pixel falls on the image"):
        train(cfg)
    assert not (tmp_path / "model.pt").exists()
    # Labels only in the held-out right-hand strip leave the training part without any.
    imsave(tmp_path / "right.png", np.pad(np.full((96, 8), 255, np.uint8), ((0, 0), (88, 0))),
           check_contrast=False)
    cfg = tiny_config(tmp_path, pairs=[(image, str(tmp_path / "right.png"))], val_pairs=[],
                      label_mode="values", value_map={0: 255, 255: 1}, val_fraction=0.5, steps=1)
    with pytest.raises(UsageError, match=r"no labelled pixels outside the held-out 0\.5"):
        train(cfg)


@pytest.mark.parametrize("option", [{"label_mode": "instances"}, {"sampling": "balance"},
                                    {"device": "gpu"}, {"model_resolution": "nativ"}])
def test_unknown_option_values_are_usage_errors(tmp_path: Path, option: dict[str, str]) -> None:
    (name, value), = option.items()
    with pytest.raises(UsageError, match=f"{name}.*{value!r}"):
        tiny_config(tmp_path, **option)


@pytest.mark.parametrize("option", [{"val_every": 0}, {"log_every": 0}, {"batch_size": 0},
                                    {"patch": 0}, {"overlap": 96}])
def test_sizes_and_intervals_out_of_range_are_usage_errors(tmp_path: Path, option: dict[str, int]) -> None:
    """These were ZeroDivisionError / empty-stack tracebacks in the middle of training."""
    (name, value), = option.items()
    with pytest.raises(UsageError, match=f"{name} must be .*{value}"):
        tiny_config(tmp_path, **option)


def test_more_than_two_classes_read_labels_as_class_ids(tmp_path: Path) -> None:
    """Binary labels would fold classes 2.. into 1 and the model would never see them."""
    three = ["background", "tumour", "stroma"]
    assert tiny_config(tmp_path, classes=three).label_mode == "values"
    assert tiny_config(tmp_path).label_mode == "binary"
    with pytest.raises(UsageError, match="binary labels only give classes 0 and 1"):
        tiny_config(tmp_path, classes=three, label_mode="binary")


def test_a_single_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least two classes"):
        tiny_config(tmp_path, classes=["tissue"])


def test_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    """Patch sampling, augmentation and torch RNG all continue where the first run stopped."""
    whole = train(tiny_config(tmp_path, steps=4, val_pairs=[], out=str(tmp_path / "whole.pt")))
    train(tiny_config(tmp_path, steps=2, val_pairs=[], out=str(tmp_path / "half.pt")))
    resumed = train(tiny_config(tmp_path, steps=4, val_pairs=[], out=str(tmp_path / "resumed.pt"),
                                resume=str(tmp_path / "half.state.pt")))
    for (name, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_unwritable_output_fails_before_training(tmp_path: Path) -> None:
    """A missing output folder is reported at once, not as a traceback after all the steps."""
    cfg = tiny_config(tmp_path, out=str(tmp_path / "missing" / "model.pt"), steps=1)
    with pytest.raises(OutputError, match=r"missing.* does not exist"):
        train(cfg, progress=lambda e: pytest.fail(f"trained before checking the output: {e}"))
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(OutputError, match=r"folder\.pt: .*directory"):
        train(tiny_config(tmp_path, out=str(tmp_path / "folder.pt"), steps=1))


@pytest.mark.parametrize("dice_weight", [0.0, 0.5])
def test_a_batch_without_labelled_pixels_adds_no_loss_and_no_gradient(dice_weight: float) -> None:
    """Random patches can all fall in ignore areas (nodata collars, unlabelled regions); a NaN
    loss there would turn every weight into NaN at the next optimizer step."""
    from gigavim.train.loop import segmentation_loss

    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((2, 8, 8), 255), dice_weight)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == 0 and torch.equal(grad, torch.zeros_like(grad))
    # With labelled pixels it is still the mean cross-entropy over them.
    target = torch.full((2, 8, 8), 255)
    target[0, :4] = 1
    want = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(segmentation_loss(logits, target, 0.0), want)


def test_class_weights_give_torchs_weighted_mean_cross_entropy() -> None:
    """A heavier boundary class must weigh more in the loss (and change the gradient), the
    normalisation being torch's weighted mean; a batch with no labelled pixel still adds nothing."""
    from gigavim.train.loop import segmentation_loss

    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[1, :2] = 255
    weights = torch.tensor([1.0, 1.0, 3.0])
    want = torch.nn.functional.cross_entropy(logits, target, weight=weights, ignore_index=255)
    torch.testing.assert_close(segmentation_loss(logits, target, 0.0, weights), want)
    plain = segmentation_loss(logits, target, 0.0)
    assert not torch.allclose(segmentation_loss(logits, target, 0.0, weights), plain)
    empty = segmentation_loss(logits, torch.full((2, 8, 8), 255), 0.5, weights)
    (grad,) = torch.autograd.grad(empty, logits)
    assert empty.item() == 0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("weights", [[1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
def test_class_weights_must_be_one_non_negative_weight_per_class(tmp_path: Path,
                                                                  weights: list[float]) -> None:
    with pytest.raises(UsageError, match="class weights"):
        tiny_config(tmp_path, classes=["background", "a", "b"], label_mode="values", class_weights=weights)


def test_resume_restores_the_cuda_generators_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU, drop-path masks come from the CUDA generators: a resumed run must continue
    them, not restart them from the seed (torch.get_rng_state is the CPU generator only)."""
    from gigavim.train import loop

    states = [torch.arange(4, dtype=torch.uint8), torch.arange(4, 8, dtype=torch.uint8)]
    restored: list[list[torch.Tensor]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    bundle = loop.ModelBundle(net, loop.ModelMeta(name="m", classes=["a", "b"], colors=[], arch={}))
    rng, sampler_rng = np.random.default_rng(1), np.random.default_rng(2)
    loop.save_state(tmp_path / "s.pt", bundle, opt, sched, 3, tiny_config(tmp_path), [], rng, sampler_rng)
    loop.restore_rngs(loop.load_state(tmp_path / "s.pt"), np.random.default_rng(9), np.random.default_rng(9))
    assert len(restored) == 1 and all(torch.equal(a, b) for a, b in zip(restored[0], states, strict=True))


def test_resuming_with_more_steps_follows_the_longer_schedule_from_the_first_step(tmp_path: Path) -> None:
    """``--resume state --steps N`` extends a finished run: its first resumed step must use the
    new schedule's rate (it kept the old run's last, end-of-decay rate for one step)."""
    kw = dict(val_pairs=[], warmup_steps=1)
    whole = train(tiny_config(tmp_path, steps=4, out=str(tmp_path / "whole.pt"), **kw))
    train(tiny_config(tmp_path, steps=2, out=str(tmp_path / "half.pt"), **kw))
    resumed = train(tiny_config(tmp_path, steps=4, out=str(tmp_path / "resumed.pt"),
                                resume=str(tmp_path / "half.state.pt"), **kw))
    for (name, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_value_range_covers_every_image_not_only_the_first() -> None:
    """An 8-bit tile first and a 16-bit one after: scaling by 1/255 (and clipping augmented
    pixels at 255) would flatten the 16-bit image; the range is the data's over all images."""
    from gigavim.train.dataset import TrainImage
    from gigavim.train.loop import value_range

    labels = np.zeros((4, 4), np.uint8)
    eight = TrainImage(np.full((4, 4, 3), 200, np.uint8), labels, Path("a.png"))
    sixteen = TrainImage(np.full((4, 4, 3), 4000, np.uint16), labels, Path("b.png"))
    assert value_range([eight]) == 255.0
    assert value_range([eight, sixteen]) == 4000.0


def test_a_run_stopped_by_its_time_limit_says_so(tmp_path: Path) -> None:
    """The bundle's summary records the early stop (planned vs done steps and why), so a model
    trained on a busy machine is never mistaken for the full recipe's."""
    bundle = train(tiny_config(tmp_path, steps=1000, time_limit_s=0.5))
    summary = bundle.meta.training
    assert 0 < summary["steps"] < 1000 and summary["planned_steps"] == 1000
    assert summary["stopped_early"].startswith(f"time limit of {0.5 / 60:g} min reached after "
                                               f"{summary['steps']} of 1000 planned steps")
    assert load_model(tmp_path / "model.pt").meta.training["stopped_early"] == summary["stopped_early"]


def test_a_full_run_is_not_marked_as_stopped_early(trained: tuple[Path, TrainConfig]) -> None:
    _, cfg = trained
    assert load_model(cfg.out).meta.training["stopped_early"] is None


def test_a_gap_between_trained_and_held_out_columns_is_used_by_neither(tmp_path: Path) -> None:
    from gigavim.train.dataset import TrainImage, split_holdout

    image = TrainImage(np.zeros((8, 100, 3), np.uint8), np.zeros((8, 100), np.uint8), tmp_path / "a.tif")
    train_part, held_out = split_holdout([image], 0.25, gap=10)
    assert train_part[0].shape == (8, 65) and held_out[0].shape == (8, 25)
    with pytest.raises(UsageError, match="a gap of 80 columns leaves nothing to train on"):
        split_holdout([image], 0.25, gap=80)


def test_kept_checkpoints_are_the_bundles_of_their_steps(tmp_path: Path) -> None:
    """``keep_checkpoints``: each checkpoint's bundle stays as OUT-stepN.pt, to pick a stage later."""
    from gigavim.models.bundle import load_bundle_file

    final = train(tiny_config(tmp_path, steps=4, val_pairs=[], checkpoint_every=2, keep_checkpoints=True))
    kept = load_bundle_file(tmp_path / "model-step2.pt")
    assert kept.meta.training["steps"] == 2 and final.meta.training["steps"] == 4
    assert not (tmp_path / "model-step4.pt").exists()  # the last step is OUT itself
    assert any(not torch.equal(a, b) for a, b in zip(kept.net.state_dict().values(),
                                                      final.net.state_dict().values(), strict=True))
