"""Teacher-Student-Friend training: its pieces on hand-made tensors, and a run that learns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from alc_backend.data.synthetic import make_synthetic
from alc_backend.rounds.images import Query, VerifiedTrainingImages, flat_runs
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import train_round_model
from alc_backend.simulation.state import LabelStore, SimulationImages, SuperpixelSource
from alc_backend.training.inference import predict_probs
from alc_backend.training.model import ModelConfig
from alc_backend.training.trainer import TrainConfig, TrainStep
from alc_backend.training.tsf import (
    TSFConfig,
    class_box,
    class_sampling_probabilities,
    copy_paste,
    cutmix,
    ema_update,
    teacher_pseudo_labels,
    train_tsf,
    tsf_losses,
    update_class_confidence,
)

CPU = torch.device("cpu")


def test_the_teacher_takes_the_moving_average_of_the_student_and_its_buffers() -> None:
    teacher = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    student = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        teacher[0].weight.fill_(2.0)
        student[0].weight.fill_(4.0)
        student[1].running_mean.fill_(7.0)
    ema_update(teacher, student, 0.75)
    assert float(teacher[0].weight.detach()) == 2.5  # 0.75 * 2 + 0.25 * 4
    assert float(teacher[1].running_mean) == 7.0


def test_the_teacher_overrides_the_current_label_only_where_it_is_sure() -> None:
    probs = torch.tensor([[0.8, 0.4, 0.7], [0.2, 0.6, 0.3]]).view(1, 2, 1, 3)
    labels = torch.tensor([[[1, 0, 1]]])
    assert teacher_pseudo_labels(probs, labels, 0.7).tolist() == [[[0, 0, 0]]]


def test_eq_1_to_3_on_two_pixels() -> None:
    """Pixel 0 verified as class 0; pixel 1 unverified, labelled 1, and the teacher says 1."""
    student = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).view(1, 2, 1, 2).requires_grad_()
    friend = torch.tensor([[math.log(3.0), 0.0], [0.0, 2.0]]).view(1, 2, 1, 2).requires_grad_()
    labels = torch.tensor([[[0, 1]]])
    verified = torch.tensor([[[True, False]]])
    losses = tsf_losses(student, friend, labels, verified, torch.tensor([[[1, 1]]]))
    assert float(losses.supervised.detach()) == pytest.approx(math.log(2.0) + math.log(4.0 / 3.0))
    assert float(losses.teacher.detach()) == pytest.approx(math.log(1.0 + math.e))  # student [1, 0] against class 1
    # the student learns the friend's class 1, the friend the student's class 0
    assert float(losses.cross.detach()) == pytest.approx(math.log(1.0 + math.e) + math.log(1.0 + math.e**2))
    losses.total().backward()
    assert student.grad is not None and friend.grad is not None


def test_a_batch_without_verified_pixels_has_no_supervised_term() -> None:
    logits = torch.zeros(1, 2, 1, 2, requires_grad=True)
    labels = torch.tensor([[[0, 1]]])
    losses = tsf_losses(logits, logits, labels, torch.zeros(1, 1, 2, dtype=torch.bool), labels)
    assert float(losses.supervised.detach()) == 0.0
    assert float(losses.teacher.detach()) == pytest.approx(math.log(2.0))


def test_classes_the_model_is_unsure_of_are_drawn_more_often() -> None:
    confidence = torch.tensor([0.9, 0.5, 0.1])
    probabilities = class_sampling_probabilities(confidence, torch.tensor([True, True, False]))
    low, high = math.exp(0.1), math.exp(0.5)
    assert probabilities.tolist() == pytest.approx([low / (low + high), high / (low + high), 0.0])
    with pytest.raises(ValueError, match=r"^no class to sample from$"):
        class_sampling_probabilities(confidence, torch.zeros(3, dtype=torch.bool))


def test_class_confidence_is_a_running_mean_over_verified_pixels() -> None:
    probs = torch.tensor([[0.4, 0.2, 0.9], [0.6, 0.8, 0.1]]).view(1, 2, 1, 3)
    labels = torch.tensor([[[1, 1, 0]]])
    verified = torch.tensor([[[True, True, False]]])
    updated = update_class_confidence(torch.tensor([0.3, 0.2]), probs, labels, verified, 0.5)
    assert updated.tolist() == pytest.approx([0.3, 0.45])  # class 1: 0.5 * 0.2 + 0.5 * mean(0.6, 0.8)


def test_copy_paste_brings_one_verified_class_of_the_next_sample() -> None:
    images = torch.stack([torch.zeros(3, 2, 3), torch.ones(3, 2, 3)])
    labels = torch.tensor([[[0, 0, 0], [0, 0, 0]], [[2, 2, 1], [1, 1, 1]]])
    verified = torch.tensor([[[False] * 3] * 2, [[True, False, False], [False, False, False]]])
    before = labels.clone()
    rng = np.random.default_rng(0)
    new_images, new_labels, new_verified = copy_paste(images, labels, verified, torch.full((3,), 0.5), 1.0, rng)
    # sample 1's only verified class is 2, at (0, 0); sample 0 has nothing verified to give back
    assert new_labels.tolist() == [[[2, 0, 0], [0, 0, 0]], labels[1].tolist()]
    assert new_verified[0].tolist() == [[True, False, False], [False, False, False]]
    assert new_images[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0] and float(new_images[0].sum()) == 3.0
    assert torch.equal(new_images[1], images[1]) and torch.equal(labels, before)  # the inputs stay


def test_cutmix_pastes_the_bounding_box_of_a_class_into_every_map() -> None:
    labels = torch.tensor([[[0] * 4] * 4, [[0, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]]])
    assert class_box(labels[1], 3) == (1, 3, 1, 3)
    confidence = torch.tensor([1.0, 1.0, 1.0, 0.0])
    images = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    pasted = []
    for seed in range(40):  # over {0, 3}, class 3 is drawn with probability e / (e + 1)
        mixed_images, mixed_labels = cutmix([images, labels], labels, confidence, 1.0, np.random.default_rng(seed))
        pasted.append(float(mixed_images[0].sum()) / 3)  # pixels of sample 1 (ones) in sample 0
        assert mixed_labels[0].tolist() == labels[1].tolist()  # outside class 3's box sample 1 is 0 like sample 0
        assert torch.equal(mixed_labels[1], labels[0]) and float(mixed_images[1].sum()) == 0  # all of sample 0
    assert set(pasted) == {4.0, 16.0}  # class 3's 2 x 2 box, or class 0's box: the whole image
    assert pasted.count(4.0) > pasted.count(16.0)


class NoisyHalves:
    """Left half class 0 (reddish), right half class 1 (bluish); a band of wrong labels nobody verified, anywhere."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(index)
        image = np.empty((32, 32, 3), np.int64)
        image[:, :16] = (200, 50, 40)
        image[:, 16:] = (40, 60, 200)
        image = np.clip(image + rng.integers(-25, 26, image.shape), 0, 255).astype(np.uint8)
        labels = np.zeros((32, 32), np.uint8)
        labels[:, 16:] = 1
        band = slice(int(rng.integers(0, 28)), None)
        band = slice(band.start, band.start + 4)
        verified = np.ones((32, 32), bool)
        verified[band] = False
        labels[band] = 1 - labels[band]  # the unverified rows carry flipped labels
        return image, labels, verified


