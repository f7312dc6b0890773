"""Pooling against an independent computation: hand-made arrays with known answers, and a
real ingest whose stored per-post embeddings are pooled here with a few lines of numpy and
compared with the stored account vectors and with what the FAISS index answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.indexer.pool import IMAGE_WEIGHT, pool, pool_features
from congruence.search.engine import Engine
from congruence.store import database

H = np.sqrt(0.5)


def expected_pool(img: np.ndarray, txt: np.ndarray, d_image: int, d_text: int, w: float = 0.5) -> np.ndarray:
    """The pooled vector, derived from the docstring of indexer/pool.py in float64:
    the unit mean direction of each modality's unit rows (zeros when it has none),
    weighted by sqrt(w) and sqrt(1 - w), concatenated, then scaled to unit length."""

    def direction(rows: np.ndarray, d: int) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(d)
        rows = np.asarray(rows, np.float64)
        mean = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).mean(axis=0)
        return mean / np.linalg.norm(mean)

    v = np.concatenate([np.sqrt(w) * direction(img, d_image), np.sqrt(1 - w) * direction(txt, d_text)])
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


# -- hand-made arrays -------------------------------------------------------------------------
NO_IMG, NO_TXT = np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32)


@pytest.mark.parametrize(
    ("img", "txt", "want"),
    [
        pytest.param([[1, 0, 0], [0, 1, 0]], NO_TXT, [H, H, 0, 0, 0], id="images only"),
        pytest.param(NO_IMG, [[0, 1], [0, 1]], [0, 0, 0, 0, 1], id="texts only"),
        pytest.param([[1, 0, 0]], [[0, 1]], [H, 0, 0, 0, H], id="one of each"),
        pytest.param([[1, 0, 0], [0, 1, 0]], [[1, 0]], [0.5, 0.5, 0, H, 0], id="two images, one text"),
        pytest.param(
            [[0, 0, 1], [0, 0, 1], [0, 1, 0]],
            [[0.6, 0.8]],
            [0, 1 / np.sqrt(10), 2 / np.sqrt(10), 0.6 * H, 0.8 * H],
            id="repeated image",
        ),
        pytest.param(NO_IMG, NO_TXT, [0, 0, 0, 0, 0], id="nothing"),
    ],
)
def test_pool_known_answers(img: list | np.ndarray, txt: list | np.ndarray, want: list[float]) -> None:
    got = pool(np.asarray(img, np.float32).reshape(-1, 3), np.asarray(txt, np.float32).reshape(-1, 2), 3, 2)
    assert got.dtype == np.float32 and got.shape == (5,)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_pool_weight_and_the_inner_product_it_promises() -> None:
    np.testing.assert_allclose(
        pool(np.array([[1, 0, 0]], np.float32), np.array([[0, 1]], np.float32), 3, 2, 0.8),
        [np.sqrt(0.8), 0, 0, 0, np.sqrt(0.2)],
        atol=1e-6,
    )
    rng = np.random.default_rng(0)
    d_image, d_text = 16, 8

    def unit(n: int, d: int) -> np.ndarray:
        x = rng.standard_normal((n, d))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    a_img, a_txt, b_img, b_txt = unit(5, d_image), unit(3, d_text), unit(2, d_image), unit(4, d_text)
    for w in (IMAGE_WEIGHT, 0.3):
        a, b = pool(a_img, a_txt, d_image, d_text, w), pool(b_img, b_txt, d_image, d_text, w)
        np.testing.assert_allclose(a, expected_pool(a_img, a_txt, d_image, d_text, w), atol=1e-6)

        def cos(x: np.ndarray, y: np.ndarray) -> float:
            mx, my = x.mean(axis=0), y.mean(axis=0)
            return float(mx @ my / np.linalg.norm(mx) / np.linalg.norm(my))

        assert float(a @ b) == pytest.approx(w * cos(a_img, b_img) + (1 - w) * cos(a_txt, b_txt), abs=1e-6)


def test_pool_features_skips_the_missing_half_of_each_post() -> None:
    img = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)  # posts: image, text, both, none
    txt = np.array([[0, 0], [1, 0], [0.6, 0.8], [0, 0]], np.float32)
    got = pool_features(np.hstack([img, txt]), 3)
    np.testing.assert_allclose(got, expected_pool(img[[0, 2]], txt[[1, 2]], 3, 2), atol=1e-6)
    np.testing.assert_allclose(got[:3], [0.5, 0.5, 0], atol=1e-6)  # the text-only post pulls no image weight


# -- a real ingest ----------------------------------------------------------------------------
def _mixed_corpus(src: Path, dst: Path) -> Path:
    """The small corpus with image-only, text-only and mixed accounts."""
    shutil.copytree(src, dst)
    posts = [json.loads(line) for line in (dst / "posts.jsonl").read_text().splitlines()]
    for p in posts:
        if p["account_id"] in ("fitness_creator_00", "brand_peakfit") or p["id"] == "food_creator_01_p1":
            p["caption"] = ""
        if p["account_id"] in ("pets_creator_00", "brand_happy_paws") or p["id"] == "food_creator_01_p0":
            p["image"] = None
    (dst / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in posts))
    return dst


def _array(v: object) -> np.ndarray:
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, np.float64)


def _stored(url: str) -> tuple[dict[str, str], dict[str, tuple[list, list]], dict[str, np.ndarray]]:
    """(kind of each account, its posts' (image, text) embeddings, its stored pooled vector)."""
    with database.connect(url) as conn:
        assert conn.execute("SELECT role, count(*) FROM models GROUP BY role ORDER BY role").fetchall() == [
            ("image", 1),
            ("text", 1),
        ]
        rows = conn.execute(
            "SELECT a.id, a.kind, vi.embedding, vt.embedding FROM posts p JOIN accounts a ON a.id = p.account_id"
            " LEFT JOIN vectors vi ON vi.content_hash = p.image_hash"
            "  AND vi.model_id = (SELECT id FROM models WHERE role = 'image')"
            " LEFT JOIN vectors vt ON vt.content_hash = p.caption_hash"
            "  AND vt.model_id = (SELECT id FROM models WHERE role = 'text')"
        ).fetchall()
        pooled = conn.execute("SELECT account_id, embedding FROM account_vectors WHERE space = 'pooled'").fetchall()
    kinds: dict[str, str] = {}
    posts: dict[str, tuple[list, list]] = {}
    for account, kind, image, text in rows:
        kinds[account] = kind
        imgs, txts = posts.setdefault(account, ([], []))
        if image is not None:
            imgs.append(_array(image))
        if text is not None:
            txts.append(_array(text))
    return kinds, posts, {a: _array(v) for a, v in pooled}


def test_stored_pooled_vectors_and_search_equal_numpy(settings: Settings, small_corpus: Path, tmp_path: Path) -> None:
    corpus = _mixed_corpus(small_corpus, tmp_path / "corpus")
    report = ingest(corpus, settings)
    assert report.exit_code == 0 and report.rejected == []
    kinds, posts, stored = _stored(str(settings.database_url))
    assert len(kinds) == 24 and set(stored) == set(kinds)
    d_image = len(posts["fitness_creator_00"][0][0])
    d_text = len(posts["pets_creator_00"][1][0])
    assert [
        len(posts["fitness_creator_00"][1]),
        len(posts["pets_creator_00"][0]),
        len(posts["food_creator_01"][0]),
        len(posts["food_creator_01"][1]),
    ] == [0, 0, 1, 1]  # the corpus has the mixes it means to
    for imgs, txts in posts.values():  # stored per-post embeddings are unit vectors
        for v in imgs + txts:
            assert np.linalg.norm(v) == pytest.approx(1, abs=1e-5)

    want = {
        a: expected_pool(np.reshape(i, (-1, d_image)), np.reshape(t, (-1, d_text)), d_image, d_text)
        for a, (i, t) in posts.items()
    }
    for account, v in want.items():
        np.testing.assert_allclose(stored[account], v, atol=1e-5, err_msg=account)
    assert not want["fitness_creator_00"][d_image:].any() and not want["pets_creator_00"][:d_image].any()

    # brute force over the numpy vectors: the engine's FAISS answers (no head trained)
    ids = sorted(a for a, k in kinds.items() if k == "influencer")
    xb = np.stack([want[a] for a in ids])
    k = 10
    with Engine(settings) as engine:
        assert engine.current().head is None
        for q_id in sorted(kinds):
            D = xb @ want[q_id]
            if kinds[q_id] == "influencer":
                D[ids.index(q_id)] = -np.inf  # similar() leaves the influencer herself out
                hits = engine.similar(q_id, k)
            else:
                hits = engine.match_brand(q_id, k)
            I = np.argsort(-D, kind="stable")[:k]
            assert [h.influencer_id for h in hits] == [ids[i] for i in I], q_id
            np.testing.assert_allclose([h.score for h in hits], D[I], atol=1e-5, err_msg=q_id)
