"""What a corpus' posts show, as candidate concepts for the evidence test (``evidence``), in three kinds.

- ``alt``: Instagram's automatic alt text ("Image may contain: 2 people, outdoor"), read
  from the post features (``features.ALT_CONCEPTS`` and people counts); known on posts that
  have one. An uploaded image has no alt text, so these are measured but never suggested.
- ``image``: ImageNet concepts an image shows (``concepts.ConceptBank``, top 5), on posts
  with an image; brightness is held fixed where it is known, so that a concept that only
  comes with brighter pictures does not pass for an effect of its own.
- ``property``: brightness (mean luminance 0..1), read from the image files; a post is
  *bright* at or above the training images' median.

Co-occurrence (``anchors``) says which concepts can plausibly be added to an image: the
concepts the corpus shows together with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from congruence.engagement.concepts import ConceptBank
from congruence.engagement.data import PostFeatures
from congruence.engagement.evidence import Candidates
from congruence.engagement.features import ALT_CONCEPTS, FEATURES

logger = logging.getLogger(__name__)
BRIGHTNESS = "brightness"
THUMB = 64  # brightness is read from a thumbnail: a mean needs no detail
MIN_ANCHOR_POSTS = 5  # an anchor concept must be shown by this many posts with an image
MIN_COOCCUR = 0.2  # ... and the suggested concept by this share of them
_ALT_COLUMNS = {
    "people": "alt_some_people",
    "1 person": "alt_people_1",
    "2 people": "alt_people_2",
    "3 or more people": "alt_people_3plus",
    **{c: f"alt_{c.replace(' ', '_')}" for c in ALT_CONCEPTS},
}


def image_brightness(img: Image.Image) -> float:
    """Mean luminance of the image, 0 (black) to 1 (white)."""
    small = img.convert("L")
    small.thumbnail((THUMB, THUMB))
    return float(np.asarray(small, np.float64).mean()) / 255.0


def read_brightness(paths: Sequence[str | None]) -> np.ndarray:
    """(n,) float64 brightness of the image files, NaN where there is none or it cannot be read."""
    out = np.full(len(paths), np.nan)
    for i, path in enumerate(paths):
        if not path:
            continue
        try:
            with Image.open(path) as img:
                img.draft("L", (THUMB, THUMB))  # JPEG: decode at a fraction of the size
                out[i] = image_brightness(img)
        except (OSError, ValueError) as e:
            logger.warning("brightness of %s not read: %s", path, e)
    return out


def alt_candidates(f: PostFeatures) -> Candidates | None:
    """People and the alt-text concepts, on posts with an "Image may contain: ..." description."""
    cols = [FEATURES.index(c) for c in _ALT_COLUMNS.values()]
    rows = np.asarray(f.hand_mask)[:, cols[0]]
    if not rows.any():
        return None
    return Candidates("alt", list(_ALT_COLUMNS), np.asarray(f.hand)[:, cols] > 0.5, rows)


def brightness_candidates(bright: np.ndarray, train: np.ndarray) -> tuple[Candidates, float] | None:
    """ "Bright" (at or above the training images' median brightness) and that threshold."""
    known = np.isfinite(bright)
    if not (known & train).any():
        return None
    threshold = float(np.median(bright[known & train]))
    x = (np.nan_to_num(bright, nan=-1.0) >= threshold)[:, None]
    return Candidates("property", [BRIGHTNESS], x, known), threshold


def image_candidates(bank: ConceptBank, f: PostFeatures, bright: np.ndarray) -> Candidates | None:
    """The concepts each image shows; brightness (standardised) held fixed when every image has it."""
    rows = np.asarray(f.image_mask, bool).copy()
    if not rows.any():
        return None
    x = np.zeros((len(rows), len(bank.names)), bool)
    x[rows] = bank.presence(f.image[rows])
    known = np.isfinite(bright)
    if not (known | ~rows).all():
        logger.info(
            "brightness unknown for %d images: image concepts are tested without holding it fixed",
            int((rows & ~known).sum()),
        )
        return Candidates("image", list(bank.names), x, rows)
    b = np.nan_to_num(bright)
    sd = float(b[rows].std()) or 1.0
    return Candidates("image", list(bank.names), x, rows, ((b - b[rows].mean()) / sd)[:, None])


def anchors(presence: np.ndarray, concept: int) -> list[tuple[int, float]]:
    """(anchor, share) for every other concept shown by ``MIN_ANCHOR_POSTS`` or more images of which
    at least ``MIN_COOCCUR`` also show ``concept``; ``presence``: (n, c) bool over images. Best first."""
    shown = presence.sum(0)
    together = presence[presence[:, concept]].sum(0)
    share = together / np.maximum(shown, 1)
    ok = (shown >= MIN_ANCHOR_POSTS) & (share >= MIN_COOCCUR)
    ok[concept] = False
    return sorted(((int(d), float(share[d])) for d in np.flatnonzero(ok)), key=lambda a: (-a[1], a[0]))
