"""SAM and MobileSAM models: architectures, checkpoint loading, the real mask generator on small images."""

from __future__ import annotations

import contextlib
from pathlib import Path

import mobile_sam
import numpy as np
import pytest
import segment_anything
import torch
from sam_checkpoints import TINY_MOBILE_SAM, TINY_VIT_SAM, save_random_sam

from alc_backend.preannotation.sam_models import SAM_ARCHITECTURES, SamCheckpointError, build_sam, load_sam
from alc_backend.preannotation.sam_superpixels import SamGeneratorSettings, SamSuperpixels
from alc_backend.preannotation.superpixel_sources import SuperpixelConfig, superpixel_maker

KEEP_EVERY_MASK = SamGeneratorSettings(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8: four flat colour blocks with a little noise."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), dtype=np.float64)
    image[: height // 2, : width // 2] = (200, 40, 40)
    image[: height // 2, width // 2 :] = (40, 200, 40)
    image[height // 2 :, : width // 2] = (40, 40, 200)
    image[height // 2 :, width // 2 :] = (220, 220, 60)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


@pytest.mark.parametrize("model_type", ["vit_b", "vit_l", "vit_h", "vit_t"])
def test_published_architectures_match_the_packages_own_builders(model_type: str) -> None:
    builders = mobile_sam.sam_model_registry if model_type == "vit_t" else segment_anything.sam_model_registry
    # TinyViT calls .item() while it is built, so it cannot be built on the meta device
    on_meta = torch.device("meta") if model_type != "vit_t" else contextlib.nullcontext()
    with on_meta:
        ours = build_sam(SAM_ARCHITECTURES[model_type]).state_dict()
        theirs = builders[model_type]().state_dict()
    assert shapes(ours) == shapes(theirs)


@pytest.mark.parametrize("architecture", [TINY_VIT_SAM, TINY_MOBILE_SAM], ids=["vit", "tiny_vit"])
def test_a_saved_checkpoint_loads_back_with_its_weights(tmp_path: Path, architecture) -> None:
    path = save_random_sam(tmp_path / "sam.pth", architecture, seed=3)
    saved = torch.load(path, weights_only=True)
    model = load_sam(path, architecture, "cpu")
    assert not model.training
    loaded = model.state_dict()
    assert set(loaded) == set(saved)
    for key in ("image_encoder.patch_embed.proj.weight", "mask_decoder.iou_prediction_head.layers.0.weight"):
        key = key if key in saved else next(k for k in saved if k.startswith("image_encoder.patch_embed"))
        torch.testing.assert_close(loaded[key], saved[key])


def test_a_checkpoint_wrapped_under_model_loads_too(tmp_path: Path) -> None:
    plain = save_random_sam(tmp_path / "plain.pth", TINY_VIT_SAM)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(plain, weights_only=True), "epoch": torch.tensor(3)}, wrapped)
    first, second = load_sam(plain, TINY_VIT_SAM), load_sam(wrapped, TINY_VIT_SAM)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value)


def test_a_checkpoint_of_another_architecture_is_refused_with_what_differs(tmp_path: Path) -> None:
    path = save_random_sam(tmp_path / "tiny.pth", TINY_VIT_SAM)
    with pytest.raises(SamCheckpointError) as caught:
        load_sam(path, "vit_b")
    message = str(caught.value)
    assert message.startswith(f"SAM checkpoint {path} does not fit vit_b: ")
    # vit_b has 12 blocks of 768 channels, the tiny model 2 of 32
    assert "tensors missing (first: image_encoder.blocks.10.attn.proj.bias)" in message
    assert (
        "tensors of another shape (first: image_encoder.blocks.0.attn.proj.bias: "
        "(32,) in the file, (768,) in the model)" in message
    )


def test_missing_unreadable_and_unknown_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(SamCheckpointError, match=rf"^SAM checkpoint {tmp_path / 'none.pth'} does not exist$"):
        load_sam(tmp_path / "none.pth", "vit_t")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(SamCheckpointError, match=rf"^SAM checkpoint {garbage} is not a readable PyTorch state dict: "):
        load_sam(garbage, "vit_t")
    not_tensors = tmp_path / "dict.pth"
    torch.save({"weights": [1, 2, 3]}, not_tensors)
    with pytest.raises(
        SamCheckpointError,
        match=rf"^SAM checkpoint {not_tensors} does not hold a state dict \(a mapping of names to tensors\)$",
    ):
        load_sam(not_tensors, "vit_t")
    with pytest.raises(
        SamCheckpointError, match=r"^unknown SAM model type 'vit_x'; choose from vit_b, vit_l, vit_h, vit_t$"
    ):
        load_sam(garbage, "vit_x")


def test_the_real_mask_generator_runs_on_a_tiny_vit_sam(tmp_path: Path) -> None:
    model = load_sam(save_random_sam(tmp_path / "sam.pth", TINY_VIT_SAM), TINY_VIT_SAM)
    generator = SamSuperpixels(model, KEEP_EVERY_MASK, num_superpixels=8)
    image = textured_image(48, 64)
    masks = generator.masks(image)
    assert masks.dtype == bool and masks.shape[1:] == (48, 64)
    assert masks.shape[0] >= 1  # with every quality filter off, the 16 prompts leave at least one mask
    superpixels = generator(image)
    assert superpixels.shape == (48, 64)
    assert set(np.unique(superpixels)) == set(range(superpixels.max() + 1))  # every pixel, ids 0..K-1
    np.testing.assert_array_equal(generator(image), superpixels)  # deterministic


def test_the_real_mask_generator_runs_on_a_tiny_mobile_sam(tmp_path: Path) -> None:
    model = load_sam(save_random_sam(tmp_path / "mobile_sam.pt", TINY_MOBILE_SAM), TINY_MOBILE_SAM)
    image = textured_image(40, 56)
    superpixels = SamSuperpixels(model, KEEP_EVERY_MASK, num_superpixels=6, min_area=20)(image)
    assert superpixels.shape == (40, 56)
    assert set(np.unique(superpixels)) == set(range(superpixels.max() + 1))
    assert np.bincount(superpixels.ravel()).min() >= 20


def test_bad_images_are_refused_before_the_model_runs(tmp_path: Path) -> None:
    generator = SamSuperpixels(load_sam(save_random_sam(tmp_path / "s.pth", TINY_VIT_SAM), TINY_VIT_SAM))
    with pytest.raises(ValueError, match=r"^image must be \(H, W, 3\) uint8, got shape \(8, 8\) dtype uint8$"):
        generator.masks(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"^image must be \(H, W, 3\) uint8, got shape \(8, 8, 3\) dtype float32$"):
        generator.masks(np.zeros((8, 8, 3), dtype=np.float32))


def test_generator_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^points_per_side must be >= 1, got 0$"):
        SamGeneratorSettings(points_per_side=0)
    with pytest.raises(ValueError, match=r"^pred_iou_thresh must be in \[0, 1\], got 1.5$"):
        SamGeneratorSettings(pred_iou_thresh=1.5)
    with pytest.raises(ValueError, match=r"^crop_n_layers must be >= 0, got -1$"):
        SamGeneratorSettings(crop_n_layers=-1)


def test_superpixel_configs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"^unknown superpixel source 'seeds'; choose from slic, felzenszwalb, sam, mobilesam$"
    ):
        SuperpixelConfig(source="seeds")
    with pytest.raises(
        ValueError,
        match=r"^superpixels from mobilesam need a checkpoint: set SAM_CHECKPOINT "
        r"\(get one with: alc-backend weights mobilesam --out mobile_sam.pt\)$",
    ):
        SuperpixelConfig(source="mobilesam")
    with pytest.raises(ValueError, match=r"^superpixels from sam need a checkpoint: set SAM_CHECKPOINT$"):
        SuperpixelConfig(source="sam")
    with pytest.raises(ValueError, match=rf"^SAM checkpoint {tmp_path / 'x.pth'} does not exist$"):
        SuperpixelConfig(source="sam", sam_checkpoint=tmp_path / "x.pth")
    (tmp_path / "x.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"^unknown SAM model type 'vit_s'; choose from vit_b, vit_l, vit_h, vit_t$"):
        SuperpixelConfig(source="sam", sam_checkpoint=tmp_path / "x.pth", sam_model_type="vit_s")
    assert SuperpixelConfig(source="sam", sam_checkpoint=tmp_path / "x.pth").model_type == "vit_b"
    assert SuperpixelConfig(source="mobilesam", sam_checkpoint=tmp_path / "x.pth").model_type == "vit_t"
    assert SuperpixelConfig(source="slic").model_type is None


def test_the_fingerprint_changes_with_every_setting_that_changes_superpixels(tmp_path: Path) -> None:
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(b"1")
    base = SuperpixelConfig(source="mobilesam", sam_checkpoint=checkpoint)
    variants = [
        SuperpixelConfig(source="mobilesam", sam_checkpoint=checkpoint, num_superpixels=41),
        SuperpixelConfig(source="mobilesam", sam_checkpoint=checkpoint, min_area=5),
        SuperpixelConfig(source="mobilesam", sam_checkpoint=checkpoint, sam=SamGeneratorSettings(points_per_side=8)),
        SuperpixelConfig(source="sam", sam_checkpoint=checkpoint, sam_model_type="vit_t"),
        SuperpixelConfig(source="slic"),
    ]
    assert len({base.fingerprint(), *(variant.fingerprint() for variant in variants)}) == 1 + len(variants)
    assert SuperpixelConfig(source="mobilesam", sam_checkpoint=checkpoint, device="cpu").fingerprint() == (
        base.fingerprint()
    )
    before = base.fingerprint()
    checkpoint.write_bytes(b"22")  # another checkpoint at the same path
    assert base.fingerprint() != before


def test_superpixel_maker_loads_a_published_architecture_once(tmp_path: Path) -> None:
    checkpoint = save_random_sam(tmp_path / "mobile_sam.pt", "vit_t")
    config = SuperpixelConfig(
        source="mobilesam", sam_checkpoint=checkpoint, num_superpixels=6, sam=SamGeneratorSettings(points_per_side=2)
    )
    first, second = superpixel_maker(config), superpixel_maker(config)
    assert first._generator.predictor.model is second._generator.predictor.model  # cached per checkpoint
    superpixels = first(textured_image(32, 48))
    assert superpixels.shape == (32, 48)
    assert set(np.unique(superpixels)) == set(range(superpixels.max() + 1))
