"""The evidence test at training time: which concepts have an effect on engagement, and what to keep for serving.

Runs ``evidence.measure`` over the corpus' candidate concepts (``candidates``) with the
engagement model's own split (screened on its training accounts, confirmed on its held-out
ones), then keeps in a ``suggest.SuggestionBank`` what serving needs to suggest the
qualified ones: the image-concept directions and their co-occurring concepts (only when
an image concept qualified) and the brightness threshold.
"""

from __future__ import annotations

import logging

import numpy as np

from congruence.engagement.candidates import (
    alt_candidates,
    anchors,
    brightness_candidates,
    image_candidates,
    read_brightness,
)
from congruence.engagement.concepts import ConceptBank, concept_bank
from congruence.engagement.data import EngagementData
from congruence.engagement.evidence import Candidates, measure
from congruence.engagement.suggest import SuggestionBank

logger = logging.getLogger(__name__)


def _candidates(
    data: EngagementData, train: np.ndarray, bank: ConceptBank | None, bright: np.ndarray
) -> tuple[list[Candidates], float | None]:
    found: list[Candidates] = []
    threshold = None
    by_brightness = brightness_candidates(bright, train)
    if by_brightness is not None:
        found.append(by_brightness[0])
        threshold = by_brightness[1]
    if bank is not None and (c := image_candidates(bank, data.features, bright)) is not None:
        found.append(c)
    if (c := alt_candidates(data.features)) is not None:
        found.append(c)
    return found, threshold


def measure_suggestions(
    data: EngagementData, train_rows: np.ndarray, test_rows: np.ndarray, bank: ConceptBank | None, seed: int = 0
) -> SuggestionBank:
    """The evidence over ``data``'s posts (``train_rows`` and ``test_rows``: posts of disjoint
    accounts) and what serving needs; ``bank``: the image encoder's concepts, None when it names none."""
    train, test = np.zeros(len(data), bool), np.zeros(len(data), bool)
    train[train_rows], test[test_rows] = True, True
    f = data.features
    files = data.image_files or (None,) * len(data)
    bright = read_brightness([p if has else None for p, has in zip(files, f.image_mask, strict=True)])
    candidates, threshold = _candidates(data, train, bank, bright)
    evidence = measure(candidates, data.z, data.groups, train, test, seed=seed)
    image = [e.name for e in evidence.qualified if e.kind == "image"]
    kept_bank, kept_anchors = None, {}
    if image and bank is not None:
        presence = bank.presence(f.image[f.image_mask])
        kept_bank = bank
        kept_anchors = {name: anchors(presence, bank.names.index(name)) for name in image}
    logger.info(
        "engagement evidence: %d of %d tested concepts qualify (%d screened)",
        len(evidence.qualified),
        len(evidence.effects),
        evidence.screened,
    )
    return SuggestionBank(evidence, kept_bank, kept_anchors, threshold)


def image_bank(image_encoder: str, device: str, data: EngagementData) -> ConceptBank | None:
    """The image encoder's concepts when some post has an image (loading them costs seconds)."""
    if not data.features.image_mask.any():
        return None
    return concept_bank(image_encoder, device)
