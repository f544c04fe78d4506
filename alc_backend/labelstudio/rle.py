"""Label Studio's brush RLE: the bit-packed run-length format of thi.ng ``rle-pack``.

A stream is a sequence of bits, most significant bit of each byte first:

- a 32-bit count of values, a 5-bit ``word size - 1`` and four 4-bit ``rle size - 1`` fields (53 bits);
- then blocks until ``count`` values are decoded: 1 flag bit (1 = a run of one repeated word, 0 = a literal
  block), a 2-bit index into the four rle sizes, ``length - 1`` in that many bits, then one word (a run) or
  ``length`` words (a literal block);
- then zero bits up to a byte boundary.

A brush mask of height H and width W is stored as H × W × 4 byte values (RGBA per pixel, row-major); Label
Studio's encoders write the mask value (0 or 255) into all four channels and decoders read the alpha channel.

The encoder here writes exactly what ``label_studio_sdk.converter.brush.encode_rle`` writes: word size 8, rle
sizes (3, 4, 8, 16), a single value as a literal block of length 1, runs of 2..256 with the smallest size that
fits, longer runs as blocks of the 16-bit size holding 65,536 values each but the last, and ``8 - bits % 8``
padding bits (a whole zero byte when the stream is already aligned). The decoder reads any valid stream,
including the other word sizes, rle sizes and literal blocks that the Label Studio frontend writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WORD_SIZE = 8
RLE_SIZES = (3, 4, 8, 16)
HEADER_BITS = 32 + 5 + 4 * 4
CHANNELS = 4
"""Byte values per pixel in a brush mask (RGBA)."""

_LONGEST_BLOCK = 2 ** RLE_SIZES[-1]
_SIZE_LIMITS = np.array([2**size for size in RLE_SIZES[:-1]])
"""Longest run each of the first three rle sizes can hold: 8, 16, 256."""


class RLEError(ValueError):
    """A brush RLE that cannot be decoded, or that does not fit the expected mask."""


def encode_rle(values: np.ndarray) -> list[int]:
    """Encode ``(N,)`` uint8 values as a Label Studio RLE: a list of bytes 0..255.

    Byte for byte the output of the SDK's ``encode_rle(values)``; unlike the SDK, an empty array is encoded
    too (a header that declares 0 values).
    """
    if values.ndim != 1 or values.dtype != np.uint8:
        raise ValueError(f"encode_rle takes a 1-D uint8 array, got shape {values.shape} and dtype {values.dtype}")
    lengths, run_values = _runs(values)
    return _pack(values.size, lengths, run_values)


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """Encode an ``(H, W)`` bool mask as a brush RLE of H × W × 4 values 0 / 255.

    Byte for byte the output of the SDK's ``mask2rle(mask.astype(np.uint8) * 255)``.
    """
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(f"mask_to_rle takes an (H, W) bool mask, got shape {mask.shape} and dtype {mask.dtype}")
    lengths, run_values = _runs(mask.ravel().view(np.uint8))
    return _pack(mask.size * CHANNELS, lengths * CHANNELS, run_values * np.uint8(255))


def decode_rle(rle: Sequence[int]) -> np.ndarray:
    """Decode any rle-pack stream (a list of bytes) into its ``(N,)`` uint8 values.

    Raises RLEError for an empty or truncated stream, bytes outside 0..255 and values wider than a byte.
    """
    return _decode(_as_bytes(rle), expected_count=None)


def rle_to_mask(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """Decode a brush RLE into its ``(height, width)`` bool mask: alpha channel > 0.

    Raises RLEError as ``decode_rle`` does, and when the stream does not hold height × width × 4 values.
    """
    if height < 1 or width < 1:
        raise ValueError(f"a mask needs a positive height and width, got {height}x{width} (height x width)")
    values = _decode(_as_bytes(rle), expected_count=height * width * CHANNELS)
    return values[CHANNELS - 1 :: CHANNELS].reshape(height, width) > 0


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of equal values in ``(N,)`` uint8 values: lengths ``(R,)`` int64 and values ``(R,)`` uint8."""
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], starts))
    lengths = np.diff(np.concatenate((starts, [values.size])))
    return lengths, values[starts]


