"""SLIC against MobileSAM as the backend's superpixel source: the time to prepare and what the loop then achieves.

One synthetic data set, one copy per source. Each copy is prepared with ``alc-backend prepare``,
the code that prepares the backend's image tasks, and timed; then the same simulation (the
backend's round code, budget in annotator seconds) runs on it for each method and seed, one
run folder per method.
Reports per source: preparation seconds per image, superpixels per image and their achievable
segmentation accuracy (ASA), and per method the Data and Model mIoU after each round (mean and
standard deviation over seeds) with the seconds spent.

Usage::

    alc-backend weights mobilesam --out mobile_sam.pt
    python benchmarks/served_superpixels.py --checkpoint mobile_sam.pt --out benchmarks/_data/served
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from superpixel_sources_simulation import superpixel_figures

from alc_backend.cli import main as cli
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.data.synthetic import make_synthetic

SOURCES = ("slic", "mobilesam")
DEFAULT_METHODS = ("abc", "auto:abc", "multiclass:abc")


def prepare_copy(base: Path, root: Path, options: list[str]) -> float:
    """Copy ``base`` to ``root``, prepare its superpixels with ``options``; wall seconds per image."""
    shutil.copytree(base, root)
    started = time.perf_counter()
    assert cli(["prepare", str(root), *options, "--overwrite"]) == 0
    dataset = SegmentationDataset.open(root)
    images = len(dataset.train_names) + len(dataset.val_names)
    return (time.perf_counter() - started) / images


def method_figures(results: dict) -> dict[str, dict[str, list[float]]]:
    """Per method: mean and std over seeds of Data/Model mIoU and cumulative seconds, per round."""
    by_method: dict[str, list[list[dict]]] = {}
    for run in results["runs"]:
        by_method.setdefault(run["method"], []).append(run["rounds"])
    figures = {}
    for method, runs in by_method.items():
        rounds = min(len(run) for run in runs)
        figure = {}
        for key in ("data_miou", "model_miou", "seconds"):
            values = np.array([[run[i][key] for i in range(rounds)] for run in runs], dtype=float)
            figure[key] = np.nanmean(values, axis=0).round(2).tolist()
            figure[f"{key}_std"] = np.nanstd(values, axis=0).round(2).tolist()
        figures[method] = figure
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="MobileSAM mobile_sam.pt")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/_data/served"))
    parser.add_argument("--source", dest="sources", action="append", choices=SOURCES, help="default: both")
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--points-per-side", type=int, default=8)
    parser.add_argument("--num-superpixels", type=int, default=40, help="SLIC's, and SLIC's where SAM has no mask")
    parser.add_argument("--method", dest="methods", action="append", help=f"default: {', '.join(DEFAULT_METHODS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=300, help="annotator seconds per round")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    base = args.out / "synthetic"
    if not base.exists():
        make_synthetic(base, args.images, 0, size=args.size, val_fraction=0.2)
    superpixels = ["--num-superpixels", str(args.num_superpixels)]
    mobilesam = ["--sam-checkpoint", str(args.checkpoint), "--points-per-side", str(args.points_per_side)]
    options = {
        "slic": ["--superpixels", "slic", *superpixels],
        "mobilesam": ["--superpixels", "mobilesam", *superpixels, *mobilesam],
    }
    for source in args.sources or SOURCES:
        root = args.out / f"data-{source}"
        timing = args.out / f"prepare-{source}.json"
        if not timing.exists():
            shutil.rmtree(root, ignore_errors=True)
            timing.write_text(json.dumps({"seconds_per_image": prepare_copy(base, root, options[source])}))
        figures = {}
        for method in args.methods or DEFAULT_METHODS:
            run = args.out / f"run-{source}" / method.replace(":", "-")
            if not (run / "results.json").exists():
                simulate = ["simulate", str(root), "--method", method, "--seeds", args.seeds]
                simulate += ["--rounds", str(args.rounds), "--budget", str(args.budget), "--budget-unit", "seconds"]
                simulate += ["--epochs", str(args.epochs), "--lr", "0.03", "--image-size", str(args.size)]
                assert cli([*simulate, "--quiet", "--out", str(run)]) == 0
            figures.update(method_figures(json.loads((run / "results.json").read_text())))
        summary = {**json.loads(timing.read_text()), **superpixel_figures(root), "methods": figures}
        (args.out / f"summary-{source}.json").write_text(json.dumps(summary, indent=2))
        print(source, json.dumps(summary))


if __name__ == "__main__":
    main()
