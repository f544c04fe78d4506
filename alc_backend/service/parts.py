"""A preparation split into parts that several workers take at once, on the shared workspace.

``FOLDER/plan.json`` lists the parts (task ids each); a worker claims part ``k`` by creating
``claim-k`` exclusively (``O_EXCL``, safe on a shared file system) and reports it done by
writing ``done-k.json`` (its task records) atomically. A claim older than ``STALE_CLAIM_S``
without a result belongs to a dead worker and may be claimed again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from alc_backend.atomic import write_text_atomically
from alc_backend.service.workspace import TaskRecord

STALE_CLAIM_S = 1800.0
"""A part claimed this long ago and not finished is taken to be abandoned (seconds)."""


class PreparationParts:
    """The parts of one project's preparation, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def plan(self, task_ids: list[int], size: int) -> None:
        """Split ``task_ids`` into parts of ``size`` and start over (earlier claims are dropped)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.glob("claim-*"):
            path.unlink()
        parts = [task_ids[start : start + size] for start in range(0, len(task_ids), size)]
        write_text_atomically(self.folder / "plan.json", json.dumps({"parts": parts}) + "\n")

    def claim(self) -> tuple[int, list[int]] | None:
        """Claim an unclaimed (or abandoned) unfinished part: ``(index, task ids)``, or None if none is left."""
        for index, task_ids in enumerate(self._parts()):
            if (self.folder / f"done-{index}.json").exists():
                continue
            claim = self.folder / f"claim-{index}"
            if claim.exists() and time.time() - claim.stat().st_mtime > STALE_CLAIM_S:
                claim.unlink(missing_ok=True)
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            return index, task_ids
        return None

    def unclaimed(self) -> bool:
        """Whether a part is waiting for a worker."""
        return any(not (self.folder / f"claim-{index}").exists() for index in range(len(self._parts())))

    def finish(self, index: int, records: dict[int, TaskRecord]) -> None:
        """Report part ``index`` done with the records of its tasks."""
        payload = {str(task): dataclasses.asdict(record) for task, record in records.items()}
        write_text_atomically(self.folder / f"done-{index}.json", json.dumps(payload) + "\n")

    def take_finished(self) -> dict[int, TaskRecord]:
        """The records of every finished part; a plan whose parts are all finished is removed."""
        parts = self._parts()
        records: dict[int, TaskRecord] = {}
        done = [index for index in range(len(parts)) if (self.folder / f"done-{index}.json").exists()]
        for index in done:
            raw = json.loads((self.folder / f"done-{index}.json").read_text(encoding="utf-8"))
            records.update({int(task): TaskRecord(**record) for task, record in raw.items()})
        if parts and len(done) == len(parts):
            for path in self.folder.iterdir():
                path.unlink()
        return records

    def unfinished(self) -> bool:
        """Whether a plan has parts not yet finished."""
        return any(not (self.folder / f"done-{index}.json").exists() for index in range(len(self._parts())))

    def _parts(self) -> list[list[int]]:
        path = self.folder / "plan.json"
        if not path.is_file():
            return []
        return [list(map(int, part)) for part in json.loads(path.read_text(encoding="utf-8"))["parts"]]
