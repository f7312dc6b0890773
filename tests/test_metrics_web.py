"""Account metrics where people look: the HTTP API's hits, accounts and plot data on a real
server, and the web page's cards, filters and account view in a real headless Chromium."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.store import database
from congruence.store.records import Store

from .conftest import TABLES
from .server import serving
from .test_web import CHROMIUM, browser, page  # noqa: F401  (fixtures)

BRAND = "brand_peakfit"
FLAGGED = "fitness_creator_00"
FLAG = {
    "signal": "like_spike",
    "value": 6.5,
    "threshold": 5.0,
    "post_id": "fitness_creator_00_p1",
    "text": "post fitness_creator_00_p1 has 6000 likes, 6.5x the median (920) of its newest 6 posts (threshold 5x)",
}


@pytest.fixture(scope="module")
def site(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The demo corpus ingested (metrics computed), one account flagged, served without auth."""
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    settings = Settings(
        home=tmp_path_factory.mktemp("metrics-web") / "home",
        database_url=pg_url,
        batch_size=16,
        rate_limit=0,
        device="cpu",
    )
    ingest(small_corpus, settings)
    with Store.open(settings) as store:
        store.conn.execute(
            "UPDATE account_metrics SET flags = %s::jsonb WHERE account_id = %s", (json.dumps([FLAG]), FLAGGED)
        )
        store.bump_generation()
        stored = dict(store.conn.execute("SELECT account_id, engagement_rate FROM account_metrics").fetchall())
    with serving(settings, auth=False) as url:
        yield {"url": url, "er": stored}


def _match(site: dict, **filters: object) -> list[dict]:
    r = httpx.post(site["url"] + "/v1/match", json={"brand_id": BRAND, "k": 24, **filters}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_api_hits_accounts_and_plot_data_carry_the_metrics(site: dict) -> None:
    hits = _match(site)
    assert len(hits) == 18
    for h in hits:
        assert h["metrics"]["engagement_rate"] == pytest.approx(site["er"][h["influencer_id"]])
    flagged = next(h for h in hits if h["influencer_id"] == FLAGGED)["metrics"]["flags"]
    assert flagged == [FLAG]
    median = sorted(site["er"][h["influencer_id"]] for h in hits)[9]
    got = _match(site, min_er=median, no_flags=True)
    want = {a for a in (h["influencer_id"] for h in hits) if site["er"][a] >= median and a != FLAGGED}
    assert {h["influencer_id"] for h in got} == want  # all that pass, never starved
    sim = httpx.get(
        site["url"] + f"/v1/influencers/{FLAGGED}/similar",
        params={"k": 24, "max_er": median, "no_flags": "true"},
        timeout=60,
    ).json()["data"]
    assert {h["influencer_id"] for h in sim} == {
        a for a in site["er"] if a.split("_")[-2] == "creator" and site["er"][a] <= median and a != FLAGGED
    }
    r = httpx.post(site["url"] + "/v1/match", json={"brand_id": BRAND, "max_sponsored_share": 2}, timeout=60)
    assert r.status_code == 422 and "max_sponsored_share" in r.text
    acc = httpx.get(site["url"] + f"/v1/accounts/{FLAGGED}", timeout=60).json()
    assert acc["metrics"]["flags"] == [FLAG] and acc["metrics"]["last_n"] == 12
    plot = httpx.get(site["url"] + f"/v1/accounts/{FLAGGED}/metrics", timeout=60).json()
    assert plot["account_id"] == FLAGGED and plot["metrics"]["engagement_rate"] == pytest.approx(site["er"][FLAGGED])
    assert len(plot["posts"]) == 2 and all(p["likes"] is not None for p in plot["posts"])
    assert plot["peers"][0]["account_id"] == FLAGGED and plot["peers_total"] == 3  # the fitness influencers
    assert httpx.get(site["url"] + "/v1/accounts/nobody/metrics", timeout=60).status_code == 404


def test_export_job_with_metric_filters_has_the_metric_columns(site: dict) -> None:
    r = httpx.post(
        site["url"] + "/v1/exports", json={"brands": [BRAND], "k": 24, "format": "csv", "no_flags": True}, timeout=60
    )
    assert r.status_code in (200, 201, 202), r.text
    job = r.json()
    for _ in range(600):
        job = httpx.get(site["url"] + f"/v1/exports/{job['id']}", timeout=60).json()
        if job["status"] in ("done", "failed"):
            break
        __import__("time").sleep(0.1)
    assert job["status"] == "done", job
    text = httpx.get(site["url"] + f"/v1/exports/{job['id']}/download", timeout=60).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 17 and FLAGGED not in {r["influencer_id"] for r in rows}
    assert {r["influencer_id"]: float(r["engagement_rate"]) for r in rows} == pytest.approx(
        {r["influencer_id"]: site["er"][r["influencer_id"]] for r in rows}
    )
    assert all(r["authenticity_flags"] == "" for r in rows)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_cards_filters_and_account_view(site: dict, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(site["url"] + "/")
    page.wait_for_function("document.querySelectorAll('#brand-list option').length === 6")
    page.fill("#brand", BRAND)
    page.uncheck("#micro")
    page.click("#search-btn")
    page.wait_for_selector(".card")
    assert page.locator(".card").count() == 18
    card = page.locator(f'.card[data-influencer="{FLAGGED}"]')
    er = 100 * site["er"][FLAGGED]
    assert card.locator(".metrics").inner_text().startswith(f"ER {er:.1f} %")
    assert card.locator(".auth-flags").inner_text() == "⚑ like spike"
    page.fill("#min-er", "0")
    page.check("#no-flags")
    page.click("#search-btn")
    page.wait_for_function(f"!document.querySelector('.card[data-influencer=\"{FLAGGED}\"]')")
    page.wait_for_function("document.querySelectorAll('.card').length === 17")
    assert page.locator(".auth-flags").count() == 0
    page.locator(".card").first.locator("a.account-link").click()
    page.wait_for_url("**/account?id=*")
    page.wait_for_selector(".tile")
    assert page.locator(".tile").count() == 5 and page.locator("#flags .ok").count() == 1
    page.goto(site["url"] + f"/account?id={FLAGGED}")
    page.wait_for_selector("#flags li.auth-flags")
    assert page.locator("#flags li.auth-flags").inner_text() == f"⚑ like spike: {FLAG['text']}"
    assert page.locator(".tile .value").first.inner_text() == f"{er:.2f} %"
    assert page.locator("#likes-plot circle").count() == 2  # its two posts
    assert page.locator("#peers-plot circle").count() == 3 and page.locator("#peers-plot circle.me").count() == 1
    assert page.locator("#peers-plot circle.me").get_attribute("data-id") == FLAGGED
