"""The machine-learning side of a round, over a workspace: train, score, auto-correct.

Nothing here talks to Label Studio. A round's model scores every superpixel nobody has been
asked about with the configured acquisition (``ALC_METHOD``, e.g. ``abc+lcm``), and after the
round's answers the same model drives the auto-correctors (LCM, PLAR) before it is retrained.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from alc_backend import IGNORE_INDEX
from alc_backend.engine.acquisition import abc_class_weights, label_confidence, label_pixel_counts, score_superpixels
from alc_backend.engine.corrections import AutoCorrection, apply_corrections, record_changes, relabel_superpixels
from alc_backend.engine.lcm import AnsweredSuperpixels, propose_corrections
from alc_backend.engine.metrics import wilson_lower_bound
from alc_backend.engine.plar import held_out_votes, refine_labels
from alc_backend.engine.pool import dominant_classes, representative_pixels
from alc_backend.engine.segments import Segments
from alc_backend.service.settings import BackendSettings
from alc_backend.service.workspace import QueryRecord, Workspace
from alc_backend.simulation.correctors import majority_labels, pixel_features, superpixel_means
from alc_backend.simulation.methods import parse_method
from alc_backend.training.checkpoint import load_checkpoint, save_checkpoint
from alc_backend.training.device import pick_device
from alc_backend.training.inference import iter_probs, iter_probs_and_features
from alc_backend.training.model import ModelConfig, default_encoder
from alc_backend.training.trainer import TrainConfig, train_model


@dataclass(frozen=True)
class Candidate:
    """One superpixel chosen for a correction query, in rank order.

    ``row``/``col``: the representative pixel; ``proposed``: the current label there (shown
    pre-selected); ``label_before``: the superpixel's majority label; ``score``: acquisition score.
    """

    image_task: int
    superpixel: int
    row: int
    col: int
    proposed: int
    label_before: int
    score: float


class WorkspaceImages:
    """The usable image tasks of a workspace as training samples ``(image, labels)``."""

    def __init__(self, workspace: Workspace, tasks: Sequence[int]) -> None:
        self.workspace = workspace
        self.tasks = tuple(tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        task = self.tasks[index]
        return self.workspace.image(task), self.workspace.labels(task)


def train_round_model(
    workspace: Workspace, tasks: Sequence[int], num_classes: int, settings: BackendSettings, round_index: int
) -> torch.nn.Module:
    """Train a model on the current labels of ``tasks`` and save it as the workspace's checkpoint."""
    device = pick_device(settings.device)
    model_config = ModelConfig(
        num_classes=num_classes,
        encoder=settings.encoder or default_encoder(device),
        encoder_weights_path=settings.encoder_weights,
    )
    train_config = TrainConfig(
        image_size=settings.image_size,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed + round_index,
    )
    model = train_model(WorkspaceImages(workspace, tasks), model_config, train_config, device, progress=False)
    save_checkpoint(workspace.checkpoint_path, model, model_config, {"round": str(round_index)})
    return model


def load_round_model(workspace: Workspace, settings: BackendSettings) -> torch.nn.Module | None:
    """The workspace's latest model, or None when none was trained yet."""
    if not workspace.checkpoint_path.is_file():
        return None
    model, _, _ = load_checkpoint(workspace.checkpoint_path, pick_device(settings.device))
    return model


def iter_task_probs(
    workspace: Workspace, model: torch.nn.Module, tasks: Sequence[int], settings: BackendSettings
) -> Iterator[tuple[int, np.ndarray]]:
    """``(task, (C, H, W) probabilities)`` for ``tasks``, one image at a time."""
    images = ((task, workspace.image(task)) for task in tasks)
    yield from iter_probs(model, images, settings.image_size, pick_device(settings.device))


