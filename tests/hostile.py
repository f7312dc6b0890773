"""Hostile files for tests: images that are small on disk and huge once decoded."""

from __future__ import annotations

import struct
import zlib


def big_png(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of width x height pixels, a few KB to a few hundred KB on disk,
    written row by row so the test itself never holds the decoded image."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