def _pack(count: int, lengths: np.ndarray, run_values: np.ndarray) -> list[int]:
    """Bytes of the stream for runs ``(R,)`` of ``lengths`` (summing to ``count``) and uint8 ``run_values``."""
    if count >= 2**32:
        raise ValueError(f"an rle holds fewer than 2**32 values, got {count}")
    # Runs longer than 256 take the 16-bit size and are cut into blocks of 65,536 values, the remainder last.
    long_run = lengths > _SIZE_LIMITS[-1]
    pieces = np.where(long_run, -(-lengths // _LONGEST_BLOCK), 1)
    run_of_block = np.repeat(np.arange(lengths.size), pieces)
    piece = np.arange(run_of_block.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    block_length = np.minimum(lengths[run_of_block] - piece * _LONGEST_BLOCK, _LONGEST_BLOCK)
    block_long = long_run[run_of_block]
    # A single value is a literal block of length 1; everything else is a run.
    flag = (block_long | (block_length > 1)).astype(np.uint64)
    size_index = np.where(block_long, 3, np.searchsorted(_SIZE_LIMITS, block_length)).astype(np.uint64)
    block_length = block_length.astype(np.uint64)
    size_bits = np.array(RLE_SIZES, np.uint64)[size_index]
    width = 3 + size_bits + WORD_SIZE  # bits per block, at most 27
    code = (
        (flag << (width - 1))
        | (size_index << (width - 3))
        | ((block_length - 1) << np.uint64(WORD_SIZE))
        | run_values[run_of_block].astype(np.uint64)
    )
    # Left-align every block in 32 bits, unpack them and keep each block's first ``width`` bits.
    aligned = (code << (32 - width)).astype(">u4")
    block_bits = np.unpackbits(aligned.view(np.uint8)).reshape(-1, 32)
    body = block_bits[np.arange(32) < width[:, None]]
    header = np.uint64(count) << np.uint64(21) | np.uint64(WORD_SIZE - 1) << np.uint64(16)
    for position, size in enumerate(RLE_SIZES):
        header |= np.uint64(size - 1) << np.uint64(12 - 4 * position)
    header_bits = np.unpackbits((np.array([header]) << np.uint64(64 - HEADER_BITS)).astype(">u8").view(np.uint8))
    padding = 8 - (HEADER_BITS + body.size) % 8
    bits = np.concatenate((header_bits[:HEADER_BITS], body, np.zeros(padding, np.uint8)))
    return np.packbits(bits).tolist()


def _as_bytes(rle: Sequence[int]) -> bytes:
    """Check that ``rle`` is a non-empty flat sequence of integers 0..255 and return it as bytes."""
    try:
        array = np.asarray(rle)
    except ValueError as error:
        raise RLEError(f"the rle must be a flat list of integers 0..255: {error}") from None
    if array.size == 0:
        raise RLEError("the rle is empty")
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise RLEError(
            f"the rle must be a flat list of integers 0..255, got an array of {array.dtype} and shape {array.shape}"
        )
    outside = np.flatnonzero((array < 0) | (array > 255))
    if outside.size:
        raise RLEError(f"rle byte {outside[0]} is {array[outside[0]]}, outside 0..255")
    return array.astype(np.uint8).tobytes()


class _BitReader:
    """Reads big-endian bit fields of 1..57 bits from bytes, most significant bit first."""

    def __init__(self, data: bytes) -> None:
        self._data = data + bytes(8)  # every read looks at 8 bytes
        self._bits = np.unpackbits(np.frombuffer(data, np.uint8))
        self.size = 8 * len(data)
        self.position = 0

    def read(self, nbits: int) -> int:
        """The next ``nbits`` bits as an unsigned integer."""
        if self.position + nbits > self.size:
            raise self._truncated(nbits)
        start = self.position >> 3
        window = int.from_bytes(self._data[start : start + 8], "big")
        value = (window >> (64 - (self.position & 7) - nbits)) & ((1 << nbits) - 1)
        self.position += nbits
        return value

    def read_words(self, count: int, nbits: int) -> np.ndarray:
        """The next ``count`` words of ``nbits`` bits each: ``(count,)`` uint64."""
        if self.position + count * nbits > self.size:
            raise self._truncated(count * nbits)
        bits = self._bits[self.position : self.position + count * nbits].reshape(count, nbits)
        self.position += count * nbits
        return bits.astype(np.uint64) @ (np.uint64(1) << np.arange(nbits - 1, -1, -1, dtype=np.uint64))

    def _truncated(self, nbits: int) -> RLEError:
        return RLEError(
            f"the rle is truncated: its {self.size // 8} bytes end inside the {nbits}-bit field at bit {self.position}"
        )


def _decode(data: bytes, expected_count: int | None) -> np.ndarray:
    """Values ``(N,)`` uint8 of the stream ``data``; RLEError unless N == ``expected_count`` (when given)."""
    reader = _BitReader(data)
    count = reader.read(32)
    word_size = reader.read(5) + 1
    rle_sizes = [reader.read(4) + 1 for _ in range(4)]
    if expected_count is not None and count != expected_count:
        raise RLEError(f"the rle holds {count} values but the mask needs {expected_count} (height x width x 4)")
    # Every block takes at least 3 + min(rle_sizes) + word_size bits and yields at most 2**max(rle_sizes) values.
    capacity = (reader.size - HEADER_BITS) // (3 + min(rle_sizes) + word_size) * 2 ** max(rle_sizes)
    if count > capacity:
        raise RLEError(
            f"the rle is truncated: it declares {count} values but its {len(data)} bytes can hold at most {capacity}"
        )
    lengths: list[int] = []
    values: list[int] = []
    decoded = 0
    while decoded < count:
        is_run, size_index = divmod(reader.read(3), 4)
        if is_run:
            # The length field and the word in one read: ``(length - 1) << word_size | word``.
            fields = reader.read(rle_sizes[size_index] + word_size)
            length = min((fields >> word_size) + 1, count - decoded)
            lengths.append(length)
            values.append(fields & ((1 << word_size) - 1))
        else:
            length = reader.read(rle_sizes[size_index]) + 1
            words = reader.read_words(length, word_size)[: count - decoded]
            length = words.size
            lengths.extend([1] * length)
            values.extend(words.tolist())
        decoded += length
    if values and max(values) > 255:
        raise RLEError(f"the rle holds the value {max(values)}, wider than a byte (word size {word_size})")
    return np.repeat(np.array(values, np.uint8), lengths)
