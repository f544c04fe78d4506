"""Teacher-Student-Friend against supervised training of the round model, at the same clicks.

Runs the simulation (the backend's round code) once per trainer on one data set with the same
method, budget, seeds and settings otherwise, one output folder per trainer, and prints per
trainer the Data and Model mIoU after each round (mean ± std over seeds) and the training time
per round; ``--plot`` draws both trainers' curves into one PNG.

Usage::

    alc-backend make-synthetic benchmarks/_data/synth200 --images 200 --seed 0
    python benchmarks/tsf_vs_supervised.py benchmarks/_data/synth200 --out benchmarks/_data/tsf \\
        --method abc+lcm --rounds 5 --budget 100 --seeds 0,1,2 --plot benchmarks/tsf_synth200.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from alc_backend.cli import main as cli
from alc_backend.simulation.plots import plot_curves

TRAINERS = ("supervised", "tsf")


def trainer_rows(results: dict) -> dict[str, list[str]]:
    """``mean ± std`` over seeds, per round, of Data mIoU, Model mIoU and training seconds."""
    runs = [run["rounds"] for run in results["runs"]]
    rounds = min(len(run) for run in runs)
    rows = {}
    for key in ("data_miou", "model_miou", "train_seconds"):
        values = np.array([[np.nan if run[i][key] is None else run[i][key] for i in range(rounds)] for run in runs])
        rows[key] = [f"{m:.1f} ± {s:.1f}" for m, s in zip(np.nanmean(values, 0), np.nanstd(values, 0), strict=True)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--method", default="abc+lcm")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--plot", type=Path, help="both trainers' Data/Model mIoU curves in one PNG")
    args = parser.parse_args()
    merged: dict = {"dataset": str(args.data), "runs": []}
    for trainer in TRAINERS:
        out = args.out / trainer
        if not (out / "results.json").exists():
            command = ["simulate", str(args.data), "--method", args.method, "--rounds", str(args.rounds)]
            command += ["--budget", str(args.budget), "--seeds", args.seeds, "--image-size", str(args.image_size)]
            command += ["--epochs", str(args.epochs), "--lr", str(args.lr), "--trainer", trainer, "--quiet"]
            assert cli([*command, "--out", str(out)]) == 0
        results = json.loads((out / "results.json").read_text())
        merged["runs"] += [{**run, "method": f"{run['method']} ({trainer})"} for run in results["runs"]]
        clicks = [entry["clicks"] for entry in results["runs"][0]["rounds"]]
        print(f"\n**{trainer}** ({args.method}, seeds {args.seeds}), clicks {clicks}\n")
        for key, cells in trainer_rows(results).items():
            print(f"| {key} | " + " | ".join(cells) + " |")
    if args.plot:
        plot_curves(merged, args.plot)


if __name__ == "__main__":
    main()
