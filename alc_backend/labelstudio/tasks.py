"""Label Studio tasks for a folder of images (and noisy masks) that Label Studio serves.

The folder holds ``images/NAME.png|.jpg|.jpeg`` and, optionally, ``pseudo/NAME.png`` (8-bit class
indices, 255 = no class). Each task names its image and, when there is one, its noisy mask, as
URLs under one prefix: ``/data/local-files/?d=street`` when Label Studio serves the folder
``street`` as local files, or any http(s) address the folder is published at.
"""

from __future__ import annotations

from pathlib import Path

from alc_backend.data.dataset import image_files


def folder_tasks(folder: Path, url_prefix: str, pseudo_key: str = "pseudo_mask") -> list[dict[str, str]]:
    """One task per image in ``folder/images``, sorted by name.

    A task is ``{"image": PREFIX/images/FILE, "name": NAME}`` plus ``pseudo_key: PREFIX/pseudo/NAME.png``
    when that mask exists, where PREFIX is ``url_prefix`` without a trailing ``/``. Raises DatasetError
    when ``folder/images`` is missing or holds no images.
    """
    prefix = url_prefix.rstrip("/")
    tasks = []
    for name, image in image_files(folder / "images").items():
        task = {"image": f"{prefix}/images/{image.name}", "name": name}
        if (folder / "pseudo" / f"{name}.png").is_file():
            task[pseudo_key] = f"{prefix}/pseudo/{name}.png"
        tasks.append(task)
    return tasks
