"""Learning curves of a simulation: Data and Model mIoU against clicks or seconds, mean ± std over seeds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure

from alc_backend.atomic import write_atomically

METRICS = (("data_miou", "Data mIoU (%)"), ("model_miou", "Model mIoU (%)"))
Budget = Literal["clicks", "seconds"]
BUDGET_LABELS: dict[str, str] = {"clicks": "clicks (queries)", "seconds": "annotator seconds (cost model)"}


def curves_by_method(
    results: dict[str, Any], metric: str, x: Budget = "clicks"
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per method: budget spent ``(R,)``, mean ``(R,)`` and std ``(R,)`` of ``metric`` over seeds.

    The budget is the cumulative ``x`` of each round (``clicks``, or ``seconds``: the mean over
    seeds, since each seed asks about other regions). Rounds are aligned by index; a round
    missing from some seed (a run still going) is left out. Rounds where the metric is null for
    every seed are left out.
    """
    runs_by_method: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for run in results["runs"]:
        runs_by_method[run["method"]].append(run["rounds"])
    curves = {}
    for method, runs in runs_by_method.items():
        length = min(len(rounds) for rounds in runs)
        spent = np.array([np.mean([rounds[i][x] for rounds in runs]) for i in range(length)], dtype=float)
        values = np.array(
            [[np.nan if rounds[i].get(metric) is None else rounds[i][metric] for i in range(length)] for rounds in runs]
        )
        keep = ~np.all(np.isnan(values), axis=0)
        curves[method] = (spent[keep], np.nanmean(values[:, keep], axis=0), np.nanstd(values[:, keep], axis=0))
    return curves


def plot_curves(results: dict[str, Any], path: Path, x: Budget = "clicks") -> None:
    """Write a two-panel PNG (Data mIoU, Model mIoU vs ``x``), one line per method, shaded ± std."""
    figure = Figure(figsize=(11, 4.2))
    axes = figure.subplots(1, 2)
    for axis, (metric, title) in zip(axes, METRICS, strict=True):
        for method, (spent, mean, std) in curves_by_method(results, metric, x).items():
            (line,) = axis.plot(spent, mean, marker="o", label=method)
            axis.fill_between(spent, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axis.set_xlabel(BUDGET_LABELS[x])
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    num_seeds = len({run["seed"] for run in results["runs"]})
    figure.suptitle(f"{Path(str(results['dataset'])).name}: mean ± std over {num_seeds} seed(s)")
    figure.tight_layout()
    write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
