"""Atomic, durable file writes: a temporary file in the target's folder, flushed to disk, then
``os.replace`` and a flush of the folder, so that after a crash or a power loss the file is
either the old one or the complete new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one rename.

    Readers see either the old file or the complete new one, never a half-written file.
    The temporary file keeps ``path``'s suffix so that writers that infer a format from the
    file name (PIL, safetensors) behave as they would on ``path`` itself.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, target)
        _fsync(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fsync(path: str | os.PathLike[str], flags: int) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk."""
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    write_atomically(path, write)
