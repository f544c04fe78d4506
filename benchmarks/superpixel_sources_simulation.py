"""Does the superpixel source change what active label correction achieves? (the ALC paper's Fig. 6)

One synthetic data set, three copies that differ only in ``superpixels/``: the generator's own
(one per object instance, as an ideal foundation model would give), MobileSAM's (``alc-backend
prepare --superpixels mobilesam``) and SLIC's. The same simulation (``sim`` acquisition,
faithful annotator) runs on each. Reports, per source, the superpixels per image, their mean
achievable segmentation accuracy (ASA) over the training images and Data/Model mIoU per round.

Usage::

    python benchmarks/superpixel_sources_simulation.py --checkpoint mobile_sam.pt --out benchmarks/_data/sources
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from alc_backend.cli import main as cli
from alc_backend.data.dataset import SegmentationDataset
from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.metrics import achievable_segmentation_accuracy


def superpixel_figures(root: Path) -> dict[str, float]:
    """Mean superpixels per training image and mean ASA against the ground truth."""
    dataset = SegmentationDataset.open(root)
    counts, asas = [], []
    for name in dataset.train_names:
        superpixels = dataset.superpixels(name)
        assert superpixels is not None
        counts.append(int(superpixels.max()) + 1)
        asas.append(achievable_segmentation_accuracy(superpixels, dataset.mask(name)))
    return {"superpixels_per_image": float(np.mean(counts)), "asa": float(np.mean(asas))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="MobileSAM mobile_sam.pt")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/_data/sources"))
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--points-per-side", type=int, default=8)
    parser.add_argument("--slic-superpixels", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    base = args.out / "synthetic"
    if not base.exists():
        make_synthetic(base, args.images, 0, size=args.size, val_fraction=0.2)
    mobilesam = ["--superpixels", "mobilesam", "--sam-checkpoint", str(args.checkpoint)]
    prepare = {
        "own": None,
        "mobilesam": [*mobilesam, "--points-per-side", str(args.points_per_side)],
        "slic": ["--superpixels", "slic", "--num-superpixels", str(args.slic_superpixels)],
    }
    summary = {}
    for source, options in prepare.items():
        root = args.out / f"data-{source}"
        if not root.exists():
            shutil.copytree(base, root)
            if options is not None:
                assert cli(["prepare", str(root), *options, "--overwrite"]) == 0
        run = args.out / f"run-{source}"
        if not (run / "results.json").exists():
            simulate = ["simulate", str(root), "--method", "sim", "--rounds", str(args.rounds)]
            simulate += ["--budget", str(args.budget), "--epochs", str(args.epochs), "--image-size", str(args.size)]
            assert cli([*simulate, "--encoder", "resnet18", "--encoder-weights", "none", "--out", str(run)]) == 0
        rounds = json.loads((run / "results.json").read_text())["runs"][0]["rounds"]
        summary[source] = {
            **superpixel_figures(root),
            "data_miou": [entry["data_miou"] for entry in rounds],
            "model_miou": [entry["model_miou"] for entry in rounds],
            "precision": [entry["precision"] for entry in rounds[1:]],
        }
        print(source, json.dumps(summary[source]))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
