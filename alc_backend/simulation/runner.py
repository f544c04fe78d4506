"""The simulation benchmark: how many clicks does a method need to clean a data set?

It runs the round core that the backend runs (:mod:`alc_backend.rounds`), with a simulated
annotator in place of Label Studio. For every seed, round 0 trains a model on the
pseudo-labels. Then, for every method, each round chooses its queries (correction queries from
the scored pool, and audits of the last round's automatic corrections), lets the simulated
annotator answer them, ends the round (audits settle, LCM and PLAR propose, trusted classes
are written) and trains the next model. Per round it records clicks (audits included), the
annotator's seconds by the cost model of the multi-class paper's user study (Table 3: a
correction query on a region of 1, 2, 3+ true classes takes 6.4, 8.0, 8.6 s), correction-query
cost in bits, Data mIoU (current labels vs ground truth on the training
images), Model mIoU (the round's model on ``val.txt`` images), the precision and recall of the
correction queries, and what each corrector wrote and held back and how much of it is right.

Memory holds per-superpixel statistics only: label maps and answered pixels live as PNGs on
disk, probability and feature maps are streamed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.atomic import write_text_atomically
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.engine.metrics import QueryQuality, confusion_matrix, correction_query_bits, mean_iou
from alc_backend.engine.multiclass import multiclass_oracle_answer
from alc_backend.engine.oracle import ORACLE_MODES, answers_would_change, faithful_answer, reference_answer
from alc_backend.engine.query_cost import PAPER_COST_MODEL, QueryKind, cumulative_seconds
from alc_backend.engine.superpixels import SUPERPIXEL_ALGORITHMS
from alc_backend.rounds.answers import Given, answer_of, localise_mixed_answers
from alc_backend.rounds.audits import Proposal
from alc_backend.rounds.corrections import RoundCorrections, correct_round
from alc_backend.rounds.images import Answer, Query
from alc_backend.rounds.methods import parse_method
from alc_backend.rounds.queries import QueryChoice, choose_queries
from alc_backend.rounds.settings import RoundSettings
from alc_backend.rounds.training import model_config, probabilities, train_round_model
from alc_backend.simulation.correctors import CorrectionScore
from alc_backend.simulation.plots import plot_curves
from alc_backend.simulation.state import LabelStore, SimulationImages, SuperpixelSource
from alc_backend.training.checkpoint import save_checkpoint
from alc_backend.training.device import pick_device
from alc_backend.training.encoder_weights import IMAGENET


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a simulation run depends on besides the data set.

    ``methods`` are compared with each of ``seeds`` over ``rounds`` rounds; ``round`` holds the
    settings every run shares (its ``method`` and ``seed`` are replaced by each run's).
    ``oracle`` is the simulated annotator of correction queries (audits are always answered
    faithfully); ``superpixels`` and ``num_superpixels`` are used when the data set ships no
    ``superpixels/``, or always with ``compute_superpixels`` (to measure the superpixels the
    backend serves rather than the data set's own).
    """

    methods: tuple[str, ...]
    rounds: int = 5
    seeds: tuple[int, ...] = (0,)
    oracle: str = "faithful"
    superpixels: str = "slic"
    num_superpixels: int = 40
    compute_superpixels: bool = False
    round: RoundSettings = dataclasses.field(default_factory=RoundSettings)

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("name at least one method")
        for method in self.methods:
            parse_method(method)
        if len({parse_method(method).name for method in self.methods}) != len(self.methods):
            raise ValueError("a method is named twice")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if not self.seeds:
            raise ValueError("name at least one seed")
        if self.oracle not in ORACLE_MODES:
            raise ValueError(f"unknown oracle {self.oracle!r}; choose from {', '.join(ORACLE_MODES)}")
        if self.superpixels not in SUPERPIXEL_ALGORITHMS:
            raise ValueError(f"unknown superpixel algorithm {self.superpixels!r}")

    def settings(self, method: str, seed: int) -> RoundSettings:
        """The round settings of the run of ``method`` with ``seed``."""
        return self.round.replace(method=parse_method(method).name, seed=seed)


