"""The warm-start corpus (congruence/datasets/warm_start.py) on the real posts: what it hides stays
hidden, and no single simple property of an account gives the hidden partners away."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from congruence.datasets.warm_start import WarmStartConfig, build_warm_start_corpus, handle_stripper

POSTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "instagram" / "posts.jsonl.gz"
needs_posts = pytest.mark.skipif(not POSTS.exists(), reason=f"real Instagram posts not found at {POSTS}")


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    r = rankdata(scores)
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_warm_start_corpus(POSTS, tmp_path_factory.mktemp("warm"), WarmStartConfig())


def _read(corpus: Path):
    accounts = {a["id"]: a for a in map(json.loads, (corpus / "accounts.jsonl").open(encoding="utf-8"))}
    posts = defaultdict(list)
    for p in map(json.loads, (corpus / "posts.jsonl").open(encoding="utf-8")):
        posts[p["account_id"]].append(p)
    hidden = [json.loads(line) for line in (corpus / "hidden.jsonl").open(encoding="utf-8")]
    matches = [json.loads(line) for line in (corpus / "matches.jsonl").open(encoding="utf-8")]
    return accounts, posts, hidden, matches


@needs_posts
def test_what_is_hidden_stays_hidden(corpus: Path) -> None:
    accounts, posts, hidden, matches = _read(corpus)
    matched = {(m["brand_id"], m["influencer_id"]) for m in matches}
    handles = [h["handle"] for h in hidden]
    pattern = re.compile(rf"(?<![\w.])@?(?:{'|'.join(map(re.escape, handles))})(?![\w]|\.\w)", re.IGNORECASE)
    assert len(hidden) >= 30 and sum(len(h["hidden"]) for h in hidden) >= 500
    for h in hidden:
        assert not set(h["known"]) & set(h["hidden"])
        assert all((h["brand_id"], a) in matched for a in h["known"])  # the known half are its matches
        assert not any((h["brand_id"], a) in matched for a in h["hidden"])
        for a in h["hidden"]:  # no hidden partner's post tags the brand any more
            assert not any(h["handle"] in p["tagged"] for p in posts[a])
        brand_posts = posts[h["brand_id"]]
        assert brand_posts and all(
            p["id"].rsplit("_", 1)[0] not in {q["id"] for a in h["hidden"] for q in posts[a]} for p in brand_posts
        )
    for ps in posts.values():  # held-out handles are stripped from every caption
        assert not any(pattern.search(p["caption"]) for p in ps)
    assert handle_stripper(["nike"])("Go @Nike go, nike.com and nikes") == "Go go, nike.com and nikes"


@needs_posts
def test_no_simple_property_gives_the_hidden_partners_away(corpus: Path) -> None:
    """Post count, caption length, followers and likes each rank the hidden partners of every
    held-out brand among all other influencers at AUC <= 0.60 (averaged over brands)."""
    accounts, posts, hidden, _ = _read(corpus)
    infl = [a for a, acc in accounts.items() if acc["kind"] == "influencer"]
    props = {
        "posts": np.array([len(posts[a]) for a in infl], float),
        "caption length": np.array([np.mean([len(p["caption"]) for p in posts[a]]) for a in infl]),
        "followers": np.array([accounts[a].get("followers") or 0 for a in infl], float),
        "likes": np.array([np.mean([p.get("likes") or 0 for p in posts[a]]) for a in infl]),
    }
    index = {a: i for i, a in enumerate(infl)}
    for name, x in props.items():
        aucs = []
        for h in hidden:
            pool = np.setdiff1d(np.arange(len(infl)), [index[a] for a in h["known"]])
            y = np.isin(pool, [index[a] for a in h["hidden"]])
            if y.any():
                aucs.append(auc(x[pool], y))
        got = float(np.mean(aucs))
        assert got <= 0.60, f"{name} ranks the hidden partners at AUC {got:.3f}"
