"""Draw a project's ``/health`` entry as one PNG: answers over time, answer seconds, corrections, label changes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from alc_backend.atomic import write_atomically

_COUNTS = (("written", "written"), ("audited", "audited"), ("rejected", "rejected by audits"))


def draw_report(project: str, health: dict[str, Any], path: Path) -> None:
    """Write the report of image project ``project`` (its entry in ``/health``'s ``projects``) to ``path``.

    Five panels: answers received against minutes since the first answer; the median seconds
    annotators took per query kind and class count (``answer_seconds``); per round and
    corrector, the changes written, their audits and the audits that rejected them; the regions
    people relabelled and the pixels correctors relabelled, by class before (rows) and after.
    """
    report = health.get("report")
    if not isinstance(report, dict):
        raise ValueError(f"project {project} has no report in /health (is the backend older than this command?)")
    figure = Figure(figsize=(16, 10), layout="constrained")
    grid = figure.add_gridspec(2, 6)
    figure.suptitle(
        f"image project {project}: round {health.get('round')}, model {health.get('model_version')}, "
        f"{health.get('tasks')} tasks"
    )
    _answers_panel(figure.add_subplot(grid[0, 0:2]), report["answers_over_time"])
    _seconds_panel(figure.add_subplot(grid[0, 2:4]), health.get("answer_seconds", {}))
    _corrections_panel(figure.add_subplot(grid[0, 4:6]), report["corrections_by_round"])
    names = report["class_names"]
    changes = report["label_changes"]
    _changes_panel(figure.add_subplot(grid[1, 0:3]), changes["people"], names, "regions people relabelled")
    _changes_panel(figure.add_subplot(grid[1, 3:6]), changes["correctors"], names, "pixels correctors relabelled")
    write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=100, format="png"))


def _answers_panel(axes: Axes, points: list[list[Any]]) -> None:
    axes.set_title("answers received")
    axes.set_xlabel("minutes since the first answer")
    axes.set_ylabel("answers")
    if not points:
        _empty(axes, "no answers yet")
        return
    times = [datetime.fromisoformat(time) for time, _ in points]
    minutes = [(time - times[0]).total_seconds() / 60.0 for time in times]
    axes.step(minutes, [count for _, count in points], where="post")
    axes.set_ylim(bottom=0)


def _seconds_panel(axes: Axes, seconds: dict[str, dict[str, dict[str, Any]]]) -> None:
    axes.set_title("median seconds per answer (Label Studio's lead time)")
    bars = [
        (f"{kind}\n{bucket} class{'es' if bucket != '1' else ''}", entry["median_s"], entry["answers"])
        for kind, buckets in seconds.items()
        for bucket, entry in buckets.items()
        if entry.get("answers")
    ]
    if not bars:
        _empty(axes, "no timed answers yet")
        return
    labels, medians, counts = zip(*bars, strict=True)
    drawn = axes.bar(range(len(bars)), medians)
    axes.bar_label(drawn, labels=[f"n={count}" for count in counts])
    axes.set_xticks(range(len(bars)), labels, fontsize=8)
    axes.set_ylabel("seconds")


def _corrections_panel(axes: Axes, by_round: dict[str, dict[str, dict[str, int]]]) -> None:
    axes.set_title("automatic corrections per round")
    series = sorted({corrector for correctors in by_round.values() for corrector in correctors})
    if not series:
        _empty(axes, "no corrections proposed yet")
        return
    rounds = list(by_round)
    width = 0.8 / (len(series) * len(_COUNTS))
    for s, corrector in enumerate(series):
        for c, (key, label) in enumerate(_COUNTS):
            offset = (s * len(_COUNTS) + c) * width - 0.4 + width / 2
            values = [by_round[r].get(corrector, {}).get(key, 0) for r in rounds]
            axes.bar(np.arange(len(rounds)) + offset, values, width, label=f"{corrector}: {label}")
    axes.set_xticks(range(len(rounds)), [f"round {r}" for r in rounds])
    axes.set_ylabel("superpixels or audits")
    axes.legend(fontsize=8)


def _changes_panel(axes: Axes, matrix: list[list[int]], names: list[str], title: str) -> None:
    axes.set_title(f"{title}: from (row) to (column)")
    values = np.asarray(matrix, dtype=float)
    if not values.any():
        _empty(axes, "none yet")
        return
    image = axes.imshow(values, cmap="Blues")
    axes.figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    for (row, col), value in np.ndenumerate(values):
        if value:
            axes.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=7)


def _empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="grey")
    axes.set_xticks([])
    axes.set_yticks([])
