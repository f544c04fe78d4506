"""A semantic-segmentation data set on disk (VOC layout), with its PNG readers and writers.

Layout under a root folder::

    images/NAME.png|.jpg|.jpeg   RGB image (grey or RGBA is converted to RGB)
    masks/NAME.png               ground truth: class index per pixel ('P' or 'L' PNG), 255 = ignore
    pseudo/NAME.png              optional folder: initial noisy labels, same encoding
    superpixels/NAME.png         optional folder: 16-bit (or 8-bit) superpixel ids
    classes.txt                  one class name per line (blank lines ignored); index = line order
    val.txt                      optional: names (no extension) of held-out images, one per line

:meth:`SegmentationDataset.open` checks the layout (folders, file names, classes) without decoding
any image; each reader checks its file when it reads it (it decodes, its size matches the image,
its label values are known classes). Every problem raises :class:`DatasetError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from alc_backend import IGNORE_INDEX
from alc_backend.atomic import write_atomically
from alc_backend.engine.superpixels import relabel_sequential

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Image file suffixes that :meth:`SegmentationDataset.open` recognises (also in upper case)."""

MAX_CLASSES = 255
"""Labels are 8-bit and 255 is :data:`IGNORE_INDEX`, so classes are 0..254 at most."""

MAX_SUPERPIXEL_ID = 65535
"""Largest id a 16-bit superpixel PNG can hold."""

_IMAGE_FILE_SUFFIXES = IMAGE_SUFFIXES + tuple(suffix.upper() for suffix in IMAGE_SUFFIXES)
_LABEL_MODES = ("L", "P")
_SUPERPIXEL_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I")
_LISTED = 5  # how many offending names or values an error message lists
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class DatasetError(ValueError):
    """A data-set file or folder is missing, malformed or inconsistent; the message names it."""


@dataclass(frozen=True)
class SegmentationDataset:
    """A checked data-set layout; arrays are read (and checked) lazily by the reader methods.

    Names are file names without extension; ``train_names`` and ``val_names`` are sorted and
    together hold every image in ``images/``.
    """

    root: Path
    classes: tuple[str, ...]
    train_names: tuple[str, ...]
    val_names: tuple[str, ...]
    has_pseudo: bool
    has_superpixels: bool

    @classmethod
    def open(cls, root: str | Path) -> SegmentationDataset:
        """Check the layout under ``root`` and return the data set.

        Cheap: lists folders and reads the two text files, decodes no image.
        Raises DatasetError when a folder or file is missing or the text files are invalid.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"data set root {root} does not exist or is not a folder")
        names = _image_names(root / "images")
        _check_label_folder(root / "masks", names, what="mask")
        classes = read_class_names(root / "classes.txt")
        val = _read_val(root / "val.txt", names)
        has_pseudo = (root / "pseudo").is_dir()
        if has_pseudo:
            _check_label_folder(root / "pseudo", names, what="pseudo-label")
        has_superpixels = (root / "superpixels").is_dir()
        if has_superpixels:
            _check_label_folder(root / "superpixels", names, what="superpixel map")
        return cls(
            root=root,
            classes=classes,
            train_names=tuple(sorted(set(names) - val)),
            val_names=tuple(sorted(val)),
            has_pseudo=has_pseudo,
            has_superpixels=has_superpixels,
        )

    @property
    def num_classes(self) -> int:
        """Number of classes C; labels are 0..C-1 or IGNORE_INDEX."""
        return len(self.classes)

    def image(self, name: str) -> np.ndarray:
        """The image ``name`` as an (H, W, 3) uint8 RGB array (grey, palette, RGBA converted)."""
        path = self._image_path(name)
        image = _decode(path, self._shown(path))
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.array(image, dtype=np.uint8)

    def mask(self, name: str) -> np.ndarray:
        """Ground truth of ``name``: (H, W) uint8 class indices 0..C-1, or IGNORE_INDEX."""
        return self._labels("masks", name)

    def pseudo(self, name: str) -> np.ndarray:
        """Initial noisy labels of ``name``: (H, W) uint8, encoded and checked like :meth:`mask`.

        Raises DatasetError when the data set has no ``pseudo/`` folder or the file is missing.
        """
        if not self.has_pseudo:
            raise DatasetError(f"data set {self.root} has no pseudo/ folder (no pseudo-labels)")
        return self._labels("pseudo", name)

    def superpixels(self, name: str) -> np.ndarray | None:
        """Superpixels of ``name``: (H, W) int32 ids 0..K-1, or None without ``superpixels/``.

        The stored ids are relabelled to 0..K-1 in order of first appearance in raster order.
        """
        if not self.has_superpixels:
            return None
        path = self.root / "superpixels" / f"{name}.png"
        shown = self._shown(path)
        ids = _read_superpixel_ids(path, shown)
        self._check_size(ids, shown, name)
        return relabel_sequential(ids)

    def _labels(self, folder: str, name: str) -> np.ndarray:
        """Read and check ``folder/name.png`` as labels: (H, W) uint8."""
        path = self.root / folder / f"{name}.png"
        shown = self._shown(path)
        labels = _read_labels(path, shown)
        self._check_size(labels, shown, name)
        _check_label_values(labels, shown, self.num_classes)
        return labels

    def _image_path(self, name: str) -> Path:
        """The file of image ``name``; DatasetError when there is none."""
        for suffix in _IMAGE_FILE_SUFFIXES:
            path = self.root / "images" / f"{name}{suffix}"
            if path.is_file():
                return path
        raise DatasetError(f"no image named {name!r} in {self.root / 'images'}")

    def _check_size(self, array: np.ndarray, shown: str, name: str) -> None:
        """DatasetError unless ``array`` (H, W) has the size of image ``name``."""
        image_path = self._image_path(name)
        image_shown = self._shown(image_path)
        try:
            with Image.open(image_path) as image:
                width, height = image.size
        except _DECODE_ERRORS as error:
            raise DatasetError(f"{image_shown} cannot be decoded as an image: {error}") from error
        if array.shape[:2] != (height, width):
            raise DatasetError(
                f"{shown} is {array.shape[1]}×{array.shape[0]} (W×H) but {image_shown} is {width}×{height}"
            )

    def _shown(self, path: Path) -> str:
        """``path`` relative to the root, as written in error messages (e.g. ``masks/a.png``)."""
        return path.relative_to(self.root).as_posix()


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label PNG ('P' or 'L' mode) as (H, W) uint8 values; DatasetError if unreadable."""
    return _read_labels(Path(path), str(path))


