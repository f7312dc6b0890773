"""``congruence screen``: flag posts by brand-safety category, incrementally.

Per post, from what ingest already stored (nothing is encoded again):
- caption words: ``lexicon.caption_words`` (evidence: the word);
- caption meaning: the cosine of the stored caption embedding with each category's short
  descriptions (``categories``), flagged at ``CAPTION_MIN_COS`` (evidence: the description);
- image: the image encoder's ImageNet classes (``images``), a category's class flagged when
  it is among the image's top 5 with probability >= ``IMAGE_MIN_PROB`` (evidence: the class).

Only posts not screened yet by this version of the screen, or whose caption or image changed,
are read; a post whose embeddings are not stored yet waits for the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version

import numpy as np

from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet, ModelIds
from congruence.safety import lexicon
from congruence.safety.categories import CATEGORIES
from congruence.safety.images import ImageClassifier, image_classifier
from congruence.store import flags as flag_store
from congruence.store.flags import Flag, Pending
from congruence.store.records import Store

logger = logging.getLogger(__name__)
CAPTION_MIN_COS = 0.5
IMAGE_MIN_PROB = 0.25
IMAGE_TOP = 5
CHUNK = 2000


def screen_version(settings: Settings) -> str:
    """What the flags depend on (word lists, descriptions, classes, thresholds, encoders): a
    change screens every post again."""
    doc = {
        "words": lexicon.OWN_WORDS,
        "hate": sorted(lexicon.HATE_PROFANITY),
        "ignored": lexicon.IGNORED,
        "matching": lexicon.MATCHING,
        "glin": version("glin-profanity"),
        "categories": {n: asdict(c) for n, c in CATEGORIES.items()},
        "thresholds": [CAPTION_MIN_COS, IMAGE_MIN_PROB, IMAGE_TOP],
        "encoders": [settings.image_encoder, settings.text_encoder],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ScreenReport:
    screened: int
    flagged: int
    waiting: int
    by_category: dict[str, int]
    version: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Screener:
    """Flags one chunk of posts at a time; loads the text encoder and the image classifier
    on first use."""

    def __init__(self, settings: Settings, ids: ModelIds | None = None):
        self.settings, self.ids = settings, ids
        self._descriptions: tuple[list[str], list[str], np.ndarray] | None = None
        self._classifier: ImageClassifier | None | bool = False

    def descriptions(self) -> tuple[list[str], list[str], np.ndarray]:
        """(category of each description, the descriptions, (n, d_text) their embeddings)."""
        if self._descriptions is None:
            cats = [c.name for c in CATEGORIES.values() for _ in c.descriptions]
            texts = [d for c in CATEGORIES.values() for d in c.descriptions]
            self._descriptions = cats, texts, EncoderSet(self.settings).text.encode(texts, normalize=True)
        return self._descriptions

    def classifier(self) -> ImageClassifier | None:
        if self._classifier is False:
            self._classifier = image_classifier(self.settings.image_encoder, self.settings.device)
        return self._classifier if isinstance(self._classifier, ImageClassifier) else None

    def caption_flags(
        self, post_id: str, caption: str, emb: np.ndarray | None, min_cos: float = CAPTION_MIN_COS
    ) -> list[Flag]:
        """The caption's flags: its words, and the categories whose descriptions its (L2-
        normalised) embedding ``emb`` is within ``min_cos`` of (None: words only)."""
        flags = [Flag(post_id, h.category, "words", h.word, 1.0) for h in lexicon.caption_words(caption)]
        if emb is not None:
            cats, texts, vecs = self.descriptions()
            sims = vecs @ emb
            best: dict[str, int] = {}
            for i, c in enumerate(cats):
                if sims[i] >= min_cos and (c not in best or sims[i] > sims[best[c]]):
                    best[c] = i
            flags += [Flag(post_id, c, "caption", texts[i], float(sims[i])) for c, i in best.items()]
        return flags

    def image_flags(self, post_ids: list[str], embs: np.ndarray) -> list[Flag]:
        clf = self.classifier()
        if clf is None or not len(post_ids):
            return []
        probs = clf.probabilities(embs)
        top = np.argsort(-probs, axis=1)[:, :IMAGE_TOP]
        wanted = {clf.names.index(n): c.name for c in CATEGORIES.values() for n in c.image_classes if n in clf.names}
        out = []
        for pid, p, row in zip(post_ids, probs, top, strict=True):
            out += [
                Flag(pid, wanted[j], "image", clf.names[j], float(p[j]))
                for j in row
                if j in wanted and p[j] >= IMAGE_MIN_PROB
            ]
        return out

    def chunk(self, store: Store, posts: list[Pending]) -> tuple[list[Pending], list[Flag]]:
        """(the posts screened: those whose embeddings are stored, their flags)."""
        assert self.ids is not None, "a Screener without model ids screens captions only"
        texts = flag_store.vectors_by_hash(store, self.ids.text, [p.caption_hash for p in posts if p.caption_hash])
        images = flag_store.vectors_by_hash(store, self.ids.image, [p.image_hash for p in posts if p.image_hash])
        ready = [
            p
            for p in posts
            if (not p.caption_hash or p.caption_hash in texts) and (not p.image_hash or p.image_hash in images)
        ]
        flags = [f for p in ready for f in self.caption_flags(p.post_id, p.caption, texts.get(p.caption_hash or ""))]
        with_image = [p for p in ready if p.image_hash]
        if with_image:
            embs = np.stack([images[p.image_hash] for p in with_image if p.image_hash])
            flags += self.image_flags([p.post_id for p in with_image], embs)
        return ready, flags


def screen(
    settings: Settings, store: Store | None = None, progress: Callable[[int], None] | None = None
) -> ScreenReport:
    """Screen every post waiting for this version of the screen; see the module doc."""
    own = store is None
    store = store or Store.open(settings)
    try:
        ids = EncoderSet(settings).model_ids(store)
        ver = screen_version(settings)
        screener = Screener(settings, ids)
        screened = flagged = 0
        counts: dict[str, int] = {}
        after = ""
        while posts := flag_store.pending(store, ver, after, CHUNK):
            after = posts[-1].post_id
            ready, flags = screener.chunk(store, posts)
            if ready:
                flag_store.write(store, ready, flags, ver)
            screened += len(ready)
            flagged += len({f.post_id for f in flags})
            for cat in {(f.post_id, f.category) for f in flags}:
                counts[cat[1]] = counts.get(cat[1], 0) + 1
            if progress is not None:
                progress(len(ready))
        waiting = flag_store.waiting(store, ver, "influencer") + flag_store.waiting(store, ver, "brand")
        return ScreenReport(screened, flagged, waiting, dict(sorted(counts.items())), ver)
    finally:
        if own:
            store.close()