@pytest.mark.slow
def test_tsf_learns_the_verified_classes_and_returns_the_teacher() -> None:
    steps: list[TrainStep] = []
    config = TrainConfig(image_size=32, epochs=12, batch_size=4, lr=0.05, seed=0)
    teacher = train_tsf(NoisyHalves(), ModelConfig(num_classes=2), config, TSFConfig(), CPU, False, steps.append)
    assert not teacher.training and not any(parameter.requires_grad for parameter in teacher.parameters())
    assert len(steps) == 12 * 2 and steps[-1].loss < steps[0].loss
    image, _, _ = NoisyHalves()[0]
    predicted = predict_probs(teacher, image, 32, CPU).argmax(axis=0)
    truth = np.zeros((32, 32), np.int64)
    truth[:, 16:] = 1
    assert (predicted == truth).mean() > 0.9


FAST_ROUND = RoundSettings(epochs=1, image_size=32, batch_size=2, encoder="resnet18", encoder_weights="none")


def simulated_round_images(folder: Path, num_images: int, seed: int) -> SimulationImages:
    """A round's images on a new synthetic set of 32 px images, labelled by its pseudo-labels, none answered."""
    dataset = make_synthetic(folder / "data", num_images, seed, size=32, val_fraction=0.0, progress=False)
    LabelStore.from_pseudo_labels(folder / "run" / "labels", dataset, dataset.train_names)
    source = SuperpixelSource(dataset, folder / "cache")
    return SimulationImages(dataset, source, dataset.train_names, folder / "run")


@pytest.mark.slow
def test_a_round_with_the_tsf_trainer_learns_from_the_answered_pixels_and_keeps_the_teacher(tmp_path: Path) -> None:
    images = simulated_round_images(tmp_path, 3, 2)
    keys = list(images.keys())
    name = keys[1]
    region = images.superpixels(name) == 0
    row, col = (int(v[0]) for v in region.nonzero())
    images.answer([(Query(name, 0, row, col, 1, 1, flat_runs(region)), (2,))], {})

    samples = VerifiedTrainingImages(images, keys)
    assert [bool(samples[index][2].any()) for index in range(3)] == [False, True, False]
    np.testing.assert_array_equal(samples[1][2], region)
    np.testing.assert_array_equal(samples[1][1], images.labels(name))

    fast = FAST_ROUND.replace(device="cpu")
    teacher = train_round_model(images, fast.replace(trainer="tsf"))
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
    supervised = train_round_model(images, fast)
    assert all(parameter.requires_grad for parameter in supervised.parameters())


@pytest.mark.slow
def test_before_any_answer_the_tsf_trainer_trains_supervised_on_the_current_labels(tmp_path: Path) -> None:
    images = simulated_round_images(tmp_path, 2, 3)
    fast = FAST_ROUND.replace(device="cpu")
    tsf = train_round_model(images, fast.replace(trainer="tsf")).state_dict()
    supervised = train_round_model(images, fast).state_dict()
    assert tsf.keys() == supervised.keys()
    assert all(torch.equal(tsf[name], supervised[name]) for name in tsf)
