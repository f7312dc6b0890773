"""Sharded serving gives the single process's answers: with exact search in each of 4 shards,
match, similar (one influencer and a set), a new brand, feedback, filters, brand-safety
filters and export equal a single engine's, ids, order and scores; shards hold exactly the
accounts their hash gives them; a writer's change reaches every shard in one generation.
The shards run in this process here; tests/test_ray_serve.py runs them on Ray Serve."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from congruence.cli.safety import run_screen
from congruence.core.errors import InvalidInput
from congruence.core.hashes import shard_of
from congruence.core.settings import Settings
from congruence.indexer.index import VectorIndex
from congruence.indexer.maintenance import delete_accounts
from congruence.search import shards as shards_mod
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters
from congruence.search.hits import Hit
from congruence.search.shards import ShardedEngine, ShardServer, ShardUnavailable
from congruence.training.deploy import active_spaces, publish_current

from .server import corpus_with_head

N = 4
BRANDS = ("brand_peakfit", "brand_wanderly", "brand_happy_paws", "brand_circuitry")
FILTERS = (Filters(), Filters.make(micro=True), Filters.make(category="travel"), Filters.make(brand_safe=True))


@pytest.fixture(scope="module")
def sharded_store(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = corpus_with_head(pg_url, tmp_path_factory.mktemp("shards") / "home", small_corpus)
    run_screen(settings, quiet=True)  # the brand-safety filters need every post screened
    publish_current(settings, shards=N)
    return settings


@pytest.fixture
def engines(sharded_store: Settings) -> Iterator[tuple[Engine, ShardedEngine, list[ShardServer]]]:
    servers = [ShardServer(sharded_store, i, N) for i in range(N)]
    with Engine(sharded_store) as single, ShardedEngine(sharded_store, servers) as sharded:
        yield single, sharded, servers
    for s in servers:
        s.close()


def same(a: list[Hit], b: list[Hit]) -> None:
    assert [h.influencer_id for h in a] == [h.influencer_id for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=0, atol=1e-5)
    for x, y in zip(a, b, strict=True):
        assert [p.post_id for p in x.top_posts] == [p.post_id for p in y.top_posts]
        np.testing.assert_allclose([p.score for p in x.top_posts], [p.score for p in y.top_posts], atol=1e-5)


def test_each_shard_holds_the_accounts_its_hash_gives_it(engines: tuple) -> None:
    single, _, servers = engines
    everyone = set(single.snapshot.table.ids)
    held: set[str] = set()
    for s in servers:
        snap = s.engine.snapshot
        ids = {snap.table.ids[r] for r in snap.rows(snap.index.labels[snap.index.alive])}
        assert ids and all(shard_of(a, N) == s.i for a in ids)
        assert not ids & held
        held |= ids
        assert snap.head is not None and snap.index.posts is not None and snap.index.kind == "flat"
    assert held == everyone


@pytest.mark.parametrize("filters", FILTERS, ids=["none", "micro", "travel", "brand-safe"])
def test_match_and_similar_equal_the_single_process(engines: tuple, filters: Filters) -> None:
    single, sharded, _ = engines
    assert sharded.snapshot.head is not None and sharded.snapshot.shards is not None
    for brand in BRANDS:
        for k in (3, 10, 18):
            same(sharded.match_brand(brand, k, filters, posts=2), single.match_brand(brand, k, filters, posts=2))
    for seeds in ("fitness_creator_00", ["travel_creator_01", "food_creator_00"]):
        same(sharded.similar(seeds, 8, filters, posts=1), single.similar(seeds, 8, filters, posts=1))


def test_candidates_a_shard_did_not_score_are_scored_in_a_second_round(
    engines: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    single, sharded, servers = engines
    monkeypatch.setattr(shards_mod, "SCORE_MARGIN", 0.0)
    monkeypatch.setattr(shards_mod, "SCORE_EXTRA", 1)  # each shard scores its first candidate only
    asked: list[int] = []
    for s in servers:
        real = s.rerank
        monkeypatch.setattr(s, "rerank", lambda g, b, c, real=real: asked.append(sum(map(len, c))) or real(g, b, c))
    for brand in BRANDS:
        same(sharded.match_brand(brand, 10, posts=2), single.match_brand(brand, 10, posts=2))
    assert asked and max(asked) > 1  # the second round asked the shards for the rest


def test_feedback_and_a_new_brand_equal_the_single_process(engines: tuple) -> None:
    single, sharded, _ = engines
    top = [h.influencer_id for h in single.match_brand("brand_peakfit", 10)]
    feedback = Feedback.make(like=[top[4], "travel_creator_01"], dislike=[top[0]])
    for filters in FILTERS[:2]:
        same(
            sharded.match_brand("brand_peakfit", 10, filters, feedback=feedback),
            single.match_brand("brand_peakfit", 10, filters, feedback=feedback),
        )
        same(
            sharded.similar("pets_creator_00", 6, filters, feedback=feedback),
            single.similar("pets_creator_00", 6, filters, feedback=feedback),
        )
    q_single = single.describe_new([], "trail running shoes, marathon training")
    q_sharded = sharded.describe_new([], "trail running shoes, marathon training")
    same(sharded.match_query(q_sharded, 12, posts=1), single.match_query(q_single, 12, posts=1))


def test_export_equals_the_single_process(engines: tuple, tmp_path: Path) -> None:
    single, sharded, _ = engines
    for filters in FILTERS[:2]:
        spec = ExportSpec(None, 7, "csv", filters)
        run_export(single, spec, tmp_path / "single.csv", batch_brands=4)
        run_export(sharded, spec, tmp_path / "sharded.csv", batch_brands=4)
        a, b = (list(csv.DictReader((tmp_path / f).open())) for f in ("sharded.csv", "single.csv"))
        assert len(a) == len(b) == 6 * 7
        for x, y in zip(a, b, strict=True):  # scores to 1e-5: the head's batches are made up differently
            assert {**x, "score": None} == {**y, "score": None}
            assert float(x["score"]) == pytest.approx(float(y["score"]), abs=1e-5)


def test_a_writers_change_reaches_every_shard_in_one_generation(
    sharded_store: Settings, engines: tuple, tmp_path: Path
) -> None:
    single, sharded, servers = engines
    before = sharded.match_brand("brand_peakfit", 10)
    gone = before[0].influencer_id
    owner = shard_of(gone, N)
    folders = {s.i: s.engine.snapshot.index.source for s in servers}
    out = tmp_path / "s.csv"

    def interrupt(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # an export cut off before the change
        run_export(sharded, ExportSpec(None, 5, "csv"), out, progress=interrupt, batch_brands=3)
    assert delete_accounts(sharded_store, [gone], active_spaces(sharded_store)) == [gone]
    with pytest.raises(InvalidInput, match=r"unfinished export of something else \([^)]*shards_generation"):
        run_export(sharded, ExportSpec(None, 5, "csv"), out)  # its chunks were ranked on the shards before
    after = sharded.match_brand("brand_peakfit", 10)
    assert gone not in {h.influencer_id for h in after}
    same(after, single.match_brand("brand_peakfit", 10))
    generation = sharded.snapshot.generation
    assert {s.engine.snapshot.generation for s in servers} == {generation}
    moved = {s.i for s in servers if s.engine.snapshot.index.source != folders[s.i]}
    assert moved == {owner}  # only the shard of the deleted account was written again

    # an ingress behind the shards is still answered from its generation (the one kept before)
    old = servers[0].snapshot(generation)
    assert old.generation == generation
    with pytest.raises(ShardUnavailable, match=r"shard 0 of 4 serves generation \d+, the ingress asked for 1"):
        servers[0].snapshot(1)


def test_compressed_shards_share_one_codebook(sharded_store: Settings) -> None:
    """Past the thresholds every shard is HNSW over 8-bit codes trained on the same sample:
    one set of per-dimension ranges, so their FAISS scores compare when merged."""
    import faiss

    small = sharded_store.with_(exact_threshold=1, compress_threshold=1)
    publish_current(small, shards=N)
    trained = []
    for i in range(N):
        server = ShardServer(small, i, N)
        index = server.engine.snapshot.index
        assert (index.kind, index.codec) == ("hnsw", "sq8")
        trained.append(faiss.vector_to_array(faiss.downcast_index(index.index.storage).sq.trained))
        server.close()
    assert all(np.array_equal(t, trained[0]) for t in trained[1:])


def _answering_as_one_process(settings: Settings) -> list[VectorIndex]:
    """The published shards' indexes, once their reranked answers equal the single process's."""
    servers = [ShardServer(settings, i, N) for i in range(N)]
    try:
        with Engine(settings) as single, ShardedEngine(settings, servers) as sharded:
            for brand in BRANDS:
                same(sharded.match_brand(brand, 8, posts=1), single.match_brand(brand, 8, posts=1))
        return [s.engine.snapshot.index for s in servers]
    finally:
        for s in servers:
            s.close()


def test_ivfpq_shards_built_from_postgres_answer_as_one_process(
    sharded_store: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Shards past CONGRUENCE_SHARD_IVF_THRESHOLD are IVF-PQ with one trained quantiser and
    codebook; at this size every list is probed, so the reranked answers are the single
    process's, with the re-score vectors at 8 bits or, by CONGRUENCE_SHARD_REFINE_BITS, 16."""
    import faiss

    ivf = sharded_store.with_(shard_ivf_threshold=1)
    space = next(k for k in publish_current(ivf, shards=N).shards if k.startswith("head:"))
    indexes = _answering_as_one_process(ivf)
    assert all((x.kind, x.codec) == ("ivfpq", "pq") for x in indexes)
    centroids = [faiss.vector_to_array(x.index.pq.centroids) for x in indexes]
    assert all(np.array_equal(c, centroids[0]) for c in centroids[1:])
    assert all(x.refine_bits == 8 and x.refine.codes.dtype == np.int8 for x in indexes)
    # CONGRUENCE_POST_VECTORS=auto reads an IVF-PQ shard's per-post vectors paged; cached, as
    # the kernel reads them: the same answers either way
    assert all(x.posts is not None and x.posts.paged for x in indexes)
    cached = _answering_as_one_process(ivf.with_(post_vectors="cached"))
    assert all(x.posts is not None and not x.posts.paged for x in cached)
    # at 16 bits the next publish rewrites every shard as float16, once
    wide = ivf.with_(shard_refine_bits=16)
    folders = [p.folder for p in publish_current(wide, shards=N).shards[space]]
    assert [p.folder for p in publish_current(wide, shards=N).shards[space]] == folders
    assert all(x.refine.codes.dtype == np.float16 for x in _answering_as_one_process(wide))
    # back to 8 bits (as a float16 shard of before meets the default): quantised in place
    caplog.clear()
    caplog.set_level("INFO", logger="congruence.indexer.index_sync")
    back = publish_current(ivf, shards=N).shards[space]
    assert "rebuilding index" not in caplog.text
    for p in back:
        gen = ivf.index_dir / p.folder
        loaded, _ = VectorIndex.load(gen.parent, gen.name, mapped=True)
        assert loaded.refine_bits == 8 and loaded.refine.codes.dtype == np.int8 and loaded.n_alive == p.count
