"""The simulation benchmark: how many clicks does a method need to clean a data set?

For every seed, round 0 trains a model on the pseudo-labels. Then, for every method, each round
builds the diversified pool (one representative pixel per not-yet-asked superpixel), scores it
with the method's acquisition, asks the simulated annotator about the top ``budget``
superpixels, expands each answer over its superpixel, runs the method's auto-correctors (LCM,
PLAR) with the round's model, and retrains from the initial weights. Per round it records
clicks, correction-query cost in bits, Data mIoU (current labels vs ground truth on the
training images), Model mIoU (the round's model on ``val.txt`` images), the precision and
recall of the queries, and what the auto-correctors changed and how much of it is right.

Memory holds per-superpixel statistics only (LCM: one feature vector per superpixel): label
maps and verified pixels live as PNGs on disk, probability and feature maps are streamed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.atomic import write_text_atomically
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.engine.acquisition import (
    UniformOver,
    abc_class_weights,
    label_confidence,
    label_pixel_counts,
    score_superpixels,
)
from alc_backend.engine.corrections import AutoCorrection, apply_corrections, record_changes, relabel_superpixels
from alc_backend.engine.expansion import expand_label, expansion_region
from alc_backend.engine.lcm import AnsweredSuperpixels, propose_corrections
from alc_backend.engine.metrics import (
    QueryQuality,
    confusion_matrix,
    correction_query_bits,
    mean_iou,
    wilson_lower_bound,
)
from alc_backend.engine.oracle import ORACLE_MODES, answers_would_change, faithful_answer, reference_answer
from alc_backend.engine.plar import held_out_votes, refine_labels
from alc_backend.engine.pool import dominant_classes, representative_pixels
from alc_backend.engine.segments import Segments
from alc_backend.engine.superpixels import SUPERPIXEL_ALGORITHMS
from alc_backend.simulation.correctors import (
    WAS_WRONG,
    AutoCorrectionConfig,
    CorrectorStats,
    VerifiedStore,
    error_decoder_input,
    majority_labels,
    mark_verified,
    pixel_features,
    superpixel_means,
)
from alc_backend.simulation.methods import MethodSpec, parse_method
from alc_backend.simulation.plots import plot_curves
from alc_backend.simulation.state import LabelStore, StoredLabelledImages, SuperpixelSource
from alc_backend.training.checkpoint import save_checkpoint
from alc_backend.training.device import pick_device
from alc_backend.training.error_decoder import ErrorDecoderConfig, predict_error_probability, train_error_decoder
from alc_backend.training.inference import iter_probs, iter_probs_and_features, predict_probs
from alc_backend.training.model import ModelConfig, default_encoder
from alc_backend.training.trainer import TrainConfig, train_model


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a simulation run depends on besides the data set.

    ``budget`` is the number of correction queries per round; ``eps`` the expansion threshold
    of eq. 12; ``image_size`` the training/inference side in px; ``superpixels`` and
    ``num_superpixels`` are used only when the data set ships no ``superpixels/``.
    ``encoder = None`` picks :func:`~alc_backend.training.model.default_encoder` for the device.
    """

    methods: tuple[str, ...]
    rounds: int = 5
    budget: int = 100
    seeds: tuple[int, ...] = (0,)
    oracle: str = "faithful"
    eps: float = 0.0
    device: str | None = None
    encoder: str | None = None
    encoder_weights: str | None = None
    image_size: int = 64
    epochs: int = 20
    batch_size: int = 8
    lr: float = 0.03
    superpixels: str = "slic"
    num_superpixels: int = 40
    abc_uniform: UniformOver = "present"
    pixbal_nu: float = 12.0
    auto: AutoCorrectionConfig = dataclasses.field(default_factory=AutoCorrectionConfig)

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("name at least one method")
        for method in self.methods:
            parse_method(method)
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("a method is named twice")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.budget < 1:
            raise ValueError(f"budget must be >= 1, got {self.budget}")
        if not self.seeds:
            raise ValueError("name at least one seed")
        if self.oracle not in ORACLE_MODES:
            raise ValueError(f"unknown oracle {self.oracle!r}; choose from {', '.join(ORACLE_MODES)}")
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {self.eps}")
        if self.superpixels not in SUPERPIXEL_ALGORITHMS:
            raise ValueError(f"unknown superpixel algorithm {self.superpixels!r}")
        if self.abc_uniform not in ("present", "all"):
            raise ValueError(f"abc_uniform must be 'present' or 'all', got {self.abc_uniform!r}")
        if self.pixbal_nu < 0:
            raise ValueError(f"pixbal_nu must be >= 0, got {self.pixbal_nu}")


