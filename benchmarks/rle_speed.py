"""Brush RLE speed: ``alc_backend.labelstudio.rle`` against the Label Studio SDK's encoder and decoder.

Makes a smooth random label map (default 512×512 px, 21 classes: the argmax of 21 random 16×16 grids upsampled
with cubic splines) and encodes every class's mask twice per repeat: with our ``mask_to_rle`` in this process and
with the SDK's ``mask2rle`` in Label Studio's venv, a subprocess that times itself with ``time.perf_counter`` and
prints JSON. The bytes must be equal. Then it decodes those bytes with our ``rle_to_mask`` and with the SDK's
``decode_rle`` (alpha channel > 0, as the SDK's own exporter reads it); the masks must be equal too. Prints the
median time of one pass over all masks and the ratio SDK / ours.

    python benchmarks/rle_speed.py --repeats 7 --out benchmarks/_data/rle_speed.json

Label Studio's venv is ``--label-studio-venv``, else ``$ALC_LABEL_STUDIO_VENV``, else ``<repo>/.venv-labelstudio``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import zoom

from alc_backend.labelstudio.rle import mask_to_rle, rle_to_mask

REPO_ROOT = Path(__file__).resolve().parent.parent

SDK_TIMER = """
import json, sys, time
import numpy as np
from label_studio_sdk.converter.brush import decode_rle, mask2rle

masks = np.load(sys.argv[1])
repeats = int(sys.argv[2])
height, width = masks.shape[1:]
encode_seconds, decode_seconds = [], []
for _ in range(repeats):
    start = time.perf_counter()
    rles = [mask2rle(mask.astype(np.uint8) * 255) for mask in masks]
    encode_seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    decoded = [decode_rle(rle).reshape(height, width, 4)[:, :, 3] > 0 for rle in rles]
    decode_seconds.append(time.perf_counter() - start)
np.save(sys.argv[3], np.array(decoded))
print(json.dumps({"encode_seconds": encode_seconds, "decode_seconds": decode_seconds, "rles": rles}))
"""


def smooth_label_map(rng: np.random.Generator, size: int, num_classes: int, grid: int) -> np.ndarray:
    """``(size, size)`` uint8 classes: argmax over classes of ``(grid, grid)`` normal noise upsampled to ``size``."""
    coarse = rng.normal(size=(num_classes, grid, grid))
    return zoom(coarse, (1, size / grid, size / grid), order=3).argmax(axis=0).astype(np.uint8)


def time_ours(masks: np.ndarray, repeats: int) -> tuple[list[float], list[float], list[list[int]], np.ndarray]:
    """Seconds per pass over ``(K, H, W)`` bool ``masks`` for encoding and decoding, the rles and decoded masks."""
    height, width = masks.shape[1:]
    encode_seconds, decode_seconds = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        rles = [mask_to_rle(mask) for mask in masks]
        encode_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        decoded = [rle_to_mask(rle, height, width) for rle in rles]
        decode_seconds.append(time.perf_counter() - start)
    return encode_seconds, decode_seconds, rles, np.array(decoded)


def time_sdk(masks: np.ndarray, repeats: int, venv: Path) -> tuple[dict, np.ndarray]:
    """The SDK's timings and rles (JSON from the subprocess) and its decoded ``(K, H, W)`` bool masks."""
    with tempfile.TemporaryDirectory() as scratch:
        masks_path, decoded_path = Path(scratch) / "masks.npy", Path(scratch) / "decoded.npy"
        np.save(masks_path, masks)
        completed = subprocess.run(
            [str(venv / "bin" / "python"), "-c", SDK_TIMER, str(masks_path), str(repeats), str(decoded_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(completed.stdout), np.load(decoded_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image height and width in pixels")
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--grid", type=int, default=16, help="side of the random grid that is upsampled")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-studio-venv", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the timings to this JSON file")
    args = parser.parse_args()
    venv = args.label_studio_venv or Path(os.environ.get("ALC_LABEL_STUDIO_VENV", REPO_ROOT / ".venv-labelstudio"))

    labels = smooth_label_map(np.random.default_rng(args.seed), args.size, args.classes, args.grid)
    masks = labels[None] == np.arange(args.classes, dtype=np.uint8)[:, None, None]
    ours_encode, ours_decode, rles, ours_decoded = time_ours(masks, args.repeats)
    sdk, sdk_decoded = time_sdk(masks, args.repeats, venv)
    assert rles == sdk["rles"], "mask_to_rle and the SDK's mask2rle wrote different bytes"
    assert (ours_decoded == sdk_decoded).all() and (ours_decoded == masks).all(), "decoded masks differ"

    rows = {
        "encode": (float(np.median(sdk["encode_seconds"])), float(np.median(ours_encode))),
        "decode": (float(np.median(sdk["decode_seconds"])), float(np.median(ours_decode))),
    }
    present = int(masks.any(axis=(1, 2)).sum())
    print(
        f"{args.classes} class masks ({present} non-empty) of {args.size}x{args.size} px, "
        f"{sum(map(len, rles)):,} rle bytes in all; median of {args.repeats} passes over all masks"
    )
    print("| step | Label Studio SDK (ms) | alc_backend (ms) | SDK / ours |")
    print("|---|---:|---:|---:|")
    for step, (sdk_seconds, our_seconds) in rows.items():
        print(f"| {step} | {1e3 * sdk_seconds:.1f} | {1e3 * our_seconds:.2f} | {sdk_seconds / our_seconds:.1f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "size": args.size,
            "classes": args.classes,
            "non_empty_masks": present,
            "rle_bytes": sum(map(len, rles)),
            "repeats": args.repeats,
            "seconds": {
                "sdk_encode": sdk["encode_seconds"],
                "sdk_decode": sdk["decode_seconds"],
                "ours_encode": ours_encode,
                "ours_decode": ours_decode,
            },
            "median_seconds": {step: {"sdk": pair[0], "ours": pair[1]} for step, pair in rows.items()},
            "ratio_sdk_over_ours": {step: pair[0] / pair[1] for step, pair in rows.items()},
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