def read_superpixel_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a superpixel PNG (16- or 8-bit) as (H, W) int32 ids 0..K-1 in raster order.

    Raises DatasetError if the file is missing, undecodable or not single-channel.
    """
    return relabel_sequential(_read_superpixel_ids(Path(path), str(path)))


def write_label_png(path: str | os.PathLike[str], labels: np.ndarray) -> None:
    """Write (H, W) integer labels with values 0..255 atomically as an 8-bit greyscale ('L') PNG."""
    labels = np.asarray(labels)
    _check_integer_map(labels, "labels", 255)
    pixels = labels.astype(np.uint8)
    write_atomically(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


def write_superpixel_png(path: str | os.PathLike[str], ids: np.ndarray) -> None:
    """Write (H, W) integer superpixel ids 0..65535 atomically as a 16-bit greyscale PNG.

    Raises ValueError when an id is negative or ≥ 65536.
    """
    ids = np.asarray(ids)
    _check_integer_map(ids, "superpixel ids", MAX_SUPERPIXEL_ID)
    pixels = ids.astype(np.uint16)
    write_atomically(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


def _image_names(folder: Path) -> list[str]:
    """Sorted image names (file names without suffix) in ``folder``; DatasetError if none."""
    return list(image_files(folder))


def image_files(folder: Path) -> dict[str, Path]:
    """The image files in ``folder`` by name (file name without suffix), sorted by name; DatasetError if none.

    Hidden files (leading dot, e.g. unfinished atomic writes) and other suffixes are skipped; two
    files of one name (``a.png`` and ``a.jpg``) are a DatasetError.
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder} does not exist (expected images/NAME.png|.jpg|.jpeg)")
    files: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        if path.suffix in _IMAGE_FILE_SUFFIXES and not path.name.startswith(".") and path.is_file():
            files.setdefault(path.stem, []).append(path)
    if not files:
        raise DatasetError(f"{folder} holds no images (.png, .jpg or .jpeg files)")
    clashes = sorted(" and ".join(sorted(path.name for path in found)) for found in files.values() if len(found) > 1)
    if clashes:
        raise DatasetError(
            f"{folder} holds several files for the same image name: {_listing(clashes)}; each image name must be unique"
        )
    return {name: files[name][0] for name in sorted(files)}