def choose_queries(
    workspace: Workspace,
    model: torch.nn.Module,
    tasks: Sequence[int],
    asked: Mapping[int, set[int]],
    num_classes: int,
    settings: BackendSettings,
    round_index: int,
) -> tuple[list[Candidate], dict[int, float]]:
    """Score every superpixel not yet asked about; return the top ``queries_per_round`` and image scores.

    The image scores are the mean model probability of each image's current labels (pixels
    with a label only), in [0, 1]: the lower, the more the image needs a look.
    """
    acquisition = parse_method(settings.method).acquisition
    rng = np.random.default_rng([settings.seed, round_index])
    class_weights = _abc_weights(workspace, tasks, asked, num_classes) if acquisition == "abc" else None
    needs_prior = acquisition in ("pixbal", "classbal")
    prior, counts = _class_statistics(workspace, model, tasks, settings, num_classes) if needs_prior else (None, None)
    pool: list[Candidate] = []
    image_scores: dict[int, float] = {}
    for task, probs in iter_task_probs(workspace, model, tasks, settings):
        labels = workspace.labels(task)
        superpixels = workspace.superpixels(task)
        representatives = representative_pixels(probs, superpixels)
        scores = score_superpixels(
            acquisition,
            probs,
            labels,
            superpixels,
            rng=rng,
            representatives=representatives,
            class_counts=counts,
            class_weights=class_weights,
            class_prior=prior,
        )
        labelled = labels != IGNORE_INDEX
        confidence = label_confidence(probs, labels)
        image_scores[task] = float(confidence[labelled].mean()) if labelled.any() else 0.0
        majority = majority_labels(labels, Segments.from_map(superpixels))
        done = asked.get(task, set())
        for superpixel in range(len(scores)):
            if superpixel in done:
                continue
            row, col = (int(v) for v in representatives[superpixel])
            pool.append(
                Candidate(
                    task,
                    superpixel,
                    row,
                    col,
                    int(labels[row, col]),
                    int(majority[superpixel]),
                    float(scores[superpixel]),
                )
            )
    pool.sort(key=lambda candidate: -candidate.score)
    return pool[: settings.queries_per_round], image_scores


def auto_correct(
    workspace: Workspace,
    model: torch.nn.Module,
    tasks: Sequence[int],
    round_answers: Sequence[tuple[QueryRecord, int]],
    asked: Mapping[int, set[int]],
    num_classes: int,
    settings: BackendSettings,
    round_index: int,
) -> list[AutoCorrection]:
    """Run the method's auto-correctors after a round; returns their corrections, in order.

    ``round_answers`` are this round's answered queries with the class given. Each corrector
    sees the labels as the previous one left them; answered superpixels are never touched.
    """
    records: list[AutoCorrection] = []
    for corrector in parse_method(settings.method).correctors:
        if corrector == "lcm":
            new = _lcm(workspace, model, tasks, round_answers, asked, num_classes, settings, round_index)
        else:
            new = _plar(workspace, model, tasks, asked, settings, round_index)
        records += new
        for task in {record.image for record in new}:
            image_records = [record for record in new if record.image == task]
            workspace.save_labels(int(task), apply_corrections(workspace.labels(int(task)), image_records))
    return records


