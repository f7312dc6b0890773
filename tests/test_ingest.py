"""Ingest into the real embedded PostgreSQL with the packaged models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from congruence.cli.engine import open_engine
from congruence.core.errors import ModelMismatch, StoreUnavailable
from congruence.core.settings import Settings
from congruence.indexer.index import IndexCorrupt
from congruence.indexer.ingest import ingest
from congruence.indexer.maintenance import delete_accounts
from congruence.search.engine import Engine
from congruence.search.filters import Filters
from congruence.search.status import status
from congruence.store.records import Store
from congruence.store.vectors import VectorStore


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _append(path: Path, *lines: str | bytes) -> None:
    with path.open("ab") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode()) + b"\n")


def test_ingest_stores_encodes_pools_and_indexes(settings: Settings, small_corpus: Path) -> None:
    report = ingest(small_corpus, settings)
    assert report.exit_code == 0 and report.rejected == []
    assert (report.accounts_new, report.posts_new) == (24, 48)
    assert report.images_encoded == 48
    with Engine(settings) as engine:
        st = status(engine)
    assert (st.counts.brands, st.counts.influencers, st.counts.posts, st.embedded_posts) == (6, 18, 48, 48)
    assert st.index.size == 18 and st.index.stale is False
    doc = st.to_dict()  # as status --json prints it
    assert doc["accounts"] == {"brand": 6, "influencer": 18} and doc["index"]["stale"] is False


def test_reingest_is_idempotent_and_encodes_nothing(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    again = ingest(small_corpus, settings)
    assert (again.accounts_new, again.accounts_updated, again.posts_new, again.posts_updated) == (0, 0, 0, 0)
    assert again.images_encoded == 0 and again.texts_encoded == 0 and again.accounts_pooled == 0
    assert again.index is not None and again.index.reason == "up to date"
    with Store.open(settings) as store:
        assert store.counts().posts == 48


def test_bad_rows_are_reported_and_good_rows_kept(settings: Settings, small_corpus: Path, tmp_path: Path) -> None:
    ingest(small_corpus, settings)
    bad = _copy(small_corpus, tmp_path / "bad")
    (bad / "images" / "broken.jpg").write_bytes(b"<html>not an image</html>")
    good_img = (bad / "images" / "fitness_creator_00_p0.jpg").read_bytes()
    (bad / "images" / "truncated.jpg").write_bytes(good_img[: len(good_img) // 3])
    n_lines = len((bad / "posts.jsonl").read_text().splitlines())
    _append(
        bad / "posts.jsonl",
        json.dumps({"id": "x1", "account_id": "fitness_creator_00", "image": "images/broken.jpg", "caption": "a"}),
        json.dumps({"id": "x2", "account_id": "fitness_creator_00", "image": "images/truncated.jpg", "caption": "b"}),
        json.dumps({"id": "x3", "account_id": "nobody", "image": None, "caption": "c"}),
        json.dumps({"id": "x4", "account_id": "fitness_creator_00", "image": None, "caption": "fresh run"}),
        b"{not json",
    )
    report = ingest(bad, settings)
    assert report.exit_code == 2
    where = {(e.file, e.line): e.reason for e in report.rejected}
    assert where[("posts.jsonl", n_lines + 1)] == "images/broken.jpg: not an image (JPEG, PNG, WebP, GIF, BMP or TIFF)"
    assert where[("posts.jsonl", n_lines + 2)].startswith("images/truncated.jpg: image cannot be decoded")
    assert where[("posts.jsonl", n_lines + 3)] == "unknown account_id 'nobody'"
    assert where[("posts.jsonl", n_lines + 5)].startswith("malformed JSON")
    assert len(report.rejected) == 4
    assert report.posts_new == 1  # x4 only
    with Store.open(settings) as store:
        assert store.counts().posts == 49  # nothing stored earlier was lost
        assert store.post("x4").caption == "fresh run"


def test_huge_images_and_decompression_bombs_are_per_row_errors(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    """20k x 20k pixels (a decompression bomb: 49 KB on disk, 400 Mpx), 12k x 12k (over Pillow's
    warning limit) and 7k x 7k (over ours): each a per-row error; nothing stored changes."""
    from .hostile import big_png

    ingest(small_corpus, settings)
    with Store.open(settings) as store:
        before = store.counts()
        vectors = store.conn.execute("SELECT count(*), sum(version) FROM account_vectors").fetchone()
    bad = _copy(small_corpus, tmp_path / "bombs")
    n_lines = len((bad / "posts.jsonl").read_text().splitlines())
    sizes = {"bomb": (20_000, 20_000), "warned": (12_000, 12_000), "big": (7_000, 7_000)}
    for name, (w, h) in sizes.items():
        (bad / "images" / f"{name}.png").write_bytes(big_png(w, h))
    _append(
        bad / "posts.jsonl",
        *(
            json.dumps(
                {
                    "id": f"huge_{name}",
                    "account_id": "fitness_creator_00",
                    "image": f"images/{name}.png",
                    "caption": "x",
                }
            )
            for name in sizes
        ),
    )
    report = ingest(bad, settings)
    assert report.exit_code == 2 and report.posts_new == 0 and report.images_encoded == 0
    assert [(e.file, e.line, e.reason) for e in report.rejected] == [
        ("posts.jsonl", n_lines + 1, "images/bomb.png: too many pixels (decompression bomb)"),
        ("posts.jsonl", n_lines + 2, "images/warned.png: too many pixels (decompression bomb)"),
        ("posts.jsonl", n_lines + 3, "images/big.png: 7000x7000 pixels is more than the limit of 40000000"),
    ]
    with Store.open(settings) as store:
        assert store.counts() == before
        assert store.conn.execute("SELECT count(*), sum(version) FROM account_vectors").fetchone() == vectors
        assert store.conn.execute("SELECT count(*) FROM posts WHERE id LIKE 'huge_%'").fetchone() == (0,)
    assert report.index is not None and report.index.reason == "up to date"


def test_changed_caption_repools_the_account_and_updates_the_index(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    ingest(small_corpus, settings)
    c = _copy(small_corpus, tmp_path / "c")
    rows = [json.loads(x) for x in (c / "posts.jsonl").read_text().splitlines()]
    for r in rows:
        if r["account_id"] == "food_creator_01":
            r["caption"] = "laptop gadget coding setup headphones"
    (c / "posts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ingest(c, settings)
    # both posts now share one caption: the content-addressed cache encodes it once
    assert report.posts_updated == 2 and report.texts_encoded == 1 and report.images_encoded == 0
    assert report.accounts_pooled == 1
    assert report.index is not None and report.index.rebuilt is False and report.index.added == 1


def test_match_equals_brute_force_and_filters_do_not_starve(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Store.open(settings) as store:
        vs = VectorStore(store)
        _, ids, vecs = vs.account_vectors("pooled", kind="influencer")
        _, _, brand = vs.account_vectors("pooled", ids=["brand_peakfit"])
        table = store.account_table("influencer")
    scores = vecs @ brand[0]
    with Engine(settings) as engine:
        hits = engine.match_brand("brand_peakfit", k=5)
        assert [h.influencer_id for h in hits] == [ids[i] for i in np.argsort(-scores)[:5]]
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([h.score for h in hits], np.sort(scores)[::-1][:5], rtol=1e-5)
        # a filter that only 3 accounts pass still returns those 3 for k=10
        f = Filters.make(category="tech")
        tech = engine.match_brand("brand_peakfit", k=10, filters=f)
        assert sorted(h.influencer_id for h in tech) == sorted(
            i for i, c in zip(table.ids, table.categories, strict=True) if c == "tech"
        )
        fol = Filters.make(min_followers=10_000, max_followers=100_000)
        passing = {i for i, n in zip(table.ids, table.followers, strict=True) if 10_000 <= n <= 100_000}
        got = engine.match_brand("brand_peakfit", k=18, filters=fol)
        assert {h.influencer_id for h in got} == passing


def test_similar_excludes_the_influencer_and_respects_deletion(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        hits = engine.similar("pets_creator_00", k=17)
        assert "pets_creator_00" not in {h.influencer_id for h in hits} and len(hits) == 17
        assert hits[0].category == "pets"
    assert delete_accounts(settings, ["pets_creator_01", "nobody"]) == ["pets_creator_01"]
    with Engine(settings) as engine:
        ids = {h.influencer_id for h in engine.similar("pets_creator_00", k=17)}
        assert "pets_creator_01" not in ids and len(ids) == 16
        assert status(engine).index.size == 17


def test_new_brand_from_images_and_text(settings: Settings, small_corpus: Path) -> None:
    from PIL import Image

    ingest(small_corpus, settings)
    imgs = [Image.open(small_corpus / "images" / "brand_wanderly_p0.jpg")]
    text = "hiking in the mountains, beach sunsets and island roadtrips"
    with Engine(settings) as engine:
        hits = engine.match_new(imgs, text, k=3)
        q = engine.brand_vector(imgs, text)
        with engine.reading() as store:
            _, ids, vecs = VectorStore(store).account_vectors("pooled", kind="influencer")
    assert [h.category for h in hits[:2]] == ["travel"] * 2
    assert [h.influencer_id for h in hits] == [ids[i] for i in np.argsort(-(vecs @ q))[:3]]


def test_corrupt_or_stale_index_is_rebuilt_from_postgres(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        before = [h.influencer_id for h in engine.match_brand("brand_circuitry", k=5)]
    current = (settings.index_dir / "pooled" / "current").resolve()
    data = bytearray((current / "index.faiss").read_bytes())
    data[-10] ^= 0xFF
    (current / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum"):
        Engine(settings)  # the serving engine only reads: it refuses a damaged index, never repairs it
    with open_engine(settings) as engine:  # a command publishes first: the index rebuilt
        assert [h.influencer_id for h in engine.match_brand("brand_circuitry", k=5)] == before
    # stale: a vector changed in PostgreSQL behind the index's back
    with Store.open(settings) as store:
        store.conn.execute(
            "UPDATE account_vectors SET embedding = (SELECT embedding FROM account_vectors"
            " WHERE account_id = 'brand_circuitry'), version = nextval('vector_version')"
            " WHERE account_id = 'fashion_creator_02'"
        )
    with Engine(settings) as engine:  # serves what was published, and says it is stale
        assert status(engine).index.stale is True
    with open_engine(settings) as engine:
        assert engine.match_brand("brand_circuitry", k=1)[0].influencer_id == "fashion_creator_02"
        assert status(engine).index.stale is False


def test_other_encoder_on_the_same_store_is_refused(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    other = settings.with_(text_encoder="sentence-transformers:/models/other")
    with pytest.raises(ModelMismatch, match="this store's vectors were made by text encoder 'minilm-l6'"):
        ingest(small_corpus, other)


def test_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, database_url="postgresql://bob:s3cret@127.0.0.1:9/x")
    with pytest.raises(StoreUnavailable) as e:
        Store.open(s)
    assert str(e.value).startswith("cannot reach the database at postgresql://bob:***@127.0.0.1:9/x")
    assert "s3cret" not in str(e.value)


def test_an_emptied_index_takes_its_accounts_back(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Store.open(settings) as store:
        influencers = list(store.account_table("influencer").ids)
        brands = [a for (a,) in store.conn.execute("SELECT id FROM accounts WHERE kind = 'brand'")]
    # brands left: the pooled space keeps its size, and an index rebuilt now is empty but that size;
    # then nothing at all: an index rebuilt from an empty store does not know the size
    for gone in (influencers, influencers + brands):
        delete_accounts(settings, gone)
        shutil.rmtree(settings.index_dir)
        with open_engine(settings) as engine:  # published again first: rebuilt, empty
            assert status(engine).index.size == 0
        report = ingest(small_corpus, settings)  # and grows from nothing again
        assert report.index is not None and report.index.size == 18 and report.index.added == 18
        with Engine(settings) as engine:
            assert len(engine.match_brand("brand_peakfit", k=18)) == 18
