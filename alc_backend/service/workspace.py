"""The backend's derived state for one Label Studio image project, on disk under ``MODEL_DIR``.

Everything here can be rebuilt from Label Studio (answers, tasks) and the images; Label
Studio's database holds the human answers. Layout of ``MODEL_DIR/project-<id>/``::

    project.json              ProjectState: classes, linked query project, rounds, model versions
    tasks.json                image task id -> TaskRecord (name, image URL, size, errors, score)
    queries.json              query task id -> QueryRecord (image task, superpixel, pixel, region, round)
    answers.json              annotation id -> AnswerRecord (query task, classes ticked, updated_at)
    proposals.json            the correctors' proposals held back for the next round, and its audits
    rounds.json               what each round's correctors did (notes for /health and status)
    images/<task>.png         the downloaded image, RGB
    superpixels/<task>.png    (H, W) superpixel ids, 16-bit
    superpixels/<task>.key    what they were computed from (image digest + source settings)
    pseudo/<task>.png         (H, W) initial labels, 255 = none
    manual/<task>.png         (H, W) a mask an annotator drew on the image task itself
    labels/<task>.png         (H, W) current labels = pseudo + auto-corrections + answers
    before/<task>.png         (H, W) each queried pixel's label when its query was made
    localised/<query>.png     (H, W) pixel labels of a mixed answer (several classes ticked), 255 outside
    localised/<query>.key     which classes they were localised for
    auto_corrections.jsonl    every automatic correction, in the order written
    model.safetensors         the latest trained model

``MODEL_DIR/links.json`` maps query project ids to their image project, and
``MODEL_DIR/label-studio.json`` holds the Label Studio address pinned by the first ``/setup``
when ``LABEL_STUDIO_URL`` is unset. Every file is written atomically and durably (temporary
file, flushed, renamed; see :mod:`alc_backend.atomic`); a file that is not JSON raises
:class:`WorkspaceError`, which affects its own project only.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from alc_backend.atomic import write_atomically, write_text_atomically
from alc_backend.data.dataset import read_label_png, read_superpixel_png, write_label_png, write_superpixel_png
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.rounds.audits import Proposal
from alc_backend.rounds.images import Query, flat_runs


class WorkspaceError(RuntimeError):
    """A workspace file is corrupt; the message names it. Only its own project is affected."""


@dataclass
class ProjectState:
    """``project.json``: what the backend knows about one image project.

    ``round`` is the number of the latest round opened (0 before the first); ``round_open``
    whether its queries are still being answered. ``model_version`` labels the image
    predictions written last (``alc-r<finished rounds>``); ``model_round`` the number of finished
    rounds the saved model was trained after (-1: none saved).
    """

    project: int
    class_names: list[str]
    label_config: str
    query_project: int | None = None
    round: int = 0
    round_open: bool = False
    model_version: str = "alc-r0"
    model_round: int = -1
    prepared: bool = False


@dataclass
class TaskRecord:
    """One image task: where its image came from, its size in px, and what went wrong, if anything.

    ``score`` is the image's confidence in [0, 1] (mean model probability of its current
    labels), the prediction score that orders the image queue; None before a model exists.
    """

    task: int
    name: str
    image: str
    height: int = 0
    width: int = 0
    pseudo_source: str | None = None
    error: str | None = None
    score: float | None = None


@dataclass
class QueryRecord:
    """One query about a region of an image task, asked in a query task: the round core's
    :class:`~alc_backend.rounds.images.Query` with where and when it was asked.

    ``row``/``col`` locate the representative pixel; ``proposed`` is the class shown
    pre-selected; ``label_before`` the region's majority label when asked; ``rank`` its place
    in the round (0 = asked first). ``region`` holds the ``(flat start, length)`` runs of the
    pixels an answer labels (None, in workspaces of earlier versions: the whole superpixel).
    ``kind`` is ``"correction"``, ``"multiclass"`` or ``"audit"``; an audit names the ``corrector`` and the
    ``audited_round`` of the proposal it checks. ``predicted_classes`` is how many classes the
    querying model predicted in the region.
    """

    task: int
    image_task: int
    superpixel: int
    row: int
    col: int
    proposed: int
    label_before: int
    round: int
    rank: int
    kind: str = "correction"
    region: list[list[int]] | None = None
    score: float = 0.0
    corrector: str | None = None
    audited_round: int | None = None
    predicted_classes: int = 1

    @classmethod
    def of(cls, task: int, query: Query, round_index: int, rank: int) -> QueryRecord:
        """The record of ``query`` (its image key is the image task's id) asked in query task ``task``."""
        return cls(
            task=task,
            image_task=int(query.image),
            superpixel=query.superpixel,
            row=query.row,
            col=query.col,
            proposed=query.proposed,
            label_before=query.label_before,
            round=round_index,
            rank=rank,
            kind=query.kind,
            region=[list(run) for run in query.region],
            score=query.score,
            corrector=query.corrector,
            audited_round=query.audited_round,
            predicted_classes=query.predicted_classes,
        )

    def query(self, superpixels: np.ndarray) -> Query:
        """The round core's query; ``superpixels`` (the image's ``(H, W)`` ids) give an old record its region."""
        region = (
            tuple((int(start), int(length)) for start, length in self.region)
            if self.region is not None
            else flat_runs(superpixels == self.superpixel)
        )
        return Query(
            image=str(self.image_task),
            superpixel=self.superpixel,
            row=self.row,
            col=self.col,
            proposed=self.proposed,
            label_before=self.label_before,
            region=region,
            score=self.score,
            kind=self.kind if self.kind in ("multiclass", "audit") else "correction",
            corrector=self.corrector,
            audited_round=self.audited_round,
            predicted_classes=self.predicted_classes,
        )


@dataclass
class AnswerRecord:
    """The latest known state of one annotation of a query task.

    ``classes`` are the class indices ticked, ascending: one answers the query, several say its
    region holds each of them (a mixed region), none is a skipped query. ``updated_at`` is Label
    Studio's ISO timestamp, used to ignore events that arrive out of order; ``deleted`` keeps a
    deletion from being undone by a late duplicate of its creation event. ``lead_time`` is the
    seconds Label Studio measured the annotator spent on it (None when it gave none).
    """

    annotation: int
    query_task: int
    classes: tuple[int, ...]
    updated_at: str
    deleted: bool = False
    lead_time: float | None = None

    @property
    def answer(self) -> int | None:
        """The one class ticked, or None when none or several were."""
        return self.classes[0] if len(self.classes) == 1 else None

    @property
    def mixed(self) -> bool:
        """Whether several classes were ticked."""
        return len(self.classes) > 1

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> AnswerRecord:
        """Inverse of ``dataclasses.asdict``; a record of an earlier version holds one ``answer`` (or null)."""
        values = dict(record)
        if "answer" in values:
            answer = values.pop("answer")
            values["classes"] = () if answer is None else (answer,)
        values["classes"] = tuple(int(value) for value in values["classes"])
        return cls(**values)


class Workspace:
    """Reads and writes the files of one image project's workspace; thread-safe for JSON state."""

    def __init__(self, model_dir: Path, project: int) -> None:
        self.project = project
        self.root = model_dir / f"project-{project}"
        self.lock = threading.RLock()

    def exists(self) -> bool:
        return (self.root / "project.json").is_file()

    # --- JSON state -------------------------------------------------------------------------

    def state(self) -> ProjectState:
        path = self.root / "project.json"
        raw = _read_json(path, None)
        try:
            return ProjectState(**raw)
        except TypeError as error:
            raise WorkspaceError(f"{path} does not hold a project's state ({error})") from error

    def save_state(self, state: ProjectState) -> None:
        _write_json(self.root / "project.json", dataclasses.asdict(state))

    def tasks(self) -> dict[int, TaskRecord]:
        raw = _read_json(self.root / "tasks.json", {})
        return {int(key): TaskRecord(**value) for key, value in raw.items()}

    def save_tasks(self, tasks: dict[int, TaskRecord]) -> None:
        _write_json(self.root / "tasks.json", {str(key): dataclasses.asdict(value) for key, value in tasks.items()})

    def queries(self) -> dict[int, QueryRecord]:
        raw = _read_json(self.root / "queries.json", {})
        return {int(key): QueryRecord(**value) for key, value in raw.items()}

    def save_queries(self, queries: dict[int, QueryRecord]) -> None:
        _write_json(self.root / "queries.json", {str(key): dataclasses.asdict(value) for key, value in queries.items()})

    def answers(self) -> dict[int, AnswerRecord]:
        raw = _read_json(self.root / "answers.json", {})
        try:
            return {int(key): AnswerRecord.from_json(value) for key, value in raw.items()}
        except (KeyError, TypeError, ValueError) as error:
            raise WorkspaceError(f"{self.root / 'answers.json'} does not hold answers ({error})") from error

    def save_answers(self, answers: dict[int, AnswerRecord]) -> None:
        _write_json(self.root / "answers.json", {str(key): dataclasses.asdict(value) for key, value in answers.items()})

    def corrections(self) -> list[AutoCorrection]:
        path = self.root / "auto_corrections.jsonl"
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [AutoCorrection.from_json(json.loads(line)) for line in lines if line.strip()]

    def save_corrections(self, corrections: list[AutoCorrection]) -> None:
        text = "".join(json.dumps(record.to_json()) + "\n" for record in corrections)
        write_text_atomically(self.root / "auto_corrections.jsonl", text)

    def proposals(self, round_index: int) -> tuple[list[Proposal], list[Proposal]]:
        """``(held back, to audit)``: the proposals that round ``round_index`` audits and may write,
        and the ones it asks about, as the round before it left them (empty for another round)."""
        raw = _read_json(self.root / "proposals.json", {})
        if raw.get("round") != round_index:
            return [], []
        held = [Proposal.from_json(item) for item in raw.get("held_back", [])]
        return held, [Proposal.from_json(item) for item in raw.get("audits", [])]

    def save_proposals(self, round_index: int, held_back: list[Proposal], audits: list[Proposal]) -> None:
        _write_json(
            self.root / "proposals.json",
            {
                "round": round_index,
                "held_back": [p.to_json() for p in held_back],
                "audits": [p.to_json() for p in audits],
            },
        )

    def round_notes(self) -> dict[str, dict[str, Any]]:
        """Round number (as text) -> corrector -> what it did at the end of that round."""
        notes: dict[str, dict[str, Any]] = _read_json(self.root / "rounds.json", {})
        return notes

    def save_round_notes(self, round_index: int, notes: dict[str, Any]) -> None:
        recorded = self.round_notes()
        recorded[str(round_index)] = notes
        _write_json(self.root / "rounds.json", recorded)

    # --- arrays -----------------------------------------------------------------------------

    def image_path(self, task: int) -> Path:
        return self.root / "images" / f"{task}.png"

    def image(self, task: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        with Image.open(self.image_path(task)) as image:
            return np.array(image.convert("RGB"))

    def save_image(self, task: int, image: np.ndarray) -> None:
        write_atomically(self.image_path(task), lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))

    def superpixels(self, task: int) -> np.ndarray:
        """``(H, W)`` int32 ids 0..K-1."""
        return read_superpixel_png(self.root / "superpixels" / f"{task}.png")

    def save_superpixels(self, task: int, ids: np.ndarray, key: str = "") -> None:
        """Keep ``ids``; ``key`` says what they were computed from (see :meth:`cached_superpixels`)."""
        key_path = self.root / "superpixels" / f"{task}.key"
        key_path.unlink(missing_ok=True)
        write_superpixel_png(self.root / "superpixels" / f"{task}.png", ids)
        if key:
            write_text_atomically(key_path, key)

    def cached_superpixels(self, task: int, key: str) -> np.ndarray | None:
        """The task's saved superpixels if they were computed from ``key``, else None."""
        key_path = self.root / "superpixels" / f"{task}.key"
        if not key or not key_path.is_file() or key_path.read_text(encoding="utf-8") != key:
            return None
        return self.superpixels(task)

    def pseudo(self, task: int) -> np.ndarray:
        """``(H, W)`` uint8 initial labels, 255 = none."""
        return read_label_png(self.root / "pseudo" / f"{task}.png")

    def save_pseudo(self, task: int, labels: np.ndarray) -> None:
        write_label_png(self.root / "pseudo" / f"{task}.png", labels)

    def labels(self, task: int) -> np.ndarray:
        """``(H, W)`` uint8 current labels, 255 = none."""
        return read_label_png(self.root / "labels" / f"{task}.png")

    def has_labels(self, task: int) -> bool:
        return (self.root / "labels" / f"{task}.png").is_file()

    def save_labels(self, task: int, labels: np.ndarray) -> None:
        write_label_png(self.root / "labels" / f"{task}.png", labels)

    def before(self, task: int) -> np.ndarray:
        """``(H, W)`` uint8: each queried pixel's label when its query was made (255 elsewhere)."""
        path = self.root / "before" / f"{task}.png"
        return read_label_png(path) if path.is_file() else np.full(self.superpixels(task).shape, 255, np.uint8)

    def save_before(self, task: int, before: np.ndarray) -> None:
        write_label_png(self.root / "before" / f"{task}.png", before)

    def manual(self, task: int) -> np.ndarray | None:
        """The mask drawn on image task ``task`` by an annotator, or None."""
        path = self.root / "manual" / f"{task}.png"
        return read_label_png(path) if path.is_file() else None

    def save_manual(self, task: int, labels: np.ndarray | None) -> None:
        path = self.root / "manual" / f"{task}.png"
        if labels is None:
            path.unlink(missing_ok=True)
        else:
            write_label_png(path, labels)

    def has_localised(self, query_task: int, key: str) -> bool:
        """Whether pixel labels localised for ``key`` are kept for a mixed answer to ``query_task``."""
        path = self.root / "localised" / f"{query_task}.png"
        key_path = path.with_suffix(".key")
        return key_path.is_file() and key_path.read_text(encoding="utf-8") == key and path.is_file()

    def localised(self, query_task: int, key: str) -> np.ndarray | None:
        """The pixel labels kept for a mixed answer to ``query_task`` if they were localised for ``key``, else None."""
        if not self.has_localised(query_task, key):
            return None
        return read_label_png(self.root / "localised" / f"{query_task}.png")

    def save_localised(self, query_task: int, labels: np.ndarray, key: str) -> None:
        """Keep ``labels``, ``(H, W)`` uint8 (255 outside the region), localised for ``key`` (see :meth:`localised`)."""
        path = self.root / "localised" / f"{query_task}.png"
        key_path = path.with_suffix(".key")
        key_path.unlink(missing_ok=True)
        write_label_png(path, labels)
        write_text_atomically(key_path, key)

    @property
    def checkpoint_path(self) -> Path:
        return self.root / "model.safetensors"


def read_links(model_dir: Path) -> dict[int, int]:
    """``MODEL_DIR/links.json``: query project id -> image project id."""
    return {int(key): int(value) for key, value in _read_json(model_dir / "links.json", {}).items()}


def save_link(model_dir: Path, query_project: int, image_project: int) -> None:
    links = read_links(model_dir)
    links[query_project] = image_project
    _write_json(model_dir / "links.json", {str(key): value for key, value in links.items()})


def _read_json(path: Path, default: Any) -> Any:
    """The JSON in ``path``; ``default`` if it does not exist (None: FileNotFoundError).

    Raises WorkspaceError naming the file when it is not JSON.
    """
    if not path.is_file():
        if default is None:
            raise FileNotFoundError(f"{path} does not exist")
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise WorkspaceError(f"{path} is corrupt ({error})") from error


def _write_json(path: Path, value: Any) -> None:
    write_text_atomically(path, json.dumps(value, indent=1) + "\n")
