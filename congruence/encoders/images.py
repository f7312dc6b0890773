"""Decoding images safely: size and pixel limits, truncation and non-images refused."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from congruence.core.errors import InvalidInput, TooLarge, UnsupportedMedia
from congruence.core.hashes import sha256_bytes

MAX_PIXELS = 40_000_000  # a 20k x 20k image is refused before it is decoded
MAX_BYTES = 50 * 1024 * 1024
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}


def decode_image(data: bytes, *, name: str = "image", draft_size: int | None = None) -> Image.Image:
    """Decode ``data`` to an RGB image, or raise InvalidInput naming ``name`` and why.

    draft_size lets the JPEG decoder scale down while decoding (much faster for large
    photos when the encoder needs only ~224 px).
    """
    if len(data) > MAX_BYTES:
        raise TooLarge(f"{name}: file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise UnsupportedMedia(f"{name}: unsupported image format {img.format}")
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise TooLarge(f"{name}: {w}x{h} pixels is more than the limit of {MAX_PIXELS}")
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            return img.convert("RGB")
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise UnsupportedMedia(f"{name}: not an image (JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge(f"{name}: too many pixels (decompression bomb)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InvalidInput(f"{name}: image cannot be decoded ({e})") from None


def read_image(path: Path, *, draft_size: int | None = None) -> tuple[Image.Image, str]:
    """(RGB image, sha256 of the file bytes) for a file on disk."""
    data = path.read_bytes()
    return decode_image(data, name=path.name, draft_size=draft_size), sha256_bytes(data)
