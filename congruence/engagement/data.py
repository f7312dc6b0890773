"""Posts with likes, their features and labels, read from the store for the engagement model.

Hand-made features (caption form, tagged accounts, paid partnership, alt-text concepts) come
from ``features``. Alt text (Instagram's automatic image description, in a post's ``extra`` as ``alt``) is
encoded with the store's text encoder and cached in the ``vectors`` table by content hash,
like captions, so it is encoded once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from congruence.core.hashes import sha256_text
from congruence.core.vectors import l2_normalize
from congruence.encoders.encoder_set import EncoderSet, ModelIds
from congruence.engagement.features import hand_features
from congruence.engagement.labels import engagement_z
from congruence.store.records import Store
from congruence.store.vectors import VectorStore

logger = logging.getLogger(__name__)
ALT_KEY = "alt"
# "No photo description available" is no description: within an account such posts are the
# older one in 72 % of pairs on the real Instagram data, so telling it apart from a missing
# alt text would hand the model a proxy of the post's date
_EMPTY_ALT = ("", "no photo description available")


@dataclass(frozen=True)
class PostFeatures:
    """Model inputs of n posts, aligned by row. Embeddings are L2-normalised rows, or zeros
    where the mask is False (no image, empty caption, no alt text).

    image: (n, d_image); text: (n, d_text) caption; alt: (n, d_text) alt text.
    log_followers: (n,) log(1 + followers) of the post's account, NaN when unknown.
    hand: (n, N_FEATURES) the ``features.FEATURES`` of each post; hand_mask: (n,
        N_FEATURES) bool, False where unknown (no caption or alt text; tags and paid-partnership
        flag of a post being scored).
    """

    image: np.ndarray
    image_mask: np.ndarray
    text: np.ndarray
    text_mask: np.ndarray
    alt: np.ndarray
    alt_mask: np.ndarray
    log_followers: np.ndarray
    hand: np.ndarray
    hand_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.log_followers)

    def take(self, rows: np.ndarray) -> PostFeatures:
        return PostFeatures(
            *(
                np.asarray(a)[rows]
                for a in (
                    self.image,
                    self.image_mask,
                    self.text,
                    self.text_mask,
                    self.alt,
                    self.alt_mask,
                    self.log_followers,
                    self.hand,
                    self.hand_mask,
                )
            )
        )


@dataclass(frozen=True)
class EngagementData:
    """Posts of accounts with at least two liked posts, grouped by account (rows contiguous).

    groups: (n,) int account index into ``account_ids``; likes: (n,) float64;
    z: (n,) robust within-account z-score of log-likes (the regression label).
    """

    post_ids: list[str]
    account_ids: list[str]
    groups: np.ndarray
    likes: np.ndarray
    z: np.ndarray
    features: PostFeatures
    image_files: tuple[str | None, ...] = ()  # each post's image file (corpus root / image), None without

    def __len__(self) -> int:
        return len(self.post_ids)

    def accounts_rows(self, accounts: Sequence[str]) -> np.ndarray:
        """Row indices of the posts of ``accounts``."""
        wanted = set(accounts)
        keep = np.array([a in wanted for a in self.account_ids], dtype=bool)
        return np.flatnonzero(keep[self.groups])


def informative_alt(raw: object) -> str:
    """The alt text, or "" when it is missing or Instagram's "nothing seen" placeholder."""
    if not isinstance(raw, str):
        return ""
    alt = raw.strip().rstrip(".")
    return "" if alt.lower() in _EMPTY_ALT else alt


