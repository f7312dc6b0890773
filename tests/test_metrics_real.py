"""The account metrics on the real Instagram posts: the figures docs/metrics.md reports, and the
PostgreSQL path (rows stored, ``recompute``) giving the same numbers as the report's."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bench.account_metrics import analyse, load
from congruence.core.settings import Settings
from congruence.datasets.instagram_text import clean_category
from congruence.indexer.account_metrics.compute import figures
from congruence.indexer.account_metrics.recompute import recompute as recompute_metrics
from congruence.indexer.corpus import Post
from congruence.indexer.prepare import prepare_posts
from congruence.store import account_metrics as metrics_store
from congruence.store.records import Store
from congruence.store.rows import Account

from .conftest import SHARED

POSTS = SHARED / "instagram" / "posts.jsonl.gz"
pytestmark = pytest.mark.skipif(not POSTS.exists(), reason=f"real posts not found at {POSTS} (../shared/data)")


def test_the_figures_docs_metrics_reports() -> None:
    r = analyse(POSTS)
    assert (r["dirty"]["posts"], r["dirty"]["accounts"], r["accounts_with_er"]) == (39_907, 23_050, 22_669)
    assert r["dirty"]["accounts_followers_missing"] == 381 and r["dirty"]["posts_category_missing"] == 662
    assert r["dirty"]["posts_duplicate"] == 177
    medians = {b["band"]: b["er_q1_median_q3"][1] for b in r["er_by_band"] if b["accounts"]}
    assert medians == pytest.approx(
        {
            "1k-5k": 0.04311,
            "5k-10k": 0.03528,
            "10k-50k": 0.02965,
            "50k-100k": 0.02492,
            "100k-500k": 0.02493,
            "500k-1M": 0.02494,
            "1M+": 0.02328,
        },
        abs=1e-5,
    )
    assert r["spearman_er_followers"] == pytest.approx(-0.229, abs=1e-3)
    s = r["sponsored"]
    assert (s["sponsored_posts"], s["accounts_with_both"], s["accounts_ratio_below_1"]) == (197, 119, 79)
    assert s["account_ratio_q1_median_q3"][1] == pytest.approx(0.742, abs=1e-3)
    assert r["flagged"] == {"comment_like_ratio": 9, "like_spike": 15, "er_outlier": 175, "growth_spike": 0}
    assert r["flagged_any"] == 198  # growth_spike: one follower count an account, no history


def _subset(tmp_path: Path, n: int) -> tuple[Path, list[dict]]:
    rows: list[dict] = []
    seen: set[str] = set()
    with gzip.open(POSTS, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["shortcode"] not in seen:  # the source repeats a few posts
                seen.add(r["shortcode"])
                rows.append(r)
            if len(rows) == n:
                break
    out = tmp_path / "subset.jsonl.gz"
    with gzip.open(out, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return out, rows


def test_stored_real_posts_give_the_reports_figures(settings: Settings, tmp_path: Path) -> None:
    source, rows = _subset(tmp_path, 3000)
    acc, posts, _ = load(source)
    want = figures(acc, posts)
    accounts = [
        Account(u, "influencer", u, c, None if np.isnan(f) else int(f))
        for u, c, f in zip(acc.ids, acc.categories, acc.followers, strict=True)
    ]
    stored = [
        Post(
            r["shortcode"],
            r["user"],
            None,
            r["caption"] or "-",
            r["likes"],
            r["comments"],
            datetime.fromtimestamp(r["ts"], UTC),
            r["sponsored"],
        )
        for r in rows
    ]
    assert all(clean_category(r["category"]) in ("", *acc.categories) for r in rows)
    with Store.open(settings) as store:
        store.upsert_accounts(accounts)
        prepared, errors = prepare_posts(stored, tmp_path, set())
        assert errors == []
        store.upsert_posts(prepared)
        report = recompute_metrics(store)
        got = metrics_store.read(store, list(acc.ids))
    assert report.accounts == len(acc.ids) and report.dirty["accounts_followers_missing"] > 0
    er = np.array([np.nan if got[a].engagement_rate is None else got[a].engagement_rate for a in acc.ids])
    assert np.allclose(er, want.er, equal_nan=True) and np.isfinite(er).sum() > 1000
    share = np.array([np.nan if got[a].sponsored_share is None else got[a].sponsored_share for a in acc.ids])
    assert np.allclose(share, want.sponsored_share, equal_nan=True)