def _lcm(
    workspace: Workspace,
    model: torch.nn.Module,
    tasks: Sequence[int],
    round_answers: Sequence[tuple[QueryRecord, int]],
    asked: Mapping[int, set[int]],
    num_classes: int,
    settings: BackendSettings,
    round_index: int,
) -> list[AutoCorrection]:
    """The Label Correction Module over all image tasks (see :mod:`alc_backend.engine.lcm`)."""
    if not round_answers:
        return []
    features: dict[int, np.ndarray] = {}
    model_classes: dict[int, np.ndarray] = {}
    current: dict[int, np.ndarray] = {}
    device = pick_device(settings.device)
    images = ((task, workspace.image(task)) for task in tasks)
    for task, probs, decoder in iter_probs_and_features(model, images, settings.image_size, device):
        superpixels = workspace.superpixels(task)
        segments = Segments.from_map(superpixels)
        features[task] = superpixel_means(pixel_features("both", probs, decoder), segments)
        model_classes[task] = dominant_classes(probs, superpixels)
        current[task] = majority_labels(workspace.labels(task), segments)
    usable = [(query, answer) for query, answer in round_answers if query.image_task in features]
    if not usable:
        return []
    answered = AnsweredSuperpixels(
        features=np.stack([features[q.image_task][q.superpixel] for q, _ in usable]),
        answers=np.array([answer for _, answer in usable], dtype=np.int64),
        labels=np.array([q.label_before for q, _ in usable], dtype=np.int64),
        model_classes=np.array([model_classes[q.image_task][q.superpixel] for q, _ in usable], dtype=np.int64),
    )
    candidates = [
        (task, superpixel)
        for task in features
        for superpixel in range(len(features[task]))
        if superpixel not in asked.get(task, set())
    ]
    if not candidates:
        return []
    proposal = propose_corrections(
        answered,
        np.stack([features[t][s] for t, s in candidates]),
        np.array([current[t][s] for t, s in candidates]),
        np.array([model_classes[t][s] for t, s in candidates]),
        num_classes,
        settings.lcm,
        seed=settings.seed * 1000 + round_index,
    )
    records: list[AutoCorrection] = []
    for task, chosen in proposal.relabels(candidates).items():
        records += relabel_superpixels(
            workspace.labels(task),
            workspace.superpixels(task),
            chosen,
            corrector="lcm",
            round_index=round_index,
            image=str(task),
        )
    return records


def _plar(
    workspace: Workspace,
    model: torch.nn.Module,
    tasks: Sequence[int],
    asked: Mapping[int, set[int]],
    settings: BackendSettings,
    round_index: int,
) -> list[AutoCorrection]:
    """PLAR on every image with answered superpixels, behind its held-out vote check."""
    config = settings.plar
    answered_tasks = [task for task in tasks if asked.get(task)]
    device = pick_device(settings.device)
    images = ((task, workspace.image(task)) for task in answered_tasks)
    records: list[AutoCorrection] = []
    decided = right = 0
    for task, probs, decoder in iter_probs_and_features(model, images, settings.image_size, device):
        labels = workspace.labels(task)
        superpixels = workspace.superpixels(task)
        verified = np.isin(superpixels, sorted(asked[task]))
        features = pixel_features("decoder", probs, decoder)
        votes = held_out_votes(features, probs, labels, np.where(verified, superpixels, -1), config)
        decided, right = decided + votes[0], right + votes[1]
        result = refine_labels(features, probs, labels, verified, config)
        records += record_changes(
            labels,
            result.labels,
            superpixels,
            label_confidence(probs, result.labels),
            corrector="plar",
            round_index=round_index,
            image=str(task),
        )
    bound = float(wilson_lower_bound(np.array(right / max(decided, 1)), np.array(decided), config.z))
    return records if bound >= config.min_precision else []


def _abc_weights(
    workspace: Workspace, tasks: Sequence[int], asked: Mapping[int, set[int]], num_classes: int
) -> np.ndarray:
    """``(C,)`` ABC weights from the label counts of superpixels nobody has been asked about."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for task in tasks:
        superpixels = workspace.superpixels(task)
        is_open = ~np.isin(superpixels, sorted(asked.get(task, set())))
        counts += label_pixel_counts(workspace.labels(task), num_classes, is_open)
    return abc_class_weights(counts, "present")


def _class_statistics(
    workspace: Workspace, model: torch.nn.Module, tasks: Sequence[int], settings: BackendSettings, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(C,)`` mean softmax (PixBal's prior) and ``(C,)`` superpixels per dominant class (classbal)."""
    total = np.zeros(num_classes)
    counts = np.zeros(num_classes, dtype=np.int64)
    pixels = 0
    for task, probs in iter_task_probs(workspace, model, tasks, settings):
        total += probs.reshape(num_classes, -1).sum(axis=1, dtype=np.float64)
        pixels += probs.shape[1] * probs.shape[2]
        counts += np.bincount(dominant_classes(probs, workspace.superpixels(task)), minlength=num_classes)
    return total / max(pixels, 1), counts
