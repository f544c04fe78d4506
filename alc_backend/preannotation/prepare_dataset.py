"""Superpixels for every image of a data set in our layout (``alc-backend prepare``).

The maps are written to a staging folder, ``.superpixels.partial/``, and moved to
``superpixels/`` once every image has one, so a data set never holds half a superpixel
folder. An interrupted run resumes: the staging folder keeps the maps computed with the same
settings (``source.json`` records them) and only the missing ones are computed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tqdm import tqdm

from alc_backend.atomic import write_text_atomically
from alc_backend.data.dataset import SegmentationDataset, write_superpixel_png
from alc_backend.preannotation.superpixel_sources import SuperpixelConfig, superpixel_maker

SOURCE_FILE = "source.json"
"""File in ``superpixels/`` that records the settings the maps were computed with."""

STAGING_FOLDER = ".superpixels.partial"


def write_superpixels(
    root: str | Path, config: SuperpixelConfig, *, overwrite: bool = False, progress: bool = True
) -> int:
    """Compute ``config``'s superpixels for every image of the data set at ``root``.

    Args:
        root: data set folder (``images/``, ``masks/``, ``classes.txt``, ...).
        config: the superpixel source and its settings.
        overwrite: replace an existing ``superpixels/`` folder (else it is an error).
        progress: show a progress bar (images).

    Returns:
        the number of maps computed in this run (maps resumed from an interrupted run not counted).
    """
    root = Path(root)
    target = root / "superpixels"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass --overwrite to replace it")
    dataset = SegmentationDataset.open(root)
    names = [*dataset.train_names, *dataset.val_names]
    staging = root / STAGING_FOLDER
    described = json.loads(config.fingerprint())
    if staging.is_dir() and _recorded(staging) != described:
        shutil.rmtree(staging)
    staging.mkdir(exist_ok=True)
    write_text_atomically(staging / SOURCE_FILE, json.dumps(described, indent=2, sort_keys=True))
    todo = [name for name in names if not (staging / f"{name}.png").is_file()]
    if todo:
        make = superpixel_maker(config)
        for name in tqdm(todo, desc=f"{config.source} superpixels", unit="image", disable=not progress):
            write_superpixel_png(staging / f"{name}.png", make(dataset.image(name)))
    if target.exists():
        retired = root / ".superpixels.replaced"
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired)
    else:
        os.replace(staging, target)
    return len(todo)


def _recorded(folder: Path) -> object:
    try:
        return json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