def _vectors(store: Store, model_id: int, hashes: Sequence[str | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 stored vectors for ``hashes`` and the (n,) mask of those found."""
    wanted = sorted({h for h in hashes if h})
    found: dict[str, np.ndarray] = {}
    with store.conn.cursor(binary=True) as cur:
        for k in range(0, len(wanted), 5000):
            rows = cur.execute(
                "SELECT content_hash, embedding FROM vectors WHERE model_id = %s AND content_hash = ANY(%s)",
                (model_id, wanted[k : k + 5000]),
            ).fetchall()
            found.update((h, v.to_numpy()) for h, v in rows)
    out = np.zeros((len(hashes), dim), np.float32)
    mask = np.zeros(len(hashes), bool)
    for i, h in enumerate(hashes):
        if h and h in found:
            out[i], mask[i] = found[h], True
    return out, mask


def encode_alts(store: Store, encs: EncoderSet, ids: ModelIds, alts: Sequence[str], batch: int = 256) -> int:
    """Encode and store every alt text without a vector yet; returns how many were encoded."""
    by_hash = {sha256_text(a): a for a in alts if a}
    if not by_hash:
        return 0
    have = {
        r[0]
        for r in store.conn.execute(
            "SELECT content_hash FROM vectors WHERE model_id = %s AND content_hash = ANY(%s)", (ids.text, list(by_hash))
        )
    }
    todo = sorted(h for h in by_hash if h not in have)
    vstore = VectorStore(store)
    for k in range(0, len(todo), batch):
        chunk = todo[k : k + batch]
        vstore.put_vectors(ids.text, chunk, encs.text.encode([by_hash[h] for h in chunk]), ids.d_text)
    return len(todo)


def _post_rows(store: Store, kinds: Sequence[str], min_posts: int) -> list[tuple[Any, ...]]:
    return store.conn.execute(
        "SELECT p.id, p.account_id, p.likes, a.followers, p.image_hash, p.caption_hash, p.extra->>%s,"
        " p.caption, cardinality(p.tagged), p.sponsored, p.corpus_root, p.image"
        " FROM posts p JOIN accounts a ON a.id = p.account_id WHERE p.likes IS NOT NULL AND a.kind = ANY(%s)"
        " AND (SELECT count(*) FROM posts q WHERE q.account_id = p.account_id AND q.likes IS NOT NULL) >= %s"
        " ORDER BY a.seq, p.ts NULLS LAST, p.id",
        (ALT_KEY, list(kinds), min_posts),
    ).fetchall()


_Six = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _embeddings(store: Store, encs: EncoderSet | None, rows: Sequence[tuple[Any, ...]], alts: Sequence[str]) -> _Six:
    """(image, mask, text, mask, alt, mask) of the rows; without encoders, zero-width and masked off."""
    if encs is None:
        none, off = np.zeros((len(rows), 0), np.float32), np.zeros(len(rows), bool)
        return none, off, none, off, none, off
    ids = encs.model_ids(store)
    n_new = encode_alts(store, encs, ids, alts)
    if n_new:
        logger.info("encoded %d alt texts", n_new)
    image, image_mask = _vectors(store, ids.image, [r[4] for r in rows], ids.d_image)
    text, text_mask = _vectors(store, ids.text, [r[5] for r in rows], ids.d_text)
    alt, alt_mask = _vectors(store, ids.text, [sha256_text(a) if a else None for a in alts], ids.d_text)
    return l2_normalize(image), image_mask, l2_normalize(text), text_mask, l2_normalize(alt), alt_mask


def load_engagement_data(
    store: Store, encs: EncoderSet | None, kinds: Sequence[str] = ("influencer",), min_posts: int = 2
) -> EngagementData:
    """Every post with a like count of accounts of ``kinds`` having ``min_posts`` such posts.

    ``encs`` None: no embeddings (zero-width, masked off), nothing encoded: the labels and
    hand-made features alone, for analyses that need no model input (the evidence test).
    """
    rows = _post_rows(store, kinds, min_posts)
    alts = [informative_alt(r[6]) for r in rows]
    account_ids: list[str] = []
    groups = np.zeros(len(rows), np.int64)
    for i, r in enumerate(rows):
        if not account_ids or account_ids[-1] != r[1]:
            account_ids.append(r[1])
        groups[i] = len(account_ids) - 1
    likes = np.array([r[2] for r in rows], np.float64)
    fol = np.array([np.log1p(r[3]) if r[3] is not None and r[3] >= 0 else np.nan for r in rows], np.float64)
    hand, hand_mask = hand_features([r[7] for r in rows], alts, [r[8] for r in rows], [r[9] for r in rows])
    feats = PostFeatures(*_embeddings(store, encs, rows, alts), fol, hand, hand_mask)
    files = tuple(str(Path(r[10]) / r[11]) if r[10] and r[11] else None for r in rows)
    return EngagementData([r[0] for r in rows], account_ids, groups, likes, engagement_z(likes, groups), feats, files)