@dataclass(frozen=True)
class RoundResult:
    """One row of ``results.json``: cumulative clicks and bits, mIoU in percent, None where n/a.

    ``auto_*`` count this round's automatic corrections (all correctors together) and the share
    of their pixels that now match the ground truth; ``auto`` breaks them down per corrector.
    """

    round: int
    clicks: int
    cost_bits: float
    data_miou: float
    model_miou: float | None
    precision: float | None
    recall: float | None
    auto_corrected_pixels: int | None
    auto_corrected_superpixels: int | None
    auto_precision: float | None
    auto: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Pool:
    """The scored diversified pool of one round; one entry per superpixel not yet asked about.

    All arrays are ``(N,)``: image index into the training names, superpixel id in the image,
    acquisition score, representative pixel row/col, and whether the simulated annotator's
    answer would change the label.
    """

    image_index: np.ndarray
    superpixel_id: np.ndarray
    score: np.ndarray
    row: np.ndarray
    col: np.ndarray
    would_change: np.ndarray

    def top(self, budget: int) -> np.ndarray:
        """Indices of the ``budget`` highest scores; ties go to the earlier entry."""
        return np.argsort(-self.score, kind="stable")[:budget]


class Simulation:
    """Runs :class:`SimulationConfig` on a data set, writing ``OUT/results.json`` and ``OUT/curves.png``."""

    def __init__(
        self, dataset: SegmentationDataset, config: SimulationConfig, out: Path, progress: bool = True
    ) -> None:
        if not dataset.has_pseudo:
            raise ValueError(f"the simulation starts from pseudo-labels, but {dataset.root / 'pseudo'} does not exist")
        if not dataset.train_names:
            raise ValueError("every image is listed in val.txt: nothing is left to correct")
        self.dataset = dataset
        self.config = config
        self.out = out
        self.progress = progress
        self.methods: tuple[MethodSpec, ...] = tuple(parse_method(m) for m in config.methods)
        self.device = pick_device(config.device)
        self.model_config = ModelConfig(
            num_classes=dataset.num_classes,
            encoder=config.encoder or default_encoder(self.device),
            encoder_weights_path=config.encoder_weights,
        )
        self.names = dataset.train_names
        self.work = out / "work"
        self.superpixels = SuperpixelSource(
            dataset, self.work / "superpixels", config.superpixels, config.num_superpixels
        )
        self.correctors: dict[str, Callable[[_RoundContext], tuple[list[AutoCorrection], CorrectorStats]]] = {
            "lcm": self._lcm,
            "plar": self._plar,
        }

    def run(self) -> dict[str, Any]:
        """Run every seed and method; returns the ``results.json`` content."""
        results: dict[str, Any] = {"dataset": str(self.dataset.root), "config": self._config_record(), "runs": []}
        steps = len(self.config.seeds) * (1 + len(self.methods) * self.config.rounds)
        with tqdm(total=steps, desc="simulate", unit="training", disable=not self.progress) as bar:
            pseudo = LabelStore.from_pseudo_labels(self.work / "pseudo", self.dataset, self.names)
            pseudo_miou = self._data_miou(pseudo)
            for seed in self.config.seeds:
                bar.set_postfix_str(f"seed {seed}: round 0 on pseudo-labels")
                first_model = self._train(pseudo, seed)
                bar.update()
                first = RoundResult(0, 0, 0.0, pseudo_miou, self._model_miou(first_model), None, None, None, None, None)
                for method in self.methods:
                    run = {"method": method.name, "seed": seed, "rounds": [dataclasses.asdict(first)]}
                    results["runs"].append(run)
                    for result in self._run_method(method, seed, pseudo, first_model, bar):
                        run["rounds"].append(dataclasses.asdict(result))
                        self._write(results)
                self._write(results)
        plot_curves(results, self.out / "curves.png")
        return results

    def _run_method(
        self, method: MethodSpec, seed: int, pseudo: LabelStore, model: torch.nn.Module, bar: tqdm
    ) -> Iterator[RoundResult]:
        folder = self.work / f"seed{seed}" / method.name
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(pseudo.folder, folder / "labels")
        store = LabelStore(folder / "labels")
        verified = VerifiedStore(folder / "verified")
        asked: dict[str, np.ndarray] = {}
        journal: list[AutoCorrection] = []
        clicks, bits = 0, 0.0
        for round_index in range(1, self.config.rounds + 1):
            bar.set_postfix_str(f"seed {seed}: {method.name} round {round_index}")
            rng = np.random.default_rng([seed, round_index])
            pool = self._score_pool(model, method, store, asked, rng)
            chosen = pool.top(self.config.budget)
            answers = self._ask(pool, chosen, store, verified, asked, model)
            corrected = sum(answer.changed for answer in answers)
            clicks += len(chosen)
            bits += correction_query_bits(len(chosen) - corrected, corrected, self.dataset.num_classes)
            quality = QueryQuality.from_counts(corrected, len(chosen), int(pool.would_change.sum()))
            stats = []
            context = _RoundContext(model, store, verified, asked, answers, round_index, seed)
            for corrector in method.correctors:
                records, corrector_stats = self.correctors[corrector](context)
                journal.extend(records)
                stats.append(corrector_stats)
            if method.correctors:
                _write_journal(folder / "auto_corrections.jsonl", journal)
            model = self._train(store, seed)
            save_checkpoint(folder / "model.safetensors", model, self.model_config, {"round": str(round_index)})
            bar.update()
            yield RoundResult(
                round=round_index,
                clicks=clicks,
                cost_bits=bits,
                data_miou=self._data_miou(store),
                model_miou=self._model_miou(model),
                precision=quality.precision,
                recall=quality.recall,
                **_auto_summary(stats) if method.correctors else _NO_AUTO,
            )

    def _score_pool(
        self,
        model: torch.nn.Module,
        method: MethodSpec,
        store: LabelStore,
        asked: dict[str, np.ndarray],
        rng: np.random.Generator,
    ) -> Pool:
        class_counts = self._dominant_class_counts(model) if method.acquisition == "classbal" else None
        class_weights = self._abc_weights(store, asked) if method.acquisition == "abc" else None
        class_prior = self._mean_probs(model) if method.acquisition == "pixbal" else None
        parts: list[tuple[np.ndarray, ...]] = []
        for image_index, (name, probs) in enumerate(self._probs(model, self.names)):
            superpixels = self.superpixels(name)
            labels = store.read(name)
            representatives = representative_pixels(probs, superpixels)
            scores = score_superpixels(
                method.acquisition,
                probs,
                labels,
                superpixels,
                eps=self.config.eps,
                rng=rng,
                representatives=representatives,
                class_counts=class_counts,
                class_weights=class_weights,
                class_prior=class_prior,
                nu=self.config.pixbal_nu,
            )
            change = answers_would_change(
                self.config.oracle, self.dataset.mask(name), labels, superpixels, representatives
            )  # type: ignore[arg-type]
            is_open = ~asked.setdefault(name, np.zeros(len(scores), dtype=bool))
            ids = np.flatnonzero(is_open)
            parts.append(
                (
                    np.full(ids.size, image_index),
                    ids,
                    scores[ids],
                    representatives[ids, 0],
                    representatives[ids, 1],
                    change[ids],
                )
            )
        return Pool(*(np.concatenate(column) for column in zip(*parts, strict=True)))

    def _ask(
        self,
        pool: Pool,
        chosen: np.ndarray,
        store: LabelStore,
        verified: VerifiedStore,
        asked: dict[str, np.ndarray],
        model: torch.nn.Module,
    ) -> list[_Answer]:
        """Answer the chosen queries, expand the answers and save the labels; returns the answers given."""
        answers = []
        needs_probs = self.config.oracle == "faithful" and self.config.eps > 0
        for image_index in np.unique(pool.image_index[chosen]):
            name = self.names[image_index]
            labels = store.read(name)
            state = verified.read(name, labels.shape)
            truth = self.dataset.mask(name)
            superpixels = self.superpixels(name)
            probs = (
                predict_probs(model, self.dataset.image(name), self.config.image_size, self.device)
                if needs_probs
                else None
            )
            for entry in chosen[pool.image_index[chosen] == image_index]:
                superpixel_id = int(pool.superpixel_id[entry])
                representative = (int(pool.row[entry]), int(pool.col[entry]))
                asked[name][superpixel_id] = True
                if self.config.oracle == "faithful":
                    answer: int | None = faithful_answer(truth, superpixels, superpixel_id, representative)
                    if answer == IGNORE_INDEX:
                        continue
                    changed = bool(answer != labels[representative])
                    region = expansion_region(probs, superpixels, superpixel_id, representative, self.config.eps)
                else:
                    answer = reference_answer(truth, labels, superpixels, superpixel_id)
                    if answer is None:
                        continue
                    changed = True
                    region = superpixels == superpixel_id
                mark_verified(state, labels, region, answer)
                label_before = int(np.bincount(labels[superpixels == superpixel_id]).argmax())
                labels = expand_label(labels, region, answer)
                answers.append(_Answer(name, superpixel_id, int(answer), changed, label_before))
            store.write(name, labels)
            if state.any():
                verified.write(name, state)
        return answers

    def _lcm(self, context: _RoundContext) -> tuple[list[AutoCorrection], CorrectorStats]:
        """The Label Correction Module over all training images (see :mod:`alc_backend.engine.lcm`)."""
        stats = CorrectorStats("lcm")
        if not context.answers:
            return [], stats
        kind = self.config.auto.lcm_features
        features: dict[str, np.ndarray] = {}
        model_classes: dict[str, np.ndarray] = {}
        current: dict[str, np.ndarray] = {}
        for name, probs, decoder in self._probs_and_features(context.model, self.names, kind != "softmax"):
            superpixels = self.superpixels(name)
            segments = Segments.from_map(superpixels)
            features[name] = superpixel_means(pixel_features(kind, probs, decoder), segments)
            model_classes[name] = dominant_classes(probs, superpixels)
            current[name] = majority_labels(context.store.read(name), segments)
        answered = AnsweredSuperpixels(
            features=np.stack([features[a.image][a.superpixel] for a in context.answers]),
            answers=np.array([a.answer for a in context.answers], dtype=np.int64),
            labels=np.array([a.label_before for a in context.answers], dtype=np.int64),
            model_classes=np.array([model_classes[a.image][a.superpixel] for a in context.answers], dtype=np.int64),
        )
        open_ids = {name: np.flatnonzero(~context.asked[name]) for name in self.names}
        candidates = [(name, int(i)) for name in self.names for i in open_ids[name]]
        if not candidates:
            return [], stats
        proposal = propose_corrections(
            answered,
            np.concatenate([features[name][open_ids[name]] for name in self.names]),
            np.concatenate([current[name][open_ids[name]] for name in self.names]),
            np.concatenate([model_classes[name][open_ids[name]] for name in self.names]),
            self.dataset.num_classes,
            self.config.auto.lcm,
            seed=context.seed * 1000 + context.round_index,
        )
        records: list[AutoCorrection] = []
        for name, chosen in proposal.relabels(candidates).items():
            records += relabel_superpixels(
                context.store.read(name),
                self.superpixels(name),
                chosen,
                corrector="lcm",
                round_index=context.round_index,
                image=name,
            )
        self._apply(records, context.store, stats)
        return records, stats

    def _plar(self, context: _RoundContext) -> tuple[list[AutoCorrection], CorrectorStats]:
        """PLAR on every image with verified pixels (see :mod:`alc_backend.engine.plar`).

        One pass decides every image and puts its answered superpixels to the held-out vote;
        the decisions are written only when the votes pass the check.
        """
        stats = CorrectorStats("plar")
        config = self.config.auto.plar
        kind = self.config.auto.plar_features
        names = tuple(context.verified.names())
        decoders = self._error_decoder(context, names) if self.config.auto.error_decoder else None
        records: list[AutoCorrection] = []
        decided = right = 0
        for name, probs, decoder in self._probs_and_features(context.model, names, kind != "softmax"):
            labels = context.store.read(name)
            superpixels = self.superpixels(name)
            verified = context.verified.read(name, labels.shape) > 0
            features = pixel_features(kind, probs, decoder)
            if config.min_precision > 0:
                votes = held_out_votes(features, probs, labels, np.where(verified, superpixels, -1), config)
                decided, right = decided + votes[0], right + votes[1]
            extra = None
            if decoders is not None:
                inputs = error_decoder_input(probs, decoder, labels)
                extra = predict_error_probability(decoders, inputs, self.device) >= 0.5
            result = refine_labels(features, probs, labels, verified, config, extra)
            confidence = label_confidence(probs, result.labels)
            records += record_changes(
                labels,
                result.labels,
                superpixels,
                confidence,
                corrector="plar",
                round_index=context.round_index,
                image=name,
            )
        if config.min_precision > 0:
            stats.notes.update(held_out_decided=decided, held_out_right=right)
            bound = float(wilson_lower_bound(np.array(right / max(decided, 1)), np.array(decided), config.z))
            if bound < config.min_precision:
                return [], stats
        self._apply(records, context.store, stats)
        return records, stats

    def _apply(self, records: list[AutoCorrection], store: LabelStore, stats: CorrectorStats) -> None:
        """Write ``records``, decided on the labels now in ``store``, and count them in ``stats``."""
        by_image: dict[str, list[AutoCorrection]] = {}
        for record in records:
            by_image.setdefault(record.image, []).append(record)
        for name, image_records in by_image.items():
            labels = apply_corrections(store.read(name), image_records)
            store.write(name, labels)
            stats.add(image_records, labels, self.dataset.mask(name))

    def _error_decoder(self, context: _RoundContext, names: tuple[str, ...]) -> torch.nn.Module | None:
        """An error-mask decoder trained on the verified pixels of ``names``; None when there are none."""
        inputs, targets = [], []
        for name, probs, decoder in self._probs_and_features(context.model, names, True):
            labels = context.store.read(name)
            state = context.verified.read(name, labels.shape)
            target = np.where(state == 0, IGNORE_INDEX, state == WAS_WRONG).astype(np.uint8)
            inputs.append(error_decoder_input(probs, decoder, labels))
            targets.append(target)
        if not inputs:
            return None
        config = ErrorDecoderConfig(seed=context.seed * 1000 + context.round_index)
        return train_error_decoder(inputs, targets, config, self.device)

    def _train(self, store: LabelStore, seed: int) -> torch.nn.Module:
        train_config = TrainConfig(
            image_size=self.config.image_size,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            lr=self.config.lr,
            seed=seed,
        )
        data = StoredLabelledImages(self.dataset, store, self.names)
        return train_model(data, self.model_config, train_config, self.device, progress=False)

    def _probs(self, model: torch.nn.Module, names: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, (C, H, W) probabilities)`` for ``names``, one image at a time."""
        images = ((name, self.dataset.image(name)) for name in names)
        return iter_probs(model, images, self.config.image_size, self.device)

    def _probs_and_features(
        self, model: torch.nn.Module, names: tuple[str, ...], with_decoder: bool
    ) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
        """``(name, probs (C, H, W), decoder features (F, H, W) or None)`` for ``names``, one at a time."""
        if not with_decoder:
            for name, probs in self._probs(model, names):
                yield name, probs, None
            return
        images = ((name, self.dataset.image(name)) for name in names)
        yield from iter_probs_and_features(model, images, self.config.image_size, self.device)

    def _abc_weights(self, store: LabelStore, asked: dict[str, np.ndarray]) -> np.ndarray:
        """``(C,)`` ABC weights from the label counts of the superpixels nobody has answered yet."""
        counts = np.zeros(self.dataset.num_classes, dtype=np.int64)
        for name in self.names:
            superpixels = self.superpixels(name)
            is_open = ~asked[name][superpixels] if name in asked else None
            counts += label_pixel_counts(store.read(name), self.dataset.num_classes, is_open)
        return abc_class_weights(counts, self.config.abc_uniform)

    def _mean_probs(self, model: torch.nn.Module) -> np.ndarray:
        """``(C,)`` mean softmax over every pixel of the training images (PixBal's class prior)."""
        total = np.zeros(self.dataset.num_classes)
        pixels = 0
        for _, probs in self._probs(model, self.names):
            total += probs.reshape(probs.shape[0], -1).sum(axis=1, dtype=np.float64)
            pixels += probs.shape[1] * probs.shape[2]
        return total / pixels

    def _dominant_class_counts(self, model: torch.nn.Module) -> np.ndarray:
        """``(C,)`` superpixels per dominant predicted class over the training images (for ``classbal``)."""
        counts = np.zeros(self.dataset.num_classes, dtype=np.int64)
        for name, probs in self._probs(model, self.names):
            counts += np.bincount(dominant_classes(probs, self.superpixels(name)), minlength=self.dataset.num_classes)
        return counts

    def _data_miou(self, store: LabelStore) -> float:
        confusion = sum(
            confusion_matrix(store.read(name), self.dataset.mask(name), self.dataset.num_classes) for name in self.names
        )
        return mean_iou(confusion)

    def _model_miou(self, model: torch.nn.Module) -> float | None:
        if not self.dataset.val_names:
            return None
        confusion = sum(
            confusion_matrix(probs.argmax(axis=0), self.dataset.mask(name), self.dataset.num_classes)
            for name, probs in self._probs(model, self.dataset.val_names)
        )
        return mean_iou(confusion)

    def _config_record(self) -> dict[str, Any]:
        record = dataclasses.asdict(self.config)
        record.update(
            device=str(self.device),
            encoder=self.model_config.encoder,
            num_classes=self.dataset.num_classes,
            num_train_images=len(self.names),
            num_val_images=len(self.dataset.val_names),
        )
        return record

    def _write(self, results: dict[str, Any]) -> None:
        write_text_atomically(self.out / "results.json", json.dumps(results, indent=2) + "\n")


@dataclass(frozen=True)
class _Answer:
    """One answered query: the image, the superpixel, the class given, whether it changed the
    representative's label, and the superpixel's majority label before the answer."""

    image: str
    superpixel: int
    answer: int
    changed: bool
    label_before: int


@dataclass(frozen=True)
class _RoundContext:
    """What an auto-corrector sees after a round's answers: the round's model (before retraining) and state."""

    model: torch.nn.Module
    store: LabelStore
    verified: VerifiedStore
    asked: dict[str, np.ndarray]
    answers: list[_Answer]
    round_index: int
    seed: int


_NO_AUTO: dict[str, Any] = {"auto_corrected_pixels": None, "auto_corrected_superpixels": None, "auto_precision": None}


def _auto_summary(stats: list[CorrectorStats]) -> dict[str, Any]:
    """The ``auto_*`` fields of a :class:`RoundResult` from each corrector's statistics."""
    scored = sum(item.scored_pixels for item in stats)
    return {
        "auto_corrected_pixels": sum(item.pixels for item in stats),
        "auto_corrected_superpixels": sum(item.superpixels for item in stats),
        "auto_precision": sum(item.right_pixels for item in stats) / scored if scored else None,
        "auto": {item.corrector: item.to_json() for item in stats},
    }


def _write_journal(path: Path, journal: list[AutoCorrection]) -> None:
    """All automatic corrections of a run so far, one JSON object per line."""
    write_text_atomically(path, "".join(json.dumps(record.to_json()) + "\n" for record in journal))
