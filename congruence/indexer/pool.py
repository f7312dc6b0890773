"""Pooling an account's post embeddings into one vector.

The pooled vector of an account is

    v = normalize( concat( sqrt(w) * normalize(mean_i img_i),  sqrt(1 - w) * normalize(mean_j txt_j) ) )

over its posts' L2-normalised image embeddings img_i and text embeddings txt_j, with
w = IMAGE_WEIGHT. When both parts are present the final normalisation is a no-op and the
inner product of two pooled vectors is  w * cos(images) + (1 - w) * cos(texts).
A missing modality (no images, or no captions) contributes zeros. Result: L2-normalised.
"""

from __future__ import annotations

import numpy as np

from congruence.core.vectors import l2_normalize

IMAGE_WEIGHT = 0.5


def pool(
    image_vecs: np.ndarray, text_vecs: np.ndarray, d_image: int, d_text: int, image_weight: float = IMAGE_WEIGHT
) -> np.ndarray:
    """(d_image + d_text,) L2-normalised pooled vector; inputs are (n, d) normalised rows."""
    img = _mean_dir(image_vecs, d_image) * np.sqrt(image_weight)
    txt = _mean_dir(text_vecs, d_text) * np.sqrt(1.0 - image_weight)
    return l2_normalize(np.concatenate([img, txt]).astype(np.float32))


def pool_features(features: np.ndarray, d_image: int, image_weight: float = IMAGE_WEIGHT) -> np.ndarray:
    """Pool rows of PostSets-style features ([img | txt], zeros where missing)."""
    img, txt = features[:, :d_image], features[:, d_image:]
    has_img = np.abs(img).sum(axis=1) > 0
    has_txt = np.abs(txt).sum(axis=1) > 0
    return pool(img[has_img], txt[has_txt], d_image, features.shape[1] - d_image, image_weight)


def _mean_dir(vecs: np.ndarray, d: int) -> np.ndarray:
    if len(vecs) == 0:
        return np.zeros(d, np.float32)
    return l2_normalize(np.asarray(vecs, np.float32).mean(axis=0))
