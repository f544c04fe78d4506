"""Acquisition speed: the library's ``score_superpixels`` against a per-superpixel loop and one read of the map.

Scores every superpixel of ``--images`` images (default 200 of 512×512 px with 21 classes)
with ``sim`` (representative pixel selection, eqs. 4-6, plus the look-ahead sum of eq. 9):

- *one read*: a sum over the ``(C, H, W)`` map, the least any scoring has to do;
- *library, numpy input* and *library, torch CPU tensors*: ``score_superpixels`` given numpy
  arrays (viewed as CPU tensors) and given tensors, the path a round takes on the model's device;
- *loop*: a straightforward loop that handles one superpixel at a time with boolean masks.

All run in the same process on the same inputs, interleaved image by image; the loop's scores
are compared with the library's (they differ only where float32 rounding breaks a near-tie
between two candidate representative pixels differently). Inputs are softmax maps of random
logits and Voronoi superpixels; a bank of ``--distinct`` images is cycled so that making inputs
does not dominate the run. The peak resident memory after a tenth of the images and after all
of them shows whether memory grows with the number of images. Prints a table.

    python benchmarks/acquisition_speed.py --images 200 --superpixels 64 200 1000
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from scipy.spatial import cKDTree
from tqdm import tqdm

from alc_backend import IGNORE_INDEX
from alc_backend.engine.acquisition import score_superpixels
from alc_backend.engine.superpixels import relabel_sequential


def sim_by_loop(probs: np.ndarray, labels: np.ndarray, superpixels: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """SIM per superpixel, one superpixel at a time: ``(C, H, W)``, ``(H, W)``, ``(H, W)`` -> ``(K,)``."""
    num_classes = probs.shape[0]
    scores = np.zeros(int(superpixels.max()) + 1)
    for superpixel_id in range(scores.size):
        member = superpixels == superpixel_id
        pixel_probs = probs[:, member]  # (C, n)
        pixel_labels = labels[member].astype(np.int64)
        norms = np.linalg.norm(pixel_probs, axis=0)
        predicted = pixel_probs.argmax(axis=0)
        dominant = np.bincount(predicted, minlength=num_classes).argmax()
        core_mean = pixel_probs[:, predicted == dominant].mean(axis=1)
        to_core = pixel_probs.T @ core_mean / (norms * np.linalg.norm(core_mean))
        representative = pixel_probs[:, int(to_core.argmax())]
        similarity = pixel_probs.T @ representative / (norms * np.linalg.norm(representative))
        valid = pixel_labels != IGNORE_INDEX
        confidence = np.where(valid, pixel_probs[np.where(valid, pixel_labels, 0), np.arange(pixel_labels.size)], 0.0)
        scores[superpixel_id] = np.sum(similarity * (1.0 - confidence) * (similarity >= eps))
    return scores


def make_inputs(
    rng: np.random.Generator, size: int, num_classes: int, num_superpixels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax of smooth random logits ``(C, H, W)`` float32, labels ``(H, W)``, Voronoi ids ``(H, W)``."""
    coarse = rng.normal(scale=3.0, size=(num_classes, size // 32, size // 32)).astype(np.float32)
    logits = np.kron(coarse, np.ones((32, 32), np.float32)) + rng.normal(size=(num_classes, size, size)).astype(
        np.float32
    )
    probs = np.exp(logits - logits.max(axis=0, keepdims=True))
    probs /= probs.sum(axis=0, keepdims=True)
    labels = np.where(rng.random((size, size)) < 0.7, probs.argmax(axis=0), rng.integers(0, num_classes, (size, size)))
    rows, cols = np.mgrid[:size, :size]
    seeds = rng.uniform(0, size, size=(num_superpixels, 2))
    nearest = cKDTree(seeds).query(np.stack([rows.ravel(), cols.ravel()], axis=1))[1]
    return probs, labels.astype(np.uint8), relabel_sequential(nearest.reshape(size, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--superpixels", type=int, nargs="+", default=[64, 200, 1000], help="superpixels per image")
    parser.add_argument("--distinct", type=int, default=8, help="distinct input images, cycled")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (numpy runs on one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"{args.images} images of {args.size}×{args.size} px, {args.classes} classes, method sim")
    print(f"milliseconds per image, torch on {args.threads} thread(s)")
    print(
        "| superpixels / image | one read | library, numpy input | library, torch CPU tensors | loop "
        "| loop / library | library / one read | max relative difference | peak RSS after 10 % / all (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for num_superpixels in args.superpixels:
        rng = np.random.default_rng(num_superpixels)
        bank = [make_inputs(rng, args.size, args.classes, num_superpixels) for _ in range(args.distinct)]
        tensors = [tuple(torch.from_numpy(array.copy()) for array in inputs) for inputs in bank]
        seconds = dict.fromkeys(("read", "numpy", "torch", "loop"), 0.0)
        difference = 0.0
        early_rss = 0.0
        for index in tqdm(range(args.images), desc=f"{num_superpixels} superpixels/image", leave=False):
            probs, labels, superpixels = bank[index % len(bank)]
            probs_t, labels_t, superpixels_t = tensors[index % len(tensors)]
            start = time.perf_counter()
            float(probs_t.sum())
            seconds["read"] += time.perf_counter() - start
            start = time.perf_counter()
            from_numpy = score_superpixels("sim", probs, labels, superpixels)
            seconds["numpy"] += time.perf_counter() - start
            start = time.perf_counter()
            from_torch = score_superpixels("sim", probs_t, labels_t, superpixels_t).numpy()
            seconds["torch"] += time.perf_counter() - start
            start = time.perf_counter()
            slow = sim_by_loop(probs, labels, superpixels)
            seconds["loop"] += time.perf_counter() - start
            for fast in (from_numpy, from_torch):
                difference = max(difference, float(np.max(np.abs(fast - slow) / np.maximum(np.abs(slow), 1e-9))))
            if index + 1 == max(args.images // 10, 1):
                early_rss = peak_rss_mib()
        per_image = {name: 1000.0 * total / args.images for name, total in seconds.items()}
        library = min(per_image["numpy"], per_image["torch"])
        print(
            f"| {num_superpixels} | {per_image['read']:.2f} | {per_image['numpy']:.1f} | {per_image['torch']:.1f} "
            f"| {per_image['loop']:.1f} | {per_image['loop'] / library:.2f} | {library / per_image['read']:.1f} "
            f"| {difference:.1e} | {early_rss:.0f} / {peak_rss_mib():.0f} |",
            flush=True,
        )


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports kibibytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


if __name__ == "__main__":
    main()
