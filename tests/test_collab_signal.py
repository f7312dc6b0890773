"""The collaboration signal (store/collab_signal.py, training/fusion_model.py): the graph as the snapshot
reads it, the co-occurrence score against a brute-force count, the features of a list, and a
fusion learned on training brands (training/fusion.py) that ranks a simulated warm start."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from congruence.core.settings import Settings
from congruence.indexer.corpus import Corpus, Post
from congruence.store.collab_index import load_collabs
from congruence.store.collab_signal import HANDLE_POWER, CollabSignal, Partners, brand_partners, own_handles
from congruence.store.records import Store
from congruence.store.rows import Account, Match
from congruence.training.fusion_model import FEATURES, features

from .test_collaborations import store_corpus


def _corpus(root: Path) -> Corpus:
    """Eight creators: a0-a3 tag brand x and shop p; b0-b3 tag shop q; a3 and b0 also tag 'big',
    which everyone else tags too; a0 is x's known match."""
    accounts = [
        Account(f"{g}{i}", "influencer", f"{g}{i}", "fit" if g == "a" else "food", 1000) for g in "ab" for i in range(4)
    ]
    accounts += [Account("x", "brand", "BrandX", "sport", None), Account("p", "brand", "p", "sport", None)]
    posts = []
    for i in range(4):
        posts.append(Post(f"pa{i}", f"a{i}", None, "run", tagged=("@brandx", "p") if i < 2 else ("p",)))
        posts.append(Post(f"pb{i}", f"b{i}", None, "eat", tagged=("q", "big")))
    posts.append(Post("pa3b", "a3", None, "run", tagged=("big",)))
    return Corpus(root, accounts, posts, [Match("x", "a0")])


def test_the_score_is_the_brute_force_co_occurrence(settings: Settings, tmp_path: Path) -> None:
    store_corpus(settings, _corpus(tmp_path))
    with Store.open(settings) as store:
        table = store.account_table("influencer")
        ci = load_collabs(store, table)
        own = own_handles(store, ["x"])["x"]
    assert own == ("brandx", "x")
    partners = brand_partners(ci, own)
    row = {a: i for i, a in enumerate(table.ids)}
    assert sorted(table.ids[r] for r in partners.rows) == ["a0", "a1"]  # a0: tag and match; a1: tag
    sig = CollabSignal(ci)
    # brute force: handles (but the brand's) each partner worked with, weighted by partners / influencers**0.5
    worked = {a: set() for a in table.ids}
    for i in range(4):
        worked[f"a{i}"] |= {"brandx", "p"} if i < 2 else {"p"}
        worked[f"b{i}"] |= {"q", "big"}
    worked["a3"].add("big")
    weight = {}
    for h in {h for hs in worked.values() for h in hs} - {"brandx", "x"}:
        n_partners = sum(h in worked[a] for a in ("a0", "a1"))
        weight[h] = n_partners / sum(h in hs for hs in worked.values()) ** HANDLE_POWER if n_partners else 0.0
    want = np.array([sum(weight.get(h, 0.0) for h in worked[a]) for a in table.ids])
    got = sig.scores(sig.weights(partners))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[row["a2"]] == got[row["a3"]] > 0 and got[row["b0"]] == 0  # p shared; q and big are not the partners'
    assert math.isclose(got[row["a2"]], 2 / 4**HANDLE_POWER, rel_tol=1e-6)
    # best: positive scores only, best first, the allowed mask honoured
    best = sig.best(sig.weights(partners), 10)
    assert {table.ids[r] for r in best} == {"a0", "a1", "a2", "a3"}
    allowed = np.ones(len(table.ids), bool)
    allowed[row["a2"]] = False
    assert "a2" not in {table.ids[r] for r in sig.best(sig.weights(partners), 10, allowed)}
    assert sig.propensity(np.array([row["a0"], row["a3"], row["b1"]])).tolist() == [2, 2, 2]


def test_a_brands_own_handle_weighs_nothing(settings: Settings, tmp_path: Path) -> None:
    store_corpus(settings, _corpus(tmp_path))
    with Store.open(settings) as store:
        table = store.account_table("influencer")
        ci = load_collabs(store, table)
    sig = CollabSignal(ci)
    rows = np.array([i for i, a in enumerate(table.ids) if a in ("a0", "a1")])
    with_own = sig.weights(Partners(rows, ("brandx",)))
    without = sig.weights(Partners(rows))
    assert with_own[ci.code["brandx"]] == 0 and without[ci.code["brandx"]] > 0


def test_features_are_made_from_the_list_alone() -> None:
    content = np.array([0.9, 0.5, -np.inf, 0.7])
    x = features(content, np.array([0.0, 2.0, 1.0, 0.0]), np.array([0.5, 0.0, 0.5, 1.0]), np.array([0, 3, 1, 0]))
    assert x.shape == (4, len(FEATURES))
    f = dict(zip(FEATURES, x.T, strict=True))
    assert f["content_pct"][2] == f["content_pct"][1] == 0.0  # one the head could not score counts as the lowest
    assert f["content_pct"][0] == 1.0 and f["content_pct"][3] > f["content_pct"][1]
    assert f["collab_pct"].tolist() == [0.0, 1.0, 0.0, 0.0]  # ranked among those with a score
    assert np.allclose(f["propensity"], np.log1p([0, 3, 1, 0]))
    # the same candidates in another list get the same features: nothing depends on other queries
    y = features(
        content[[3, 0, 1, 2]], np.array([0.0, 0.0, 2.0, 1.0]), np.array([1.0, 0.5, 0.0, 0.5]), np.array([0, 0, 3, 1])
    )
    np.testing.assert_allclose(y, x[[3, 0, 1, 2]])
