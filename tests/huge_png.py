"""Valid PNGs of many pixels that take little memory to write: what an image bomb looks like."""

from __future__ import annotations

import struct
import zlib


def huge_png(width: int, height: int) -> bytes:
    """A greyscale PNG of ``width`` x ``height`` zeros, compressed row by row (a few MB at 20000²)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(1)
    row = b"\x00" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
