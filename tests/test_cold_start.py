"""The cold-start blend (training/category_blend.py, training/cold_start.py): ``congruence train``
learns, on training brands a head never trained on, how much a brand category's prior and a
creator's propensity add to the head's score, and a match of a brand that no fusion serves is
ordered by that blend, as brute force orders it; ``--signals content`` gives the head's order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.indexer.ingest import ingest
from congruence.search.collab_rank import blend_of, fusion_of, signals_used
from congruence.search.engine import Engine
from congruence.search.export_rank import BatchRanker
from congruence.search.filters import Filters
from congruence.search.rerank import rerank
from congruence.search.snapshot import Snapshot
from congruence.store.rows import Account, Match
from congruence.training.category_blend import CategoryBlend, affinity_table, fit_blend
from congruence.training.cold_start import BLENDED, SERVED
from congruence.training.jobs import evaluate_saved, train_and_deploy
from congruence.training.loop import TrainConfig

COMMUNITIES = [
    "running shoes trail marathon",
    "vegan recipes kitchen bowl",
    "gaming console stream",
    "lipstick makeup skin",
]
WORDS = ["morning", "light", "weekend", "city", "friends", "coffee", "sunset", "travel", "home", "studio"]


STYLES = ["neon", "pastel", "vintage", "minimal", "bold", "rustic"]


def corpus(root: Path, seed: int = 0) -> Path:
    """4 communities (categories cat0-cat3) of 16 creators, each creator with a style word
    (creator i: STYLES[i % 6]), and 6 brands per category; brand j of category c posts what
    community c + 1 posts in style j, and partners with that community's creators of style j and
    random others, 8 in all (as a running-gear maker may work with food creators of its taste).
    No post tags anyone."""
    rng = np.random.default_rng(seed)
    accounts, posts, matches = [], [], []
    for c, words in enumerate(COMMUNITIES):
        creators = [f"c{c}_{i:02d}" for i in range(16)]
        accounts += [Account(a, "influencer", a, f"cat{c}", 10_000 + i) for i, a in enumerate(creators)]
        for i, a in enumerate(creators):
            for k in range(2):
                text = f"{STYLES[i % 6]} {' '.join(rng.choice(words.split(), 2))} {' '.join(rng.choice(WORDS, 3))}"
                posts.append(Post(f"{a}_p{k}", a, None, text))
    for c in range(len(COMMUNITIES)):
        d = (c + 1) % 4
        for j in range(6):
            b = f"brand{c}{j}"
            styled = [f"c{d}_{i:02d}" for i in range(16) if i % 6 == j]
            others = [f"c{d}_{i:02d}" for i in range(16) if i % 6 != j]
            chosen = styled + sorted(rng.choice(others, 8 - len(styled), replace=False).tolist())
            accounts.append(Account(b, "brand", b, f"cat{c}", None))
            matches += [Match(b, a) for a in chosen]
            posts += [
                Post(f"{b}_p{k}", b, None, f"{STYLES[j]} {COMMUNITIES[d]} {' '.join(rng.choice(WORDS, 2))}")
                for k in range(2)
            ]
    return write_corpus(Corpus(root, accounts, posts, matches))


@pytest.fixture(scope="module")
def trained(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    from congruence.store import database

    from .conftest import TABLES

    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    root = tmp_path_factory.mktemp("cold")
    settings = Settings(home=root / "home", database_url=pg_url, batch_size=16, device="cpu")
    ingest(corpus(root / "corpus"), settings)
    outcome = train_and_deploy(
        settings,
        TrainConfig(epochs=3, batch_brands=4, list_size=8, device="cpu"),
        ("head",),
        ["brand01", "brand12", "brand23", "brand34"],
        0.2,
        activate_anyway=True,
    )
    assert not outcome.experiment.reserved  # no tags: nothing is reserved, the head trains on every training brand
    return settings, outcome.experiment.to_dict()


def brute_force(engine: Engine, snap: Snapshot, brand: str, blended: bool) -> tuple[list[str], np.ndarray]:
    """Every candidate scored by the head, then (``blended``) by the blend; ids best first, scores."""
    entry = engine.entry(snap, brand, "brand")
    [(cand, content)] = rerank(snap.head, snap.index, [entry.posts], [snap.table.seq.astype(np.int64)])
    rows = snap.rows(cand)
    if blended:
        blend = blend_of(snap)
        assert blend is not None
        cats = [snap.table.categories[int(r)] for r in rows]
        score = blend.score(content, f"cat{brand[5]}", cats, np.zeros(len(rows)))
        order = np.lexsort((np.arange(len(rows)), -score))
        rows, content = rows[order], score[order]
    return [snap.table.ids[int(r)] for r in rows], content


def test_train_learns_the_blend_on_training_brands_and_reports_it(trained: tuple[Settings, dict]) -> None:
    settings, doc = trained
    with Engine(settings) as engine:
        snap = engine.current()
        blend = blend_of(snap)
        assert blend is not None and fusion_of(snap) is None  # a blend, and no fusion (no tags)
        # learned on a quarter of the training brands, scored by a head that never trained on them
        assert blend.brands >= 4
        w_content, w_affinity, _ = blend.weights
        assert w_content > 0 and w_affinity > 0
        # cat0 brands work with cat1 creators: the table says so
        assert blend.affinity("cat0", ["cat1"])[0] > blend.affinity("cat0", ["cat0"])[0] + 1.0
    assert set(doc["results"]) >= {"head", BLENDED, SERVED, "pooled_cosine"}
    # `congruence evaluate` reports the same rows for the head in service
    again, _, _ = evaluate_saved(settings, None, ["brand01", "brand12", "brand23", "brand34"])
    assert again[BLENDED].auc == pytest.approx(doc["results"][BLENDED]["auc"], abs=1e-6)
    assert again[SERVED].auc == pytest.approx(doc["results"][SERVED]["auc"], abs=1e-6)
    assert doc["results"][BLENDED]["auc"] >= doc["results"]["head"]["auc"] - 0.02


def test_match_orders_by_the_blend_as_brute_force_does(trained: tuple[Settings, dict]) -> None:
    settings, _ = trained
    with Engine(settings) as engine:
        snap = engine.current()
        for brand in ("brand01", "brand22"):
            partners = engine.brand_partners(snap, brand)
            used = signals_used(snap, "all", partners)
            assert not used.collaboration and used.category == f"cat{brand[5]}"
            assert f"content + category prior (cat{brand[5]} brands' partners, learned blend" in used.describe()
            for signals in ("all", "content"):
                hits = engine.match_brand(brand, 60, snap=snap, signals=signals)
                ids, scores = brute_force(engine, snap, brand, signals == "all")
                assert [h.influencer_id for h in hits] == ids[:60]
                np.testing.assert_allclose([h.score for h in hits], scores[:60], rtol=1e-5, atol=1e-5)
        assert signals_used(snap, "content", partners).describe() == "content only (signals=content)"


def test_export_rows_are_match_rows_with_the_blend(trained: tuple[Settings, dict]) -> None:
    settings, _ = trained
    with Engine(settings) as engine:
        snap = engine.current()
        brands = ["brand01", "brand13", "brand32"]
        ranked = BatchRanker(snap, engine.reader, 60, Filters(), settings.candidates).rank(brands)
        for b in brands:
            rows = ranked.rows[[i for i, x in enumerate(ranked.brand_ids) if x == b]]
            assert [snap.table.ids[r] for r in rows] == [h.influencer_id for h in engine.match_brand(b, 60, snap=snap)]


def test_the_table_and_the_fit_on_their_own() -> None:
    category = {"b1": "shoes", "b2": "shoes", "b3": "food"} | {
        f"i{n}": ("run" if n < 15 else "cook") for n in range(30)
    }
    pairs = [("b1", f"i{n}") for n in range(8)] + [("b2", f"i{n}") for n in range(4, 12)] + [("b3", "i20")]
    table, other = affinity_table(pairs, ["b1", "b2", "b3"], category)
    assert set(table) == {"shoes"}  # food has 1 partner, too few for a row
    assert np.isclose(np.exp(table["shoes"]["run"]), 17 / 19)  # (16 + 1) / (16 + 2 categories seen + 1)
    assert np.isclose(np.exp(other["shoes"]), 1 / 19) and other["shoes"] == table["shoes"]["cook"]
    blend = CategoryBlend(table, other, (1.0, 2.0, 0.5), 4)
    assert CategoryBlend.from_meta(blend.to_meta()) == blend
    assert not blend.knows("food") and not blend.knows("")
    s = blend.score(np.array([0.3, np.nan, 0.3]), "shoes", ["run", "run", "cook"], np.array([0.0, 0.0, 3.0]))
    assert s[0] > s[2] - 0.5 * np.log1p(3.0) and s[1] == -np.inf
    # too few brands to learn the weights on: no blend
    assert (
        fit_blend(
            pairs,
            ["b1", "b2", "b3"],
            ["b1"],
            category,
            list(category)[3:],
            lambda b, ids: np.zeros(len(ids)),
            lambda b, ids: np.zeros(len(ids)),
        )
        is None
    )


def test_sharded_serving_blends_as_one_process(trained: tuple[Settings, dict]) -> None:
    """Three in-process shards behind an ingress (the ingress holds the table's categories and
    blends the shards' scores) answer as the single process, a category filter included."""
    from congruence.search.shards import ShardedEngine, ShardServer
    from congruence.training.deploy import publish_current

    settings, _ = trained
    publish_current(settings, shards=3)
    servers = [ShardServer(settings, i, 3) for i in range(3)]
    try:
        with Engine(settings) as single, ShardedEngine(settings, servers) as sharded:
            for brand, f in (("brand01", Filters()), ("brand13", Filters.make(category="cat0"))):
                a = single.match_brand(brand, 30, f)
                b = sharded.match_brand(brand, 30, f)
                assert [h.influencer_id for h in a] == [h.influencer_id for h in b]
                np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
            assert sharded.signals(sharded.current(), "all", brand_id="brand01").category == "cat0"
    finally:
        for s in servers:
            s.close()


def test_the_api_says_the_category_prior_served(trained: tuple[Settings, dict]) -> None:
    import httpx

    from .server import serving

    settings, _ = trained
    with Engine(settings) as engine:
        want = [h.influencer_id for h in engine.match_brand("brand01", 8)]
    with serving(settings, auth=False) as site:
        r = httpx.post(site + "/v1/match", json={"brand_id": "brand01", "k": 8}, timeout=60)
        assert r.status_code == 200, r.text
        assert [h["influencer_id"] for h in r.json()["data"]] == want
        assert "signals: content + category prior (cat0 brands' partners, learned blend" in r.json()["ranking"]
        r = httpx.post(site + "/v1/match", json={"brand_id": "brand01", "k": 8, "signals": "content"}, timeout=60)
        assert r.json()["ranking"].endswith("signals: content only (signals=content)")


def test_propensity_counts_tags_and_sponsors_but_not_matches_nor_the_brand() -> None:
    """A known match is a label (held-out brands' too), so propensity never counts it; a brand's
    own handle is left out, as a brand with no known partner was never tagged."""
    from congruence.store.collab_index import KIND_CODE, CollabIndex

    # row 0: tagged and sponsored by nike, matched to zara; row 1: tagged zara and adidas; row 2: nothing
    kinds = ["tag", "sponsor", "match", "tag", "tag"]
    ci = CollabIndex(
        np.array([0, 3, 5, 5]),
        np.array([0, 0, 1, 1, 2], np.int32),
        np.array([KIND_CODE[k] for k in kinds], np.int8),
        np.array([2, 1, 0, 1, 1], np.int32),
        np.array([0, 1, 0, 0, 0], np.int32),
        np.full(5, np.nan),
        ("nike", "zara", "adidas"),
        "t",
    )
    rows = np.array([0, 1, 2])
    assert ci.tag_counts(rows).tolist() == [1, 1 + 1, 0]
    assert ci.tag_counts(rows, ("zara",)).tolist() == [1, 1, 0]  # row 0's match to zara never counted
    assert ci.tag_counts(rows, ("nike", "nobody")).tolist() == [0, 2, 0]