def _check_label_folder(folder: Path, names: Iterable[str], what: str) -> None:
    """DatasetError unless ``folder`` exists and holds ``NAME.png`` for every image name."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} does not exist (expected {folder.name}/NAME.png)")
    present = {path.name for path in folder.iterdir()}
    missing = [name for name in names if f"{name}.png" not in present]
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) have no {what} in {folder}: {_listing(missing)} (expected {folder.name}/NAME.png)"
        )


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names from ``classes.txt``: one per non-blank line, 2..MAX_CLASSES, unique."""
    if not path.is_file():
        raise DatasetError(f"{path} does not exist (expected one class name per line)")
    classes = tuple(_text_lines(path))
    if len(classes) < 2:
        raise DatasetError(f"{path} lists {len(classes)} class(es); a data set needs at least 2")
    if len(classes) > MAX_CLASSES:
        raise DatasetError(
            f"{path} lists {len(classes)} classes; at most {MAX_CLASSES} fit in 8-bit labels ({IGNORE_INDEX} = ignore)"
        )
    repeated = sorted({name for name in classes if classes.count(name) > 1})
    if repeated:
        raise DatasetError(f"{path} lists these class names more than once: {_listing(repeated)}")
    return classes


def _read_val(path: Path, names: list[str]) -> set[str]:
    """Names listed in ``val.txt`` (empty when there is no such file); all must be image names."""
    if not path.is_file():
        return set()
    val = set(_text_lines(path))
    unknown = sorted(val - set(names))
    if unknown:
        raise DatasetError(f"{path} names images that are not in images/: {_listing(unknown)}")
    return val


def _text_lines(path: Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file, stripped of surrounding white space."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} cannot be read as UTF-8 text: {error}") from error
    return [line.strip() for line in text.splitlines() if line.strip()]


def _decode(path: Path, shown: str) -> Image.Image:
    """Open and fully decode ``path``; DatasetError naming ``shown`` if it is missing or corrupt."""
    if not path.is_file():
        raise DatasetError(f"{shown} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
    except _DECODE_ERRORS as error:
        raise DatasetError(f"{shown} cannot be decoded as an image: {error}") from error
    return image


def _read_labels(path: Path, shown: str) -> np.ndarray:
    """Decode a single-channel label PNG as (H, W) uint8; DatasetError for colour images."""
    image = _decode(path, shown)
    if image.mode in _LABEL_MODES:
        return np.array(image, dtype=np.uint8)
    if len(image.getbands()) > 1:
        raise DatasetError(
            f"{shown} is a colour image (mode {image.mode}); label files must hold one class "
            "index per pixel, e.g. a palette ('P') or greyscale ('L') PNG"
        )
    raise DatasetError(
        f"{shown} has image mode {image.mode}; label files must be 8-bit palette ('P') or "
        "greyscale ('L') PNGs of class indices"
    )


def _read_superpixel_ids(path: Path, shown: str) -> np.ndarray:
    """Decode a single-channel superpixel PNG as its stored (H, W) integer ids."""
    image = _decode(path, shown)
    if image.mode not in _SUPERPIXEL_MODES:
        raise DatasetError(
            f"{shown} has image mode {image.mode}; superpixel maps must be single-channel 16-bit or 8-bit PNGs "
            "of superpixel ids"
        )
    return np.array(image)


def _check_label_values(labels: np.ndarray, shown: str, num_classes: int) -> None:
    """DatasetError if ``labels`` (uint8) holds a value ≥ num_classes other than IGNORE_INDEX."""
    counts = np.bincount(labels.ravel(), minlength=256)
    counts[IGNORE_INDEX] = 0
    bad = np.flatnonzero(counts[num_classes:]) + num_classes
    if bad.size:
        raise DatasetError(
            f"{shown} holds label values {_listing([str(v) for v in bad])} but classes.txt lists "
            f"{num_classes} classes (0..{num_classes - 1}); {IGNORE_INDEX} = ignore"
        )


def _check_integer_map(array: np.ndarray, what: str, largest: int) -> None:
    """ValueError unless ``array`` is a 2-D integer array with values in 0..largest."""
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must be a 2-D integer array, got {array.dtype} {array.shape}")
    if array.size and (array.min() < 0 or array.max() > largest):
        raise ValueError(f"{what} must lie in 0..{largest}, got values {array.min()}..{array.max()}")


def _listing(items: list[str]) -> str:
    """The first few ``items`` joined by commas, with '…' when some are left out."""
    shown = ", ".join(items[:_LISTED])
    return shown + (", …" if len(items) > _LISTED else "")
