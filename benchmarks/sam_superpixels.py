"""SAM superpixels against SLIC on the real images with ground truth that ship with imgviz.

For each image (PASCAL VOC 375x500, ARC2017 480x640) and each prompt grid: the time of
MobileSAM's automatic mask generator and of the mask-to-superpixel conversion, how much of the
image the raw masks cover, and the achievable segmentation accuracy (ASA) of

- ``sam``: SAM masks + SLIC on the uncovered pixels (the default),
- ``sam-components``: SAM masks + each uncovered connected piece kept whole,
- ``slic``: SLIC with at least as many superpixels as ``sam`` made (``slic_with_count``),
- ``felzenszwalb``: asked for the same count (it returns about that many).

Usage::

    python benchmarks/sam_superpixels.py --checkpoint mobile_sam.pt --points-per-side 8 16 --out benchmarks/_data/sam

Writes ``results.json`` and ``superpixels.png`` (boundaries of each map) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import imgviz
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage.segmentation import find_boundaries
from tqdm import tqdm

from alc_backend.engine.metrics import achievable_segmentation_accuracy
from alc_backend.engine.superpixels import compute_superpixels, slic_with_count
from alc_backend.preannotation.sam_models import load_sam
from alc_backend.preannotation.sam_superpixels import SamGeneratorSettings, SamSuperpixels

NUM_SUPERPIXELS = 40
"""SLIC density on the pixels SAM leaves uncovered, and the smallest-superpixel default (as the backend's)."""


def real_images() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> ((H, W, 3) uint8 image, (H, W) uint8 class labels) of imgviz's images with ground truth."""
    voc, arc = imgviz.data.voc(), imgviz.data.arc2017()
    return {
        "voc": (voc["rgb"], voc["class_label"].astype(np.uint8)),
        "arc2017": (arc["rgb"], arc["class_label"].astype(np.uint8)),
    }


def measure(
    model: torch.nn.Module, settings: SamGeneratorSettings, image: np.ndarray, truth: np.ndarray
) -> tuple[dict[str, float], dict]:
    """Figures of one image at one prompt grid, and the maps they were computed on."""
    generator = SamSuperpixels(model, settings, num_superpixels=NUM_SUPERPIXELS)
    whole_uncovered = SamSuperpixels(model, settings, num_superpixels=NUM_SUPERPIXELS, fill="components")
    started = time.perf_counter()
    masks = generator.masks(image)
    mask_seconds = time.perf_counter() - started
    started = time.perf_counter()
    maps = {"sam": generator.from_masks(masks, image)}
    convert_seconds = time.perf_counter() - started
    maps["sam-components"] = whole_uncovered.from_masks(masks, image)
    count = int(maps["sam"].max()) + 1
    maps["slic"] = slic_with_count(image, count)
    maps["felzenszwalb"] = compute_superpixels(image, "felzenszwalb", num_segments=count)
    figures = {
        "masks": len(masks),
        "mask_coverage": float(masks.any(axis=0).mean()) if len(masks) else 0.0,
        "mask_seconds": mask_seconds,
        "convert_seconds": convert_seconds,
    }
    for name, superpixels in maps.items():
        figures[f"{name}_count"] = int(superpixels.max()) + 1
        figures[f"{name}_asa"] = achievable_segmentation_accuracy(superpixels, truth)
    return figures, maps


def plot(panels: list[tuple[str, np.ndarray, dict]], path: Path) -> None:
    """One row per image: the boundaries of each superpixel map over the image."""
    kinds = ["sam", "sam-components", "slic", "felzenszwalb"]
    figure, axes = plt.subplots(len(panels), len(kinds), figsize=(4 * len(kinds), 3.2 * len(panels)), squeeze=False)
    for row, (title, image, maps) in enumerate(panels):
        for column, kind in enumerate(kinds):
            shown = image.copy()
            shown[find_boundaries(maps[kind], mode="thick")] = (255, 255, 0)
            axes[row, column].imshow(shown)
            axes[row, column].set_title(f"{title}: {kind} ({int(maps[kind].max()) + 1})", fontsize=9)
            axes[row, column].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="MobileSAM mobile_sam.pt")
    parser.add_argument("--points-per-side", type=int, nargs="+", default=[16])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/_data/sam"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_sam(args.checkpoint, "vit_t", "cpu")
    results: list[dict] = []
    panels = []
    runs = [(points, name) for points in args.points_per_side for name in real_images()]
    for points, name in tqdm(runs, desc="images x grids", unit="run"):
        image, truth = real_images()[name]
        figures, maps = measure(model, SamGeneratorSettings(points_per_side=points), image, truth)
        results.append({"image": name, "points_per_side": points, **figures})
        panels.append((f"{name}, {points}x{points} points", image, maps))
        print(json.dumps(results[-1]))
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    plot(panels, args.out / "superpixels.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'superpixels.png'}")


if __name__ == "__main__":
    main()
