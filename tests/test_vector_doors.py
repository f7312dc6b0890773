"""NaN, infinite and wrong-dimension vectors through every library door that takes vectors
(the FAISS index, post vectors, account vectors): refused with an exact ValueError, and
what was stored before is unchanged. (The HTTP API takes no vectors; NaN and Infinity in
its JSON are refused in tests/test_api.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.indexer.index import VectorIndex
from congruence.indexer.ingest import ingest
from congruence.store.records import Store
from congruence.store.vectors import VectorStore

D = 8
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


def _bad(d: int) -> dict[str, tuple[np.ndarray, str]]:
    """name -> (array, the end of the expected message)."""
    nan = np.ones((2, d), np.float32)
    nan[1, 3] = np.nan
    inf = np.ones((2, d), np.float32)
    inf[0, 0] = -np.inf
    huge = np.ones((2, d), np.float64)
    huge[0, 1] = 1e39  # finite in float64, infinite once cast to float32
    return {
        "nan": (nan, "contains NaN or infinite values"),
        "inf": (inf, "contains NaN or infinite values"),
        "overflows float32": (huge, "contains NaN or infinite values"),
        "too narrow": (np.ones((2, d - 1), np.float32), f"expected {d} dimensions, not {d - 1}"),
        "too wide": (np.ones((2, d + 1), np.float32), f"expected {d} dimensions, not {d + 1}"),
        "3-d": (np.ones((2, 1, d), np.float32), "expected ndim to be 1 or 2, got 3"),
    }


BAD = list(_bad(D))


def _index() -> VectorIndex:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((20, D)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    index = VectorIndex(D)
    index.add(np.arange(20), np.ones(20, np.int64), xb)
    return index


@pytest.mark.parametrize("bad", BAD)
def test_index_add_and_search_refuse_bad_vectors(bad: str) -> None:
    index = _index()
    xq = np.ones((1, D), np.float32) / np.sqrt(D)
    before = index.search(xq, 5)
    x, message = _bad(D)[bad]
    with pytest.raises(ValueError) as e:
        index.add(np.array([100, 101]), np.array([1, 1]), x)
    assert str(e.value) == f"index vectors: {message}"
    with pytest.raises(ValueError) as e:
        index.search(x, 5)
    assert str(e.value) == f"query vectors: {message}"
    assert index.ntotal == index.n_alive == 20 and 100 not in index.live_versions()
    after = index.search(xq, 5)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])


@pytest.fixture(scope="module")
def stored(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from congruence.store import database

    from .conftest import TABLES

    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    settings = Settings(
        home=tmp_path_factory.mktemp("doors") / "home", database_url=pg_url, batch_size=16, device="cpu"
    )
    ingest(small_corpus, settings)
    return settings


def _snapshot(store: Store) -> tuple:
    return (
        store.conn.execute("SELECT model_id, content_hash, embedding::text FROM vectors ORDER BY 1, 2").fetchall(),
        store.conn.execute(
            "SELECT account_id, space, embedding::text, n_posts, version FROM account_vectors ORDER BY 1, 2"
        ).fetchall(),
        store.conn.execute("SELECT id, pool_dirty FROM accounts ORDER BY id").fetchall(),
    )


@pytest.mark.parametrize("bad", BAD)
def test_store_refuses_bad_vectors_and_keeps_what_it_had(stored: Settings, bad: str) -> None:
    with Store.open(stored) as store:
        vs = VectorStore(store)
        model = store.model_id("text", "doors-test", D)
        vs.put_vectors(model, ["h0", "h1"], np.eye(2, D, dtype=np.float32), D)
        dim = vs.space_dim("pooled")
        assert dim is not None
        before = _snapshot(store)
        x, message = _bad(D)[bad]
        with pytest.raises(ValueError) as e:
            vs.put_vectors(model, ["h0", "h2"], x, D)
        assert str(e.value) == f"post embeddings: {message}"
        y, message = _bad(dim)[bad]
        with pytest.raises(ValueError) as e:
            vs.put_account_vectors("pooled", ["fitness_creator_00", "food_creator_00"], y, [2, 2], dim)
        assert str(e.value) == f"account embeddings: {message}"
        assert _snapshot(store) == before


def test_store_refuses_counts_that_do_not_match(stored: Settings) -> None:
    with Store.open(stored) as store:
        vs = VectorStore(store)
        model = store.model_id("text", "doors-test", D)
        dim = vs.space_dim("pooled")
        assert dim is not None
        before = _snapshot(store)
        with pytest.raises(ValueError, match="expected 3 vectors, got 2"):
            vs.put_vectors(model, ["a", "b", "c"], np.ones((2, D), np.float32), D)
        with pytest.raises(ValueError):
            vs.put_account_vectors("pooled", ["fitness_creator_00", "food_creator_00"], np.ones((3, dim)), [2, 2], dim)
        assert _snapshot(store) == before


def test_index_add_refuses_seqs_versions_and_vectors_of_other_lengths() -> None:
    index = _index()
    x = np.ones((2, D), np.float32) / np.sqrt(D)
    with pytest.raises(ValueError) as e:
        index.add(np.array([100, 101, 102]), np.array([1, 1]), x)
    assert str(e.value) == "index add: 3 seqs, 2 versions and 2 vectors; expected one of each per row"
    assert index.ntotal == 20 and 100 not in index.live_versions()


def test_derived_vectors_of_another_width_or_not_finite_are_refused(stored: Settings) -> None:
    from congruence.core.errors import ModelMismatch
    from congruence.encoders.encoder_set import EncoderSet

    with Store.open(stored) as store:
        vs = VectorStore(store)
        ids = EncoderSet(stored).model_ids(store)
        sets = vs.post_sets(ids.image, ids.text, ids.d_image, ids.d_text, account_ids=["fitness_creator_00"])
        n = sets.features.shape[0]
        ok = np.ones((1, 16), np.float32) / 4
        vs.put_derived_vectors("head:doors", sets, ok, np.ones((n, 16), np.float32) / 4, [1])
        before = _snapshot(store)
        with pytest.raises(ModelMismatch, match="space 'head:doors' holds 16-d vectors, got 7-d"):
            vs.put_derived_vectors("head:doors", sets, np.ones((1, 7), np.float32), np.ones((n, 7), np.float32), [1])
        bad_posts = np.ones((n, 16), np.float32)
        bad_posts[0, 2] = np.nan
        with pytest.raises(ValueError, match="post vectors: contains NaN or infinite values"):
            vs.put_derived_vectors("head:doors", sets, ok, bad_posts, [1])
        assert _snapshot(store) == before
        vs.drop_space("head:doors")


def test_a_manifest_that_disagrees_with_its_files_is_corrupt(tmp_path: Path) -> None:
    import json

    from congruence.indexer.index import IndexCorrupt

    _index().save(tmp_path, "pooled", "m", 20)
    for field, value in (("dim", 7), ("kind", "hnsw"), ("count", 19), ("codec", "sq8")):
        man = tmp_path / "current" / "manifest.json"
        body = json.loads(man.read_text())
        good = body[field]
        man.write_text(json.dumps({**body, field: value}))
        with pytest.raises(IndexCorrupt, match="does not match its manifest"):
            VectorIndex.load(tmp_path)
        man.write_text(json.dumps({**body, field: good}))
    assert VectorIndex.load(tmp_path)[0].n_alive == 20
