"""The collaboration signal in the one retrieval path (search/collab_rank.py): ``congruence
train`` learns a fusion on reserved training brands when the store has collaboration evidence,
and match, similar and export rank with it; each list equals brute force (every candidate
scored by the head, the features made, the fusion applied), filters hold, and
``--signals content`` gives the head's order alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.indexer.ingest import ingest
from congruence.search.collab_rank import allowed_rows, fusion_of, join, signals_used
from congruence.search.engine import Engine
from congruence.search.export_rank import BatchRanker
from congruence.search.filters import Filters
from congruence.search.rerank import rerank
from congruence.search.snapshot import Snapshot
from congruence.store.collab_signal import Partners, signal_of
from congruence.store.rows import Account, Match
from congruence.training.fusion_model import query_features
from congruence.training.jobs import train_and_deploy
from congruence.training.loop import TrainConfig

from .test_ray import needs_ray, ray_cluster  # noqa: F401  (fixture)
from .test_web import CHROMIUM, browser, page  # noqa: F401  (fixtures)

COMMUNITIES = [
    "running shoes trail marathon",
    "vegan recipes kitchen bowl",
    "gaming console stream",
    "lipstick makeup skin",
]
WORDS = ["morning", "light", "weekend", "city", "friends", "coffee", "sunset", "travel", "home", "studio"]


def corpus(root: Path, seed: int = 0) -> Path:
    """4 communities (categories) of 16 creators and 6 brands; each brand has 8 partners in its
    community, who tag it; each creator tags the brands it partners with and a shop of its own.
    One more brand, ``brand_cold`` (cat0), has posts and no partner: a cold start."""
    rng = np.random.default_rng(seed)
    accounts, posts, matches = [], [], []
    for c, words in enumerate(COMMUNITIES):
        creators = [f"c{c}_{i:02d}" for i in range(16)]
        accounts += [Account(a, "influencer", a, f"cat{c}", 10_000 + i) for i, a in enumerate(creators)]
        partners: dict[str, list[str]] = {}
        for j in range(6):
            b = f"brand{c}{j}"
            accounts.append(Account(b, "brand", b, f"cat{c}", None))
            partners[b] = sorted(rng.choice(creators, 8, replace=False).tolist())
            matches += [Match(b, a) for a in partners[b]]
            posts += [Post(f"{b}_p{k}", b, None, f"{words} {' '.join(rng.choice(WORDS, 3))}") for k in range(2)]
        for a in creators:
            tagged = tuple(b for b, ps in partners.items() if a in ps) + (f"shop_{a}",)
            for k in range(2):
                text = f"{' '.join(rng.choice(words.split(), 2))} {' '.join(rng.choice(WORDS, 4))}"
                posts.append(Post(f"{a}_p{k}", a, None, text, tagged=tagged if k == 0 else ()))
    accounts.append(Account("brand_cold", "brand", "brand_cold", "cat0", None))
    posts += [Post(f"brand_cold_p{k}", "brand_cold", None, f"{COMMUNITIES[0]} {WORDS[k]}") for k in range(2)]
    return write_corpus(Corpus(root, accounts, posts, matches))


@pytest.fixture(scope="module")
def trained(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from congruence.store import database

    from .conftest import TABLES

    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    root = tmp_path_factory.mktemp("collab")
    settings = Settings(home=root / "home", database_url=pg_url, batch_size=16, device="cpu")
    ingest(corpus(root / "corpus"), settings)
    # the content head of before issue 36 (no partner memory, no geometry loss): the memory ranks
    # a training brand's partners by content already, and these tests ask what the collaboration
    # signal adds to a content list it can improve on
    plain = TrainConfig(epochs=3, batch_brands=4, list_size=8, device="cpu", partner_memory=False, geometry_weight=0)
    outcome = train_and_deploy(
        settings,
        plain,
        ("head",),
        None,
        0.2,
        activate_anyway=True,
    )
    assert outcome.experiment.reserved, "no training brand was reserved for the fusion"
    return settings


def brute_force(engine: Engine, snap: Snapshot, brand: str, partners: Partners | None, allowed: set[str] | None = None):
    """Every allowed candidate scored by the head, then (with partners) by the fusion; ids best first."""
    entry = engine.entry(snap, brand, "brand")
    ids = [a for a in snap.table.ids if allowed is None or a in allowed]
    seqs = np.array([int(snap.table.seq[i]) for i, a in enumerate(snap.table.ids) if a in set(ids)], np.int64)
    [(cand, content)] = rerank(snap.head, snap.index, [entry.posts], [seqs])
    if partners is None:
        return [snap.table.ids[r] for r in snap.rows(cand)]
    fusion = fusion_of(snap)
    assert fusion is not None
    fused = fusion.score(query_features(signal_of(snap.collabs), snap.table, partners, snap.rows(cand), content))
    order = np.lexsort((np.arange(len(cand)), -fused))
    return [snap.table.ids[r] for r in snap.rows(cand[order])]


def test_match_ranks_by_the_learned_fusion_as_brute_force_does(trained: Settings) -> None:
    with Engine(trained) as engine:
        snap = engine.current()
        assert snap.head is not None and fusion_of(snap) is not None, "the head in service carries no fusion"
        for brand in ("brand00", "brand21"):
            partners = engine.brand_partners(snap, brand)
            assert partners is not None and len(partners) == 8
            used = signals_used(snap, "all", partners)
            assert used.collaboration and "8 known partners" in used.describe()
            got = [h.influencer_id for h in engine.match_brand(brand, 20, snap=snap)]
            assert got == brute_force(engine, snap, brand, partners)[:20]
            content = [h.influencer_id for h in engine.match_brand(brand, 20, snap=snap, signals="content")]
            assert content == brute_force(engine, snap, brand, None)[:20]
            assert got != content  # the collaboration signal changed the order
        assert "signals=content" in signals_used(snap, "content", partners).describe()


def test_a_brand_with_no_partner_is_ranked_by_the_cold_start_blend(trained: Settings) -> None:
    """The head carries a blend learned on the fusion's reserved brands; a brand with no known
    partner is ordered by it, propensity counted from tags and sponsors, as brute force does."""
    from congruence.search.collab_rank import blend_of

    with Engine(trained) as engine:
        snap = engine.current()
        blend = blend_of(snap)
        assert blend is not None and blend.knows("cat0")
        partners = engine.brand_partners(snap, "brand_cold")
        assert partners is not None and len(partners) == 0 and partners.category == "cat0"
        used = signals_used(snap, "all", partners)
        assert used.category == "cat0" and "no collaboration: no known partners" in used.describe()
        entry = engine.entry(snap, "brand_cold", "brand")
        [(cand, content)] = rerank(snap.head, snap.index, [entry.posts], [snap.table.seq.astype(np.int64)])
        rows = snap.rows(cand)
        assert snap.collabs is not None and snap.collabs.tag_counts(rows).max() >= 2  # every creator tags
        score = blend.score(
            content, "cat0", [snap.table.categories[int(r)] for r in rows], snap.collabs.tag_counts(rows, partners.own)
        )
        order = np.lexsort((np.arange(len(rows)), -score))
        hits = engine.match_brand("brand_cold", 30, snap=snap)
        assert [h.influencer_id for h in hits] == [snap.table.ids[int(r)] for r in rows[order][:30]]
        np.testing.assert_allclose([h.score for h in hits], score[order][:30], rtol=1e-5, atol=1e-5)


def test_filters_hold_for_the_graphs_candidates(trained: Settings) -> None:
    with Engine(trained) as engine:
        snap = engine.current()
        f = Filters.make(category="cat1")
        passing = {a for a, c in zip(snap.table.ids, snap.table.categories, strict=True) if c == "cat1"}
        partners = engine.brand_partners(snap, "brand00")  # a brand of community 0, filtered to community 1
        got = [h.influencer_id for h in engine.match_brand("brand00", 10, filters=f, snap=snap)]
        assert len(got) == 10 and set(got) <= passing
        assert got == brute_force(engine, snap, "brand00", partners, passing)[:10]


def test_export_rows_are_match_rows_with_the_signal(trained: Settings) -> None:
    with Engine(trained) as engine:
        snap = engine.current()
        brands = ["brand00", "brand13", "brand32"]
        ranked = BatchRanker(snap, engine.reader, 10, Filters(), trained.candidates).rank(brands)
        for b in brands:
            rows = ranked.rows[[i for i, x in enumerate(ranked.brand_ids) if x == b]]
            assert [snap.table.ids[r] for r in rows] == [h.influencer_id for h in engine.match_brand(b, 10, snap=snap)]
        content = BatchRanker(snap, engine.reader, 10, Filters(), trained.candidates, signals="content").rank(
            brands[:1]
        )
        assert [snap.table.ids[r] for r in content.rows] == [
            h.influencer_id for h in engine.match_brand(brands[0], 10, snap=snap, signals="content")
        ]


def test_similar_counts_its_seeds_as_known_partners(trained: Settings) -> None:
    with Engine(trained) as engine:
        snap = engine.current()
        seeds = ["c2_00", "c2_01"]
        with_graph = [h.influencer_id for h in engine.similar(seeds, 10, snap=snap)]
        content = [h.influencer_id for h in engine.similar(seeds, 10, snap=snap, signals="content")]
        assert not set(seeds) & set(with_graph) and len(with_graph) == 10
        assert with_graph != content


def test_api_and_cli_say_which_signals_served(trained: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import json

    import httpx

    from congruence.cli.main import main

    from .server import serving

    with Engine(trained) as engine:
        snap = engine.current()
        want_all = [h.influencer_id for h in engine.match_brand("brand10", 8, snap=snap)]
        want_content = [h.influencer_id for h in engine.match_brand("brand10", 8, snap=snap, signals="content")]
    with serving(trained, auth=False) as site:
        r = httpx.post(site + "/v1/match", json={"brand_id": "brand10", "k": 8, "posts": 0}, timeout=60)
        assert r.status_code == 200, r.text
        assert [h["influencer_id"] for h in r.json()["data"]] == want_all
        assert "signals: content + collaboration (8 known partners" in r.json()["ranking"]
        r = httpx.post(site + "/v1/match", json={"brand_id": "brand10", "k": 8, "signals": "content"}, timeout=60)
        assert [h["influencer_id"] for h in r.json()["data"]] == want_content
        assert r.json()["ranking"].endswith("signals: content only (signals=content)")
        r = httpx.post(site + "/v1/match", json={"brand_id": "brand10", "signals": "graph"}, timeout=60)
        assert r.status_code == 422 and "signals" in r.text
        r = httpx.get(site + "/v1/influencers/c1_00/similar", params={"k": 5}, timeout=60)
        assert "content + collaboration (1 known partners" in r.json()["ranking"]
        r = httpx.post(site + "/v1/match", files={"text": (None, "running shoes")}, timeout=60)
        assert r.json()["ranking"].endswith("content only (a new brand has no known partners)")
    for name, value in (("CONGRUENCE_HOME", str(trained.home)), ("DATABASE_URL", str(trained.database_url))):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONGRUENCE_DEVICE", "cpu")
    for signals, want in (("all", want_all), ("content", want_content)):
        assert main(["match", "--brand", "brand10", "-k", "8", "--json", "--signals", signals]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert [h["influencer_id"] for h in doc["data"]] == want
        assert ("collaboration (8 known" in doc["ranking"]) == (signals == "all")


def test_the_graphs_candidates_join_a_narrow_content_list(trained: Settings) -> None:
    """With a rerank breadth of 4, the content list holds 4 candidates; the graph's best join it,
    and the answer is the fusion's best over exactly that union (some of them the graph's)."""
    import dataclasses

    narrow = dataclasses.replace(trained, candidates=4)
    with Engine(narrow) as engine:
        snap = engine.current()
        partners = engine.brand_partners(snap, "brand31")
        assert partners is not None
        content = [h.influencer_id for h in engine.match_brand("brand31", 4, snap=snap, signals="content")]
        signal = signal_of(snap.collabs)
        known = {snap.table.ids[r] for r in partners.rows}
        graph = [snap.table.ids[r] for r in signal.best(signal.weights(partners), 200)]
        graph = [a for a in graph if a not in known and a not in content]  # never a known partner
        union = set(content) | set(graph)
        seqs = np.array([int(snap.table.seq[snap.table.ids.index(a)]) for a in content], np.int64)
        _, joined = join(
            snap, [(seqs, np.zeros(len(seqs), np.float32))], {0: partners}, allowed_rows(snap, None, None), [seqs[:0]]
        )
        assert [snap.table.ids[r] for r in snap.rows(joined[0])] == graph
        got = [h.influencer_id for h in engine.match_brand("brand31", 4, snap=snap)]
        assert got == brute_force(engine, snap, "brand31", partners, union)[:4]
        assert set(got) - set(content), "no candidate of the graph's made the list"


def test_sharded_serving_ranks_with_the_signal_as_one_process(trained: Settings) -> None:
    """Three in-process shards behind an ingress (the ingress holds the graph, the shards score
    the graph's candidates they hold) answer as the single process, filters included; a rerank
    breadth of 4 makes most of each list the graph's candidates."""
    import dataclasses

    from congruence.search.shards import ShardedEngine, ShardServer
    from congruence.training.deploy import publish_current

    narrow = dataclasses.replace(trained, candidates=4)
    publish_current(narrow, shards=3)
    servers = [ShardServer(narrow, i, 3) for i in range(3)]
    try:
        with Engine(narrow) as single, ShardedEngine(narrow, servers) as sharded:
            for brand, f in (
                ("brand02", Filters()),
                ("brand02", Filters.make(category="cat0")),
                ("brand24", Filters()),
            ):
                a = single.match_brand(brand, 12, f)
                b = sharded.match_brand(brand, 12, f)
                assert [h.influencer_id for h in a] == [h.influencer_id for h in b]
                np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
            assert sharded.signals(sharded.current(), "all", brand_id="brand02").collaboration
    finally:
        for s in servers:
            s.close()


@needs_ray
def test_a_ray_export_ranks_with_the_signal_as_the_local_one(
    trained: Settings,
    ray_cluster: None,
    tmp_path: Path,  # noqa: F811
) -> None:
    import dataclasses
    import json

    from congruence.search.export import ExportSpec, run_export

    with Engine(dataclasses.replace(trained, candidates=4)) as engine:  # mostly the graph's candidates
        for signals in ("all", "content"):
            spec = ExportSpec(("brand00", "brand13", "brand32", "brand25"), 10, "jsonl", Filters(), signals)
            run_export(engine, spec, tmp_path / f"local-{signals}.jsonl", batch_brands=2)
            run_export(engine, spec, tmp_path / f"ray-{signals}.jsonl", batch_brands=2, ray_address="local")
            ray_bytes = (tmp_path / f"ray-{signals}.jsonl").read_bytes()
            assert ray_bytes == (tmp_path / f"local-{signals}.jsonl").read_bytes()
            rows = [json.loads(line) for line in (tmp_path / f"ray-{signals}.jsonl").open(encoding="utf-8")]
            snap = engine.current()
            want = [h.influencer_id for h in engine.match_brand("brand13", 10, snap=snap, signals=signals)]
            assert [r["influencer_id"] for r in rows if r["brand_id"] == "brand13"] == want


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_ranks_with_the_signal_and_says_so(trained: Settings, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The search page's "Rank by" sends ``signals``: its cards are match's, and its scores line
    names the signals that served."""
    from .server import serving

    with Engine(trained) as engine:
        snap = engine.current()
        want = {
            s: [h.influencer_id for h in engine.match_brand("brand10", 6, snap=snap, signals=s)]
            for s in ("all", "content")
        }
    with serving(trained, auth=False) as site:
        page.goto(site + "/")
        page.wait_for_function("document.querySelectorAll('#brand-list option').length === 25")  # 24 and brand_cold
        page.fill("#brand", "brand10")
        page.uncheck("#micro")
        page.fill("#k", "6")
        for signals, words in (
            ("all", "content + collaboration (8 known partners"),
            ("content", "content only (signals=content)"),
        ):
            page.select_option("#signals", signals)
            page.click("#search-btn")
            page.wait_for_function("w => document.querySelector('#ranking').textContent.includes(w)", arg=words)
            page.wait_for_function("document.querySelectorAll('.card').length === 6")
            assert [c.get_attribute("data-influencer") for c in page.locator(".card").all()] == want[signals]


def test_a_store_without_tags_trains_as_before(small_corpus: Path, settings: Settings) -> None:
    """No post names a handle (the photo and cold-start benchmarks): no brand is reserved, the
    head trains on every training brand, and carries no fusion; answers say content only."""
    ingest(small_corpus, settings)
    outcome = train_and_deploy(
        settings,
        TrainConfig(epochs=1, batch_brands=4, list_size=8, device="cpu"),
        ("head",),
        None,
        0.3,
        activate_anyway=True,
    )
    assert outcome.experiment.reserved == ()
    with Engine(settings) as engine:
        snap = engine.current()
        assert snap.head is not None and "fusion" not in snap.head.meta
        brand = engine.brand_ids()[0]
        assert engine.signals(snap, "all", brand_id=brand).describe() == (
            "content only (no post tags a handle or names a sponsor: congruence train learns the fusion from those)"
        )
        assert [h.influencer_id for h in engine.match_brand(brand, 5, snap=snap)] == [
            h.influencer_id for h in engine.match_brand(brand, 5, snap=snap, signals="content")
        ]
