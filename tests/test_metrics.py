"""Account metrics: the figures against hand-computed values, the authenticity signals with
their figure and threshold, dirty values, and the recompute in the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.indexer.account_metrics.compute import figures, group_median
from congruence.indexer.account_metrics.recompute import recompute as recompute_metrics
from congruence.indexer.account_metrics.signals import Z_MAX, authenticity, follower_band
from congruence.indexer.corpus import Post
from congruence.indexer.prepare import prepare_posts
from congruence.store import account_metrics as metrics_store
from congruence.store.account_metrics import AccountArrays, PostArrays
from congruence.store.records import Store
from congruence.store.rows import Account

from .conftest import run

DAY = 86_400.0
NAN = float("nan")


def arrays(
    followers: list[float], posts: list[tuple[int, float, float, float, int]], categories: list[str] | None = None
) -> tuple[AccountArrays, PostArrays]:
    """posts: (account, day, likes, comments, sponsored 1/0/-1)."""
    n = len(followers)
    acc = AccountArrays(
        [f"a{i}" for i in range(n)], ["influencer"] * n, categories or ["food"] * n, np.array(followers, np.float64)
    )
    cols = list(zip(*posts, strict=True)) if posts else [[]] * 5
    return acc, PostArrays(
        np.array(cols[0], np.int64),
        np.array(cols[1], np.float64) * DAY,
        np.array(cols[2], np.float64),
        np.array(cols[3], np.float64),
        np.array(cols[4], np.int8),
        [f"p{i}" for i in range(len(posts))],
    )


def test_figures_by_hand() -> None:
    # a0: 14 posts a day apart; the newest 12 (days 2..13) have likes 20..130 step 10, comments 2
    a0 = [(0, d, 10.0 * d, 2.0, 1 if d in (12, 13) else 0) for d in range(14)]
    # a1: dirty: zero followers; a2: unknown followers; a3: one post, likes unknown, sponsorship unknown
    rest = [(1, 0, 50, 5, 0), (1, 1, 60, 5, 0), (2, 0, 50, 5, 0), (3, 0, NAN, 1, -1)]
    acc, posts = arrays([1000.0, 0.0, NAN, 500.0], a0 + rest)
    f = figures(acc, posts, n_last=12)
    # median of (10 d + 2) / 1000 over d = 2..13: (72 + 82) / 2 / 1000
    assert f.er[0] == pytest.approx(0.077) and f.er_posts[0] == 12
    assert f.posts_per_week[0] == pytest.approx(11 / (11 / 7))  # 12 posts over 11 days: 7 a week
    assert f.sponsored_share[0] == pytest.approx(2 / 12)
    # sponsored (days 12, 13: 122, 132) against organic (days 0..11: median of 2..112 = 57) over all posts
    assert f.sponsored_ratio[0] == pytest.approx(127 / 57) and (f.sponsored_posts[0], f.organic_posts[0]) == (2, 12)
    assert np.isnan(f.er[1:]).all() and f.er_posts[1:].tolist() == [0, 0, 0]  # 0, unknown followers; no likes
    assert f.posts_per_week[1] == pytest.approx(1.0)  # two posts a day apart: at least a week between
    assert np.isnan(f.posts_per_week[2]) and np.isnan(f.sponsored_share[3]) and np.isnan(f.sponsored_ratio[1])
    f6 = figures(acc, posts, n_last=6)  # the window is configurable: days 8..13
    assert f6.er[0] == pytest.approx(0.107) and f6.sponsored_share[0] == pytest.approx(2 / 6)


def test_group_median_and_bands() -> None:
    med, cnt = group_median(np.array([0, 0, 2, 0, 2]), np.array([3.0, 1.0, 5.0, 2.0, 7.0]), 4)
    assert med[[0, 2]].tolist() == [2.0, 6.0] and np.isnan(med[[1, 3]]).all() and cnt.tolist() == [3, 0, 2, 0]
    assert follower_band(np.array([NAN, -5, 0, 999, 1000, 9_999, 2_000_000])).tolist() == [-1, -1, -1, 0, 1, 2, 7]


def peers(n: int, odd: dict[int, tuple[float, float]]) -> tuple[AccountArrays, PostArrays]:
    """n food accounts with 10,000 followers, 6 posts each: likes 300-ish, comments 10-ish
    (a little spread), unless ``odd`` gives an account (likes, comments)."""
    rng = np.random.default_rng(0)
    rows = []
    for a in range(n):
        base_l, base_c = odd.get(a, (300.0 * rng.uniform(0.8, 1.25), 10.0 * rng.uniform(0.8, 1.25)))
        for d in range(6):
            rows.append((a, d, round(base_l * (1 + 0.02 * d)), round(base_c), 0))
    return arrays([10_000.0] * n, rows)


def test_authenticity_flags_carry_figure_and_threshold() -> None:
    acc, posts = peers(40, {3: (300.0, 200.0), 5: (3000.0, 100.0)})
    likes = posts.likes.copy()
    likes[7 * 6 + 2] *= 8  # account 7: one post with 8x its usual likes
    posts = PostArrays(posts.account, posts.ts, likes, posts.comments, posts.sponsored, posts.ids)
    f = figures(acc, posts)
    flags = authenticity(acc, posts, f.er, 12)
    raised = {(i, fl.signal) for i, fs in enumerate(flags) for fl in fs}
    assert (3, "comment_like_ratio") in raised and (5, "er_outlier") in raised and (7, "like_spike") in raised
    assert {i for i, _ in raised} <= {3, 5, 7}  # the ordinary accounts raise nothing
    spike = next(fl for fl in flags[7] if fl.signal == "like_spike")
    assert spike.threshold == 5.0 and spike.value >= 5.0 and spike.post_id == posts.ids[7 * 6 + 2]
    assert "threshold 5x" in spike.text
    ratio = next(fl for fl in flags[3] if fl.signal == "comment_like_ratio")
    assert ratio.threshold == Z_MAX and ratio.value > Z_MAX and "food influencers (n=40)" in ratio.text
    er = next(fl for fl in flags[5] if fl.signal == "er_outlier")
    assert er.value > Z_MAX and "10k-50k followers" in er.text and f"threshold +-{Z_MAX}" in er.text
    few_acc, few_posts = peers(10, {3: (300.0, 200.0)})  # fewer than 20 peers: no reference, no flag
    assert not any(
        fl.signal != "like_spike"
        for fs in authenticity(few_acc, few_posts, figures(few_acc, few_posts).er, 12)
        for fl in fs
    )


def _store(settings: Settings, tmp_path: Path, accounts: list[Account], posts: list[Post]) -> None:
    with Store.open(settings) as store:
        store.upsert_accounts(accounts)
        stored, errors = prepare_posts(posts, tmp_path, set())
        assert errors == []
        store.upsert_posts(stored)


def test_recompute_stores_metrics_counts_dirty_values_and_writes_only_changes(
    settings: Settings, tmp_path: Path, env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    accounts = [
        Account("ann", "influencer", "ann", "food", 1000),
        Account("zero", "influencer", "zero", "food", 0),
        Account("nofol", "influencer", "nofol", "food", None),
        Account("hidden", "influencer", "hidden", "food", None, extra={"followers_reported": -1}),
    ]
    posts = [
        Post(f"ann{i}", "ann", None, "c", 10 * (i + 1), 1, t0 + timedelta(days=i), sponsored=i == 0) for i in range(5)
    ]
    posts += [
        Post("z0", "zero", None, "c", 5, 0, t0),
        Post("n0", "nofol", None, "c", None, None, None),
        Post("n1", "nofol", None, "c", 3, None, t0, extra={"sponsored_unknown": True}),
        Post("h0", "hidden", None, "c", 7, 1, t0),
    ]
    _store(settings, tmp_path, accounts, posts)
    with Store.open(settings) as store:
        report = recompute_metrics(store)
        assert (report.accounts, report.changed, report.with_er) == (4, 4, 1)
        assert report.dirty["accounts_followers_zero"] == 1 and report.dirty["accounts_followers_missing"] == 1
        assert report.dirty["accounts_followers_negative"] == 1  # stored as unknown, counted by its figure
        assert report.dirty["posts_likes_missing"] == 1 and report.dirty["posts_comments_missing"] == 2
        assert report.dirty["posts_time_missing"] == 1 and report.dirty["posts_sponsorship_unknown"] == 1
        got = metrics_store.read(store, ["ann", "zero", "nofol", "hidden"])
        assert got["hidden"].engagement_rate is None and got["hidden"].follower_band is None
        assert got["ann"].engagement_rate == pytest.approx(31 / 1000) and got["ann"].er_posts == 5
        assert got["ann"].sponsored_share == pytest.approx(0.2) and got["ann"].follower_band == "1k-5k"
        assert got["ann"].posts_per_week == pytest.approx(4.0)  # 5 posts in 4 days: over at least a week
        assert got["zero"].engagement_rate is None and got["nofol"].follower_band is None
        assert recompute_metrics(store).changed == 0  # nothing moved: nothing written
        gen = store.meta().get("generation")
    code, out, _ = run(capsys, "metrics", "--er-posts", "2", "--json")
    assert code == 0 and '"last_n": 2' in out
    with Store.open(settings) as store:
        assert metrics_store.read(store, ["ann"])["ann"].engagement_rate == pytest.approx(
            46 / 1000
        )  # newest 2: 51 and 41
        assert store.meta().get("generation") != gen  # serving processes reload
        assert recompute_metrics(store).last_n == 2  # remembered
    code, _, err = run(capsys, "metrics", "--er-posts", "0")
    assert (
        code == 1
        and err.strip()
        == "error: --er-posts (the posts the engagement rate is over) must be a whole number from 1 to 1000, got 0"
    )


def test_delete_recomputes_the_peers_flags(settings: Settings, tmp_path: Path, env: Settings) -> None:
    """An account flagged against 20 food peers is no longer flagged once deleting two
    leaves fewer than 20 peers to compare with: ``delete`` recomputes the metrics."""
    from congruence.indexer.maintenance import delete_accounts

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(0)
    accounts, posts = [], []
    for a in range(21):  # account 0 writes 200 comments to 300 likes, the others about 10
        accounts.append(Account(f"f{a}", "influencer", f"f{a}", "food", 10_000))
        likes, comments = (300.0, 200.0) if a == 0 else (300 * rng.uniform(0.8, 1.25), 10 * rng.uniform(0.8, 1.25))
        posts += [
            Post(
                f"f{a}p{d}", f"f{a}", None, "c", round(likes * (1 + 0.02 * d)), round(comments), t0 + timedelta(days=d)
            )
            for d in range(6)
        ]
    _store(settings, tmp_path, accounts, posts)
    with Store.open(settings) as store:
        recompute_metrics(store)
        assert "comment_like_ratio" in {f.signal for f in metrics_store.read(store, ["f0"])["f0"].flags}
    assert sorted(delete_accounts(settings, ["f1", "f2"])) == ["f1", "f2"]
    with Store.open(settings) as store:
        got = metrics_store.read(store, ["f0", "f1"])
    assert "f1" not in got and got["f0"].flags == ()  # 19 peers left: no reference, no flag
