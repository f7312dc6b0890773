"""Seeded photo variants: variant 0 is the photo itself, others a crop, flip and colour jitter.

The variants of one source photo are distinct image files (distinct content hashes, so
the product encodes each), and which files share a source photo is recorded in the posts,
so that image-disjointness is checked by source photo, not by file.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps


def variant_path(photo: str, variant: int, side: str) -> str:
    """Where variant ``variant`` of ``photo`` ('cls/name.jpg') lives, relative to the corpus."""
    label, name = photo.split("/", 1)
    return f"images/{side}/{label}/{Path(name).stem}_a{variant}.jpg"


def _random_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    """A crop of 55-100 % of the area with aspect ratio 3:4 to 4:3 (torchvision's
    RandomResizedCrop, milder: the class must stay recognisable)."""
    w, h = img.size
    area = w * h * rng.uniform(0.55, 1.0)
    ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    cw = max(16, min(w, round(math.sqrt(area * ratio))))
    ch = max(16, min(h, round(math.sqrt(area / ratio))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def augment(img: Image.Image, rng: random.Random) -> Image.Image:
    img = _random_crop(img, rng)
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.1:
        img = ImageOps.grayscale(img).convert("RGB")
    return img


def _fit(img: Image.Image, short_side: int) -> Image.Image:
    w, h = img.size
    scale = short_side / min(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


def write_variant(photos_dir: Path, photo: str, variant: int, out: Path, short_side: int, seed: int) -> None:
    """Write the JPEG of ``variant`` of ``photo`` to ``out``; same inputs, same bytes."""
    rng = random.Random(f"augment:{photo}:{variant}:{seed}")
    with Image.open(photos_dir / photo) as src:
        img = src.convert("RGB")
    if variant:
        img = augment(img, rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    _fit(img, short_side).save(out, format="JPEG", quality=rng.randint(82, 92) if variant else 90)
