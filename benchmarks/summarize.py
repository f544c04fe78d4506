"""Markdown tables of a simulation's ``results.json``: mean ± std over seeds, per method and round.

python benchmarks/summarize.py runs/synth/results.json [more/results.json ...] [--plot curves.png]

With several files, a method's run of a seed in a later file replaces the same in earlier ones
(e.g. a method re-run after a fix, on the same data set and settings, or the seeds of one
command run as separate processes); runs cut short are left out. ``--plot`` draws the merged
curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from alc_backend.simulation.plots import plot_curves

COLUMNS = (
    ("clicks", "clicks (cumulative)"),
    ("seconds", "annotator seconds (cumulative, cost model)"),
    ("data_miou", "Data mIoU (%)"),
    ("model_miou", "Model mIoU (%)"),
    ("precision", "query precision"),
    ("recall", "query recall"),
    ("cost_bits", "cost (bits)"),
    ("audits", "audits (this round)"),
    ("auto_corrected_superpixels", "auto-corrected superpixels (this round)"),
    ("auto_corrected_pixels", "auto-corrected pixels (this round)"),
    ("auto_precision", "auto-correction precision (share of changed pixels now right)"),
    ("mixed_answers", "multi-class answers with several classes (this round)"),
    ("localised_accuracy", "localisation accuracy (share of their labelled pixels right)"),
    ("train_seconds", "training time of the round's model (s, wall clock)"),
)
FRACTIONS = ("precision", "recall", "auto_precision", "localised_accuracy")
COUNTS = ("clicks", "seconds", "auto_corrected_superpixels", "auto_corrected_pixels", "audits", "mixed_answers")


def table(results: dict, metric: str, title: str) -> str:
    """One row per method, one column per round: the mean ± std over seeds of ``metric``.

    Columns are named by clicks when every method asked the same number (a budget in queries),
    by round otherwise (a budget in seconds: the ``clicks`` and ``seconds`` tables give each
    method's spending).
    """
    by_method: dict[str, list[list[dict]]] = {}
    for run in results["runs"]:
        by_method.setdefault(run["method"], []).append(run["rounds"])
    rounds = min(len(runs) for runs in (r for method_runs in by_method.values() for r in method_runs))
    clicks = {tuple(r[i]["clicks"] for i in range(rounds)) for method_runs in by_method.values() for r in method_runs}
    names = [f"{c} clicks" for c in next(iter(clicks))] if len(clicks) == 1 else [f"round {i}" for i in range(rounds)]
    columns = [
        i
        for i in range(rounds)
        if any(r[i].get(metric) is not None for method_runs in by_method.values() for r in method_runs)
    ]
    lines = [f"**{title}**", "", "| method | " + " | ".join(names[i] for i in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for method, runs in by_method.items():
        cells = []
        for i in columns:
            values = np.array([np.nan if r[i].get(metric) is None else r[i][metric] for r in runs], dtype=float)
            if np.all(np.isnan(values)):
                cells.append("–")
                continue
            mean, std = np.nanmean(values), np.nanstd(values)
            digits = 2 if metric in FRACTIONS else 0 if metric in COUNTS else 1
            cells.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def corrector_table(results: dict) -> str:
    """Per method with correctors, per round: what each corrector wrote (superpixels, pixel precision
    against the ground truth), what it held back, and the round's audits of its proposals of the
    round before (confirmed / asked), summed over seeds.

    A cell reads ``written sp · precision | held back sp | audits confirmed/asked``; the last column
    counts the rounds in which the corrector wrote anything, over all seeds.
    """
    rows: dict[tuple[str, str], list[list[dict]]] = {}
    for run in results["runs"]:
        for entry in run["rounds"][1:]:
            for corrector, done in (entry.get("auto") or {}).items():
                rows.setdefault((run["method"], corrector), [])
                per_round = rows[(run["method"], corrector)]
                while len(per_round) < entry["round"]:
                    per_round.append([])
                per_round[entry["round"] - 1].append(done)
    if not rows:
        return ""
    rounds = max(len(per_round) for per_round in rows.values())
    lines = [
        "**Automatic corrections per round** (sums over seeds: superpixels written · share of their pixels now "
        "right | superpixels held back | audits confirmed/asked)",
        "",
        "| method | corrector | " + " | ".join(f"round {r + 1}" for r in range(rounds)) + " | rounds written |",
        "|---|---|" + "---|" * rounds + "---:|",
    ]
    for (method, corrector), per_round in rows.items():
        cells, acted, total = [], 0, 0
        for entries in per_round:
            written = sum(e["superpixels"] for e in entries)
            right = [e["precision"] * e["pixels"] for e in entries if e["precision"] is not None]
            pixels = sum(e["pixels"] for e in entries if e["precision"] is not None)
            precision = f" · {sum(right) / pixels:.2f}" if pixels else ""
            held = sum(e.get("held_back_superpixels", 0) for e in entries)
            audits = sum(e.get("audited", 0) for e in entries)
            confirmed = sum(e.get("confirmed", 0) for e in entries)
            cells.append(f"{written}{precision} \\| {held} \\| {confirmed}/{audits}")
            acted += sum(e["superpixels"] > 0 for e in entries)
            total += len(entries)
        lines.append(f"| {method} | {corrector} | " + " | ".join(cells) + f" | {acted} of {total} |")
    return "\n".join(lines)


def merge(all_results: list[dict]) -> dict:
    """The first results with each (method, seed)'s run taken from the last file that has it complete.

    A run cut short (fewer rounds than its file's ``config.rounds``, e.g. a simulation stopped
    midway) is left out, so that the seeds of one command can be run as several processes.
    """
    merged = dict(all_results[0])
    runs: dict[tuple[str, int], dict] = {}
    for results in all_results:
        for run in results["runs"]:
            if len(run["rounds"]) == results["config"]["rounds"] + 1:
                runs[(run["method"], run["seed"])] = run
    merged["runs"] = sorted(runs.values(), key=lambda run: run["seed"])
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--plot", type=Path, help="write the merged Data/Model mIoU curves to this PNG")
    parser.add_argument("--x", choices=("clicks", "seconds"), default="clicks", help="the plot's budget axis")
    args = parser.parse_args()
    results = merge([json.loads(path.read_text()) for path in args.results])
    seeds = sorted({run["seed"] for run in results["runs"]})
    print(f"{results['dataset']}: seeds {seeds}, config {json.dumps(results['config'])}\n")
    for metric, title in COLUMNS:
        if any(r.get(metric) is not None for run in results["runs"] for r in run["rounds"]):
            print(table(results, metric, title) + "\n")
    table_of_correctors = corrector_table(results)
    if table_of_correctors:
        print(table_of_correctors + "\n")
    if args.plot:
        plot_curves(results, args.plot, x=args.x)


if __name__ == "__main__":
    main()
