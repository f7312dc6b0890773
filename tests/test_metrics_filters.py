"""The metric filters (--min-er, --max-er, --max-sponsored-share, --min-posts-per-week,
--no-flags) on match, similar and export, against brute force over the accounts whose stored
metrics pass (read straight from PostgreSQL): every passing account comes back, in order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.filters import Filters
from congruence.search.metric_filters import MetricBounds
from congruence.store.records import Store

from .conftest import run
from .test_export import read_rows
from .test_feedback import brute, influencer_vectors

BRAND = "brand_peakfit"
FLAGGED = ("fitness_creator_00", "food_creator_01", "pets_creator_02", "tech_creator_00")
FLAG = {"signal": "like_spike", "value": 6.0, "threshold": 5.0, "text": "post x has 6.0x the median", "post_id": "x"}


@pytest.fixture
def corpus(env: Settings, small_corpus: Path) -> Settings:
    """The demo corpus (ingest computes the metrics), with a like spike flagged on four accounts
    and one paid partnership each on three (so every filter splits the influencers)."""
    ingest(small_corpus, env)
    with Store.open(env) as store:
        store.conn.execute(
            "UPDATE posts SET sponsored = true WHERE id = ANY(%s)",
            (["fitness_creator_01_p0", "travel_creator_00_p1", "pets_creator_00_p0"],),
        )
        from congruence.indexer.account_metrics.recompute import recompute

        recompute(store)
        store.conn.execute(
            "UPDATE account_metrics SET flags = %s::jsonb WHERE account_id = ANY(%s)",
            (json.dumps([FLAG]), list(FLAGGED)),
        )
        store.bump_generation()
    return env


def passing(settings: Settings, b: MetricBounds, category: str | None = None) -> set[str]:
    """Influencers whose stored metrics pass ``b``, by SQL (NULL passes no bound)."""
    where, args = ["a.kind = 'influencer'"], []
    for col, op, v in (
        ("engagement_rate", ">=", b.min_er),
        ("engagement_rate", "<=", b.max_er),
        ("sponsored_share", "<=", b.max_sponsored_share),
        ("posts_per_week", ">=", b.min_posts_per_week),
    ):
        if v is not None:
            where.append(f"m.{col} {op} %s")
            args.append(v)
    if b.no_flags:
        where.append("jsonb_array_length(m.flags) = 0")
    if category:
        where.append("a.category = %s")
        args.append(category)
    with Store.open(settings) as store:
        rows = store.conn.execute(
            "SELECT a.id FROM accounts a JOIN account_metrics m ON m.account_id = a.id WHERE " + " AND ".join(where),
            args,
        ).fetchall()
    return {r[0] for r in rows}


def bounds_of(settings: Settings) -> list[tuple[MetricBounds, str | None]]:
    """Bounds at the medians of the stored figures, alone and together."""
    with Store.open(settings) as store:
        er, ppw = np.array(
            store.conn.execute(
                "SELECT engagement_rate, posts_per_week FROM account_metrics m JOIN accounts a ON a.id = m.account_id"
                " WHERE a.kind = 'influencer'"
            ).fetchall(),
            np.float64,
        ).T
    mid_er, mid_ppw = float(np.nanmedian(er)), float(np.nanmedian(ppw))
    return [
        (MetricBounds(min_er=mid_er), None),
        (MetricBounds(max_er=mid_er), None),
        (MetricBounds(min_er=float(np.nanquantile(er, 0.2)), max_er=float(np.nanquantile(er, 0.8))), None),
        (MetricBounds(max_sponsored_share=0.0), None),
        (MetricBounds(min_posts_per_week=mid_ppw), None),
        (MetricBounds(no_flags=True), None),
        (MetricBounds(min_er=mid_er, no_flags=True), "fitness"),
        (MetricBounds(max_sponsored_share=0.25, min_posts_per_week=0.0, no_flags=True), None),
    ]


def test_match_and_similar_against_brute_force(corpus: Settings) -> None:
    with Engine(corpus) as engine:
        xb = influencer_vectors(engine)
        q = engine.entry(engine.snapshot, BRAND, "brand").vector
        for b, category in bounds_of(corpus):
            keep = passing(corpus, b, category)
            assert 0 < len(keep) < 18, (b, category)
            filters = Filters.make(category, metrics=b)
            got = [h.influencer_id for h in engine.match_brand(BRAND, k=18, filters=filters)]
            assert got == brute(q, xb, set(), keep), (b, category)  # every one that passes: never starved
            assert [h.influencer_id for h in engine.match_brand(BRAND, k=2, filters=filters)] == got[:2]
            seed = "food_creator_00"
            sim = [h.influencer_id for h in engine.similar(seed, k=18, filters=filters)]
            assert sim == brute(xb[seed], xb, {seed}, keep), (b, category)


def test_export_applies_the_bounds_and_writes_the_metrics(corpus: Settings, tmp_path: Path) -> None:
    b = MetricBounds(no_flags=True, max_sponsored_share=0.0)
    keep = passing(corpus, b)
    with Engine(corpus) as engine:
        run_export(engine, ExportSpec((BRAND,), 18, "jsonl", Filters.make(metrics=b)), tmp_path / "s.jsonl")
        expected = [h.influencer_id for h in engine.match_brand(BRAND, 18, Filters.make(metrics=b))]
    rows = read_rows(tmp_path / "s.jsonl", "jsonl")
    assert [r["influencer_id"] for r in rows] == expected and set(expected) == keep
    assert all(r["authenticity_flags"] == "" and r["sponsored_share"] == 0 and r["engagement_rate"] > 0 for r in rows)


def test_cli_filters_bounds_checks_and_json(corpus: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "match", "--brand", BRAND, "-k", "18", "--no-flags", "--max-sponsored-share", "0%", "--json"
    )
    assert code == 0, err
    data = json.loads(out)["data"]
    assert {d["influencer_id"] for d in data} == passing(corpus, MetricBounds(no_flags=True, max_sponsored_share=0))
    m = data[0]["metrics"]
    assert m["flags"] == [] and m["sponsored_share"] == 0 and m["engagement_rate"] > 0 and m["last_n"] == 12
    code, out, _ = run(capsys, "similar", "--influencer", "fitness_creator_01", "-k", "18", "--min-er", "0%", "--json")
    assert code == 0 and json.loads(out)["count"] == 17
    code, _, err = run(capsys, "match", "--brand", BRAND, "--min-er", "5%", "--max-er", "0.01")
    assert code == 1 and "--min-er (0.05) is greater than the maximum engagement rate (0.01)" in err
    code, _, err = run(capsys, "match", "--brand", BRAND, "--max-sponsored-share", "1.5")
    assert code == 1 and "--max-sponsored-share must be at most 1, got 1.5" in err
    code, out, _ = run(capsys, "match", "--brand", BRAND, "-k", "3")
    assert code == 0 and " %" in out.splitlines()[1]  # the engagement rate in the table


def test_a_metric_filter_before_any_metrics_is_refused(corpus: Settings) -> None:
    with Store.open(corpus) as store:
        store.conn.execute("DELETE FROM account_metrics")
        store.bump_generation()
    with Engine(corpus) as engine:
        assert len(engine.match_brand(BRAND, k=18)) == 18
        with pytest.raises(InvalidInput, match="^account metrics have not been computed yet"):
            engine.match_brand(BRAND, k=3, filters=Filters.make(metrics=MetricBounds(min_er=0.01)))
