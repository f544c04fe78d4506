"""Learning curves of a simulation: Data and Model mIoU against clicks, mean ± std over seeds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from alc_backend.atomic import write_atomically

METRICS = (("data_miou", "Data mIoU (%)"), ("model_miou", "Model mIoU (%)"))


def curves_by_method(results: dict[str, Any], metric: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per method: clicks ``(R,)``, mean ``(R,)`` and std ``(R,)`` of ``metric`` over seeds.

    Rounds are aligned by index; a round missing from some seed (a run still going) is left out.
    Rounds where the metric is null for every seed are left out.
    """
    runs_by_method: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for run in results["runs"]:
        runs_by_method[run["method"]].append(run["rounds"])
    curves = {}
    for method, runs in runs_by_method.items():
        length = min(len(rounds) for rounds in runs)
        clicks = np.array([runs[0][i]["clicks"] for i in range(length)], dtype=float)
        values = np.array(
            [[np.nan if rounds[i].get(metric) is None else rounds[i][metric] for i in range(length)] for rounds in runs]
        )
        keep = ~np.all(np.isnan(values), axis=0)
        curves[method] = (clicks[keep], np.nanmean(values[:, keep], axis=0), np.nanstd(values[:, keep], axis=0))
    return curves


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Write a two-panel PNG (Data mIoU, Model mIoU vs clicks), one line per method, shaded ± std."""
    figure = Figure(figsize=(11, 4.2))
    axes = figure.subplots(1, 2)
    for axis, (metric, title) in zip(axes, METRICS, strict=True):
        for method, (clicks, mean, std) in curves_by_method(results, metric).items():
            (line,) = axis.plot(clicks, mean, marker="o", label=method)
            axis.fill_between(clicks, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axis.set_xlabel("clicks (correction queries)")
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    num_seeds = len({run["seed"] for run in results["runs"]})
    figure.suptitle(f"{Path(str(results['dataset'])).name}: mean ± std over {num_seeds} seed(s)")
    figure.tight_layout()
    write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
