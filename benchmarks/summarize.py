"""Markdown tables of a simulation's ``results.json``: mean ± std over seeds, per method and round.

python benchmarks/summarize.py runs/synth/results.json [more/results.json ...] [--plot curves.png]

With several files, a method's runs in a later file replace that method's runs in earlier ones
(e.g. a method re-run after a fix, on the same data set and settings); ``--plot`` draws the
merged curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alc_backend.simulation.plots import curves_by_method, plot_curves

COLUMNS = (
    ("data_miou", "Data mIoU (%)"),
    ("model_miou", "Model mIoU (%)"),
    ("precision", "query precision"),
    ("recall", "query recall"),
    ("cost_bits", "cost (bits)"),
    ("auto_corrected_superpixels", "auto-corrected superpixels (this round)"),
    ("auto_corrected_pixels", "auto-corrected pixels (this round)"),
    ("auto_precision", "auto-correction precision (share of changed pixels now right)"),
)
FRACTIONS = ("precision", "recall", "auto_precision")
COUNTS = ("auto_corrected_superpixels", "auto_corrected_pixels")


def table(results: dict, metric: str, title: str) -> str:
    curves = curves_by_method(results, metric)
    clicks = sorted({int(c) for values in curves.values() for c in values[0]})
    lines = [f"**{title}**", "", "| method | " + " | ".join(f"{c} clicks" for c in clicks) + " |"]
    lines.append("|---|" + "---:|" * len(clicks))
    for method, (method_clicks, mean, std) in curves.items():
        cells = {
            int(c): f"{m:.2f} ± {s:.2f}"
            if metric in FRACTIONS
            else f"{m:.0f} ± {s:.0f}"
            if metric in COUNTS
            else f"{m:.1f} ± {s:.1f}"
            for c, m, s in zip(method_clicks, mean, std, strict=True)
        }
        lines.append(f"| {method} | " + " | ".join(cells.get(c, "–") for c in clicks) + " |")
    return "\n".join(lines)


def merge(all_results: list[dict]) -> dict:
    """The first results with each method's runs taken from the last file that has that method."""
    merged = dict(all_results[0])
    runs: dict[str, list[dict]] = {}
    for results in all_results:
        replaced = {run["method"] for run in results["runs"]}
        runs = {method: kept for method, kept in runs.items() if method not in replaced}
        for run in results["runs"]:
            runs.setdefault(run["method"], []).append(run)
    merged["runs"] = [run for method_runs in runs.values() for run in method_runs]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--plot", type=Path, help="write the merged Data/Model mIoU curves to this PNG")
    args = parser.parse_args()
    results = merge([json.loads(path.read_text()) for path in args.results])
    seeds = sorted({run["seed"] for run in results["runs"]})
    print(f"{results['dataset']}: seeds {seeds}, config {json.dumps(results['config'])}\n")
    for metric, title in COLUMNS:
        if any(r[metric] is not None for run in results["runs"] for r in run["rounds"]):
            print(table(results, metric, title) + "\n")
    if args.plot:
        plot_curves(results, args.plot)


if __name__ == "__main__":
    main()