@dataclass(frozen=True)
class RoundResult:
    """One row of ``results.json``: cumulative clicks, seconds and bits, mIoU in percent, None where n/a.

    ``seconds`` is the annotator time the cost model gives the queries asked so far (each
    query by the number of true classes in its region).

    ``precision``/``recall`` are those of the round's correction queries; ``audits`` counts the
    round's audit queries (included in ``clicks``). ``auto_*`` count the changes the correctors
    wrote this round (all together) and the share of their pixels that now hold the true
    class; ``auto`` gives, per corrector, the written and held-back changes scored against the
    ground truth and the corrector's own notes (audits, trusted classes, abstentions).
    ``mixed_answers`` counts the round's multi-class answers that ticked several classes, and
    ``localised_accuracy`` is the share of their regions' labelled pixels that localisation
    labelled with the true class. ``train_seconds`` is the wall-clock time the round's model
    took to train.
    """

    round: int
    clicks: int
    seconds: float
    cost_bits: float
    data_miou: float
    model_miou: float | None
    precision: float | None
    recall: float | None
    audits: int | None
    auto_corrected_pixels: int | None
    auto_corrected_superpixels: int | None
    auto_precision: float | None
    auto: dict[str, dict[str, Any]] | None = None
    mixed_answers: int = 0
    localised_accuracy: float | None = None
    train_seconds: float | None = None


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
        self.names = dataset.train_names
        self.work = out / "work"
        self.superpixels = SuperpixelSource(
            dataset, self.work / "superpixels", config.superpixels, config.num_superpixels, config.compute_superpixels
        )

    def run(self) -> dict[str, Any]:
        """Run every seed and method; returns the ``results.json`` content."""
        results: dict[str, Any] = {"dataset": str(self.dataset.root), "config": self._config_record(), "runs": []}
        methods = self.config.methods
        steps = len(self.config.seeds) * (1 + len(methods) * self.config.rounds)
        with tqdm(total=steps, desc="simulate", unit="training", disable=not self.progress) as bar:
            pseudo_folder = self.work / "pseudo"
            LabelStore.from_pseudo_labels(pseudo_folder / "labels", self.dataset, self.names)
            pseudo = SimulationImages(self.dataset, self.superpixels, self.names, pseudo_folder)
            pseudo_miou = self._data_miou(pseudo)
            for seed in self.config.seeds:
                bar.set_postfix_str(f"seed {seed}: round 0 on pseudo-labels")
                started = time.perf_counter()
                first_model = train_round_model(pseudo, self.config.settings(methods[0], seed))
                train_seconds = time.perf_counter() - started
                bar.update()
                model_miou = self._model_miou(first_model, self.config.settings(methods[0], seed))
                nothing = (None,) * 6
                first = RoundResult(0, 0, 0.0, 0.0, pseudo_miou, model_miou, *nothing, train_seconds=train_seconds)
                for method in methods:
                    run = {"method": parse_method(method).name, "seed": seed, "rounds": [dataclasses.asdict(first)]}
                    results["runs"].append(run)
                    settings = self.config.settings(method, seed)
                    for result in self._run_method(settings, pseudo_folder, first_model, bar):
                        run["rounds"].append(dataclasses.asdict(result))
                        self._write(results)
                self._write(results)
        plot_curves(results, self.out / "curves.png")
        plot_curves(results, self.out / "curves-seconds.png", x="seconds")
        return results

    def _run_method(
        self, settings: RoundSettings, pseudo_folder: Path, model: torch.nn.Module, bar: tqdm
    ) -> Iterator[RoundResult]:
        folder = self.work / f"seed{settings.seed}" / settings.method
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(pseudo_folder / "labels", folder / "labels")
        images = SimulationImages(self.dataset, self.superpixels, self.names, folder)
        answers: list[Answer] = []
        pending: list[Proposal] = []
        audits: list[Proposal] = []
        clicks, seconds, bits = 0, 0.0, 0.0
        for round_index in range(1, self.config.rounds + 1):
            bar.set_postfix_str(f"seed {settings.seed}: {settings.method} round {round_index}")
            choice = choose_queries(images, model, settings, round_index, audits)
            wrong_in_pool = self._wrong_in_pool(images, choice)
            given = self._ask(images, choice.queries)
            localised = localise_mixed_answers(images, model, settings, given)
            images.answer(given, localised)
            _append_queries(folder / "queries.jsonl", round_index, given)
            round_answers = [answer_of(query, classes, round_index) for query, classes in given if classes]
            answers += round_answers
            clicks += len(choice.queries)
            seconds += self._seconds(choice.queries)
            bits += self._bits(choice.queries, round_answers)
            num_corrections = sum(query.kind == "correction" for query in choice.queries)
            corrected = sum(
                self.config.oracle == "reference" or a.answer != a.query.proposed
                for a in round_answers
                if a.query.kind == "correction"
            )
            # an unlabelled representative answered from an expansion region smaller than its
            # superpixel may differ from the pool's view of it: never let the count exceed the pool's;
            # a round without correction queries (multi-class ones only) has neither precision nor recall
            in_pool = max(wrong_in_pool, corrected) if num_corrections else 0
            quality = QueryQuality.from_counts(corrected, num_corrections, in_pool)
            outcome = correct_round(images, model, answers, settings, round_index, pending, self.dataset.classes)
            pending, audits = outcome.proposals, outcome.audits
            started = time.perf_counter()
            model = train_round_model(images, settings)
            train_seconds = time.perf_counter() - started
            config = model_config(settings, self.dataset.num_classes)
            save_checkpoint(folder / "model.safetensors", model, config, {"round": str(round_index)})
            bar.update()
            yield RoundResult(
                round=round_index,
                clicks=clicks,
                seconds=seconds,
                cost_bits=bits,
                data_miou=self._data_miou(images),
                model_miou=self._model_miou(model, settings),
                precision=quality.precision,
                recall=quality.recall,
                audits=sum(query.kind == "audit" for query in choice.queries),
                **self._localisation_summary(given, localised),
                **(self._auto_summary(outcome) if settings.correctors else _NO_AUTO),
                train_seconds=train_seconds,
            )

    def _ask(self, images: SimulationImages, queries: list[Query]) -> list[Given]:
        """The simulated annotator's answers to ``queries``, in their order (``()``: no answer).

        A multi-class query is answered with every true class of its superpixel but those seen
        only along its boundary (:func:`multiclass_oracle_answer`); the other kinds with one class.
        """
        given: dict[int, tuple[int, ...]] = {}
        for key in dict.fromkeys(query.image for query in queries):
            truth = self.dataset.mask(key)
            labels = images.labels(key)
            superpixels = images.superpixels(key)
            for index, query in enumerate(queries):
                if query.image != key:
                    continue
                region = query.region_mask(labels.shape)
                answer: int | None
                if query.kind == "multiclass":
                    given[index] = multiclass_oracle_answer(truth, superpixels, query.superpixel)
                    continue
                if query.kind == "audit" or self.config.oracle == "faithful":
                    answer = faithful_answer(truth, region, (query.row, query.col))
                    answer = None if answer == IGNORE_INDEX else answer
                else:
                    answer = reference_answer(truth, labels, superpixels, query.superpixel)
                given[index] = () if answer is None else (answer,)
        return [(query, given[index]) for index, query in enumerate(queries)]

    def _localisation_summary(self, given: list[Given], localised: dict[int, np.ndarray]) -> dict[str, Any]:
        """The round's ``mixed_answers`` (multi-class answers that ticked several classes) and the share
        of their regions' labelled pixels that localisation got right (None without any)."""
        right, scored = 0, 0
        masks = self._masks([given[index][0] for index in localised])
        for index, labels in localised.items():
            query = given[index][0]
            truth = masks[query.image]
            region = query.region_mask(truth.shape) & (truth != IGNORE_INDEX)
            right += int((labels[region] == truth[region]).sum())
            scored += int(region.sum())
        return {"mixed_answers": len(localised), "localised_accuracy": right / scored if scored else None}

    def _bits(self, queries: list[Query], answers: list[Answer]) -> float:
        """The information-theoretic cost of a round's queries: Theorem 3.1's for correction queries and
        audits (1 bit per confirmation, ``log2 C`` per correction), ``C`` bits (one tick per class) per
        multi-class query."""
        num_classes = self.dataset.num_classes
        single = [answer for answer in answers if answer.query.kind != "multiclass"]
        changed = sum(answer.answer != answer.query.proposed for answer in single)
        confirmed = sum(query.kind != "multiclass" for query in queries) - changed
        multiclass = sum(query.kind == "multiclass" for query in queries)
        return correction_query_bits(confirmed, changed, num_classes) + multiclass * num_classes

    def _seconds(self, queries: list[Query]) -> float:
        """Annotator seconds of ``queries`` by the paper's cost model, each by the true classes in its region.

        Audits cost what a correction query costs; a region without a labelled pixel counts as one class.
        """
        costed: list[tuple[QueryKind, int]] = []
        masks = self._masks(queries)
        for query in queries:
            truth = masks[query.image]
            present = truth[query.region_mask(truth.shape)]
            count = max(int(np.unique(present[present != IGNORE_INDEX]).size), 1)
            costed.append(("multiclass" if query.kind == "multiclass" else "correction", count))
        return cumulative_seconds(costed, PAPER_COST_MODEL)

    def _masks(self, queries: list[Query]) -> dict[str, np.ndarray]:
        """The ground truth of each image ``queries`` ask about, read once per image."""
        return {key: self.dataset.mask(key) for key in dict.fromkeys(query.image for query in queries)}

    def _wrong_in_pool(self, images: SimulationImages, choice: QueryChoice) -> int:
        """How many open superpixels of the pool an answer would change (the recall's denominator)."""
        keys = list(images.keys())
        wrong = 0
        for image_index in np.unique(choice.pool.image):
            key = keys[int(image_index)]
            change = answers_would_change(
                self.config.oracle,  # type: ignore[arg-type]
                self.dataset.mask(key),
                images.labels(key),
                images.superpixels(key),
                choice.pool.representatives[key],
            )
            wrong += int(change[choice.pool.superpixel[choice.pool.image == image_index]].sum())
        return wrong

    def _auto_summary(self, outcome: RoundCorrections) -> dict[str, Any]:
        """The ``auto_*`` fields of a :class:`RoundResult`: written changes scored, per corrector with its notes."""
        total = CorrectionScore()
        auto: dict[str, dict[str, Any]] = {}
        for corrector, notes in outcome.notes.items():
            written = self._score([r for r in outcome.written if r.corrector == corrector])
            held_back = self._score([p.record for p in outcome.proposals if p.record.corrector == corrector])
            for name in ("pixels", "superpixels", "right_pixels", "scored_pixels"):
                setattr(total, name, getattr(total, name) + getattr(written, name))
            auto[corrector] = {
                "pixels": written.pixels,
                "superpixels": written.superpixels,
                "precision": written.precision,
                "held_back_superpixels": held_back.superpixels,
                "held_back_precision": held_back.precision,
                **notes,
            }
        return {
            "auto_corrected_pixels": total.pixels,
            "auto_corrected_superpixels": total.superpixels,
            "auto_precision": total.precision,
            "auto": auto,
        }

    def _score(self, records: list[AutoCorrection]) -> CorrectionScore:
        score = CorrectionScore()
        by_image: dict[str, list[AutoCorrection]] = {}
        for record in records:
            by_image.setdefault(record.image, []).append(record)
        for key, image_records in by_image.items():
            score.add(image_records, self.dataset.mask(key))
        return score

    def _data_miou(self, images: SimulationImages) -> float:
        num_classes = self.dataset.num_classes
        confusion = sum(
            confusion_matrix(images.labels(key), self.dataset.mask(key), num_classes) for key in images.keys()
        )
        return mean_iou(confusion)

    def _model_miou(self, model: torch.nn.Module, settings: RoundSettings) -> float | None:
        if not self.dataset.val_names:
            return None
        held_out = SimulationImages(self.dataset, self.superpixels, self.dataset.val_names, self.work / "val")
        confusion = sum(
            confusion_matrix(probs.argmax(axis=0), self.dataset.mask(key), self.dataset.num_classes)
            for key, probs in probabilities(held_out, model, self.dataset.val_names, settings)
        )
        return mean_iou(confusion)

    def _config_record(self) -> dict[str, Any]:
        record = dataclasses.asdict(self.config)
        round_record = self.config.round.to_json()
        for name in ("method", "seed"):
            round_record.pop(name)
        device = pick_device(self.config.round.device)
        network = model_config(self.config.round, self.dataset.num_classes)
        weights = network.encoder_weights
        record.update(
            round=round_record,
            device=str(device),
            encoder=network.encoder,
            encoder_weights=weights if weights in (None, IMAGENET) else Path(weights).name,
            num_classes=self.dataset.num_classes,
            num_train_images=len(self.names),
            num_val_images=len(self.dataset.val_names),
            seconds_per_query={kind: list(table) for kind, table in PAPER_COST_MODEL.seconds_per_query.items()},
        )
        return record

    def _write(self, results: dict[str, Any]) -> None:
        write_text_atomically(self.out / "results.json", json.dumps(results, indent=2) + "\n")


def _append_queries(path: Path, round_index: int, given: list[Given]) -> None:
    """Add a round's queries, in rank order, with the simulated answers to ``path`` (one JSON object per line).

    ``answer`` is the class given (null: none, or several ticked), ``classes`` every class given.
    """
    lines = [
        json.dumps(
            {
                "round": round_index,
                "rank": rank,
                **query.to_json(),
                "answer": classes[0] if len(classes) == 1 else None,
                "classes": list(classes),
            }
        )
        for rank, (query, classes) in enumerate(given)
    ]
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text_atomically(path, previous + "".join(line + "\n" for line in lines))


_NO_AUTO: dict[str, Any] = {"auto_corrected_pixels": None, "auto_corrected_superpixels": None, "auto_precision": None}
