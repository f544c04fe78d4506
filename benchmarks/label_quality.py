"""Where a simulation's corrections went: per-class IoU and pixels fixed / broken, per run.

Data mIoU averages classes equally, so a method that fixes many pixels of frequent classes and
one that fixes a few pixels of rare classes can score alike. This prints, for every method
(summed over seeds), pixel accuracy of the corrected labels, pixels fixed (pseudo-label wrong,
now right) and broken (pseudo-label right, now wrong), and the IoU of every class.

    python benchmarks/label_quality.py DATA OUT [OUT ...]   # OUT: simulate --out folders

A run is taken from the folder whose ``results.json`` holds it complete (all its rounds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from alc_backend.data.dataset import SegmentationDataset, read_label_png
from alc_backend.engine.metrics import class_iou, confusion_matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path, nargs="+", help="simulate --out folders (one command's seeds may be split)")
    args = parser.parse_args()
    dataset = SegmentationDataset.open(args.data)
    finished: dict[tuple[str, int], tuple[Path, int]] = {}
    for out in args.out:
        results = json.loads((out / "results.json").read_text())
        for run in results["runs"]:
            if len(run["rounds"]) == results["config"]["rounds"] + 1:
                folder = out / "work" / f"seed{run['seed']}" / run["method"] / "labels"
                finished[(run["method"], run["seed"])] = (folder, run["rounds"][-1]["clicks"])
    header = ["labels", "clicks", "pixel accuracy", "pixels fixed", "pixels broken", *dataset.classes]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    print(row(dataset, "pseudo-labels", 0, [lambda name: dataset.pseudo(name)]))
    for method in dict.fromkeys(method for method, _ in finished):
        runs = [entry for (name, _), entry in finished.items() if name == method]
        readers = [lambda name, folder=folder: read_label_png(folder / f"{name}.png") for folder, _ in runs]
        clicks = max(clicks for _, clicks in runs)
        print(row(dataset, f"{method} ({len(runs)} seeds)", clicks, readers))


def row(dataset: SegmentationDataset, title: str, clicks: int, readers: list) -> str:
    confusion = np.zeros((dataset.num_classes, dataset.num_classes + 1), dtype=np.int64)
    fixed = broken = 0
    for read in readers:
        for name in dataset.train_names:
            truth, pseudo, labels = dataset.mask(name), dataset.pseudo(name), read(name)
            labelled = truth != 255
            fixed += int(np.sum(labelled & (pseudo != truth) & (labels == truth)))
            broken += int(np.sum(labelled & (pseudo == truth) & (labels != truth)))
            confusion += confusion_matrix(labels, truth, dataset.num_classes)
    accuracy = np.trace(confusion[:, : dataset.num_classes]) / confusion.sum()
    per_run = len(readers)
    iou = " | ".join(f"{value * 100:.1f}" for value in class_iou(confusion))
    return f"| {title} | {clicks} | {accuracy:.3f} | {fixed // per_run} | {broken // per_run} | {iou} |"


if __name__ == "__main__":
    main()
