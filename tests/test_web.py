"""The web page in a real headless Chromium (Debian's), driven by Playwright, on a real server."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from congruence.api.keys import create_key
from congruence.store import database

from .server import corpus_with_head, serving

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
BRAND = "brand_peakfit"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)


@pytest.fixture(scope="module")
def site(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two real servers on one store: the demo's (no auth) and one that needs a key."""
    settings = corpus_with_head(pg_url, tmp_path_factory.mktemp("web") / "home", small_corpus, engagement=True)
    with database.connect(pg_url, autocommit=True) as conn:
        key, _ = create_key(conn, "browser")
    with serving(settings, auth=False) as open_url, serving(settings, auth=True) as locked_url:
        yield {"url": open_url, "locked": locked_url, "key": key, "corpus": small_corpus, "settings": settings}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


RECORDER = """
window.__statuses = []; window.__bar = [];
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status"), bar = document.getElementById("progress");
  new MutationObserver(() => window.__statuses.push(status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
  if (bar) new MutationObserver(() => window.__bar.push(bar.hidden ? "hidden" : bar.firstElementChild.style.width))
    .observe(bar, { attributes: true, subtree: true });
});
"""


@pytest.fixture
def page(browser, tmp_path: Path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORDER)  # what the page showed while it worked, not only where it ended
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(60_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def _expected(site: dict, body: dict) -> list[str]:
    r = httpx.post(site["url"] + "/v1/match", json=body, timeout=60)
    return [h["influencer_id"] for h in r.json()["data"]]


def test_brand_search_heatmap_similar_export(site: dict, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(site["url"] + "/")
    page.wait_for_function("document.querySelectorAll('#brand-list option').length === 6")
    assert page.locator("#category option").count() == 7  # "any" + 6 categories
    assert page.locator("#key-box").is_hidden()  # the demo server needs no key
    page.fill("#brand", BRAND)
    page.click("#search-btn")
    page.wait_for_selector(".card")
    want = _expected(site, {"brand_id": BRAND, "k": 24, "micro": True})
    cards = page.locator(".card")
    assert cards.count() == len(want) > 0
    assert [cards.nth(i).get_attribute("data-influencer") for i in range(cards.count())] == want
    assert page.locator("#status").inner_text() == f"{len(want)} influencers, best first."
    page.wait_for_function("[...document.querySelectorAll('.thumbs img')].every(i => i.complete && i.naturalWidth > 0)")
    _shot(page, "search-results")

    page.locator(".card").first.locator(".thumbs img").first.click()
    page.wait_for_function("document.getElementById('heat-map').naturalWidth > 0")
    assert page.locator("#heat-status").inner_text().startswith(f"Red areas raised this post's match with {BRAND}")
    _shot(page, "heatmap")
    page.click("#heat-close")

    assert "Searching…" in page.evaluate("window.__statuses")
    with page.expect_download() as dl:
        page.click("#export-btn")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert [r["influencer_id"] for r in rows] == want and {r["brand_id"] for r in rows} == {BRAND}
    assert dl.value.suggested_filename == f"shortlist-{BRAND}.csv"
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Exported')")
    assert page.locator("#status").inner_text() == f"Exported {len(want)} rows."
    statuses, bar = page.evaluate("window.__statuses"), page.evaluate("window.__bar")
    assert "Exporting… 0 of 1 brands." in statuses, statuses  # the export job's progress, as it ran
    assert bar[-1] == "hidden" and "100%" in bar and any(w not in ("hidden", "100%") for w in bar), bar
    assert page.locator("#progress").is_hidden()

    first = want[0]
    page.locator(".card").first.locator("a.similar").click()
    page.wait_for_function("document.getElementById('results-title').textContent.startsWith('Influencers similar')")
    page.wait_for_selector(".card")
    similar = [c.get_attribute("data-influencer") for c in page.locator(".card").all()]
    assert similar and first not in similar


def test_new_brand_upload_empty_state_and_errors(site: dict, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(site["url"] + "/")
    page.click("#tab-new")
    images = sorted((site["corpus"] / "images").glob("brand_peakfit_p*.jpg"))
    page.set_input_files("#images", [str(p) for p in images])
    page.fill("#text", "gym workouts and protein")
    page.click("#search-btn")
    page.wait_for_selector(".card")
    assert page.locator("#results-title").inner_text() == "Influencers for your brand"
    assert page.locator(".card").count() > 0
    page.locator(".card").first.locator(".thumbs img").first.click()
    page.wait_for_function("document.getElementById('heat-map').naturalWidth > 0")
    assert page.locator("#heat-status").inner_text().startswith("Red areas raised this post's match with your brand")
    page.click("#heat-close")
    shown = [c.get_attribute("data-influencer") for c in page.locator(".card").all()]
    with page.expect_download() as dl:  # a new brand's shortlist is the list on screen
        page.click("#export-btn")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert [r["influencer_id"] for r in rows] == shown and [r["rank"] for r in rows] == [
        str(i + 1) for i in range(len(shown))
    ]

    page.locator(".card").first.locator("a.similar").click()  # a similar list has no brand to explain against
    page.wait_for_function("document.getElementById('results-title').textContent.startsWith('Influencers similar')")
    page.wait_for_selector(".card .thumbs img")
    page.locator(".card").first.locator(".thumbs img").first.click()
    assert page.locator("#heat-status").inner_text() == (
        "Heatmaps explain a match with a brand; this list compares influencers with each other."
    )
    page.click("#heat-close")

    page.click("#tab-known")
    page.fill("#brand", BRAND)
    page.fill("#min-followers", "90000")
    page.fill("#max-followers", "95000")
    page.click("#search-btn")
    page.wait_for_selector(".empty")
    assert page.locator(".empty").inner_text().startswith("No influencers pass these filters.")

    page.fill("#min-followers", "9")
    page.fill("#max-followers", "1")
    page.click("#search-btn")
    page.wait_for_selector("#status.error")
    assert page.locator("#status").inner_text() == "The minimum number of followers is above the maximum."
    page.fill("#min-followers", "200000")
    page.fill("#max-followers", "")
    page.click("#search-btn")
    page.wait_for_function("document.getElementById('status').textContent.includes('leaves no micro-influencer')")
    assert page.locator("#status").inner_text() == (
        "min_followers (200000) leaves no micro-influencer: they have 5,000-100,000 followers."
    )
    page.fill("#min-followers", "")
    page.fill("#max-followers", "")
    page.fill("#brand", "no_such_brand")
    page.click("#search-btn")
    page.wait_for_function("document.getElementById('status').textContent.includes('no_such_brand')")
    assert page.locator("#status").inner_text() == "unknown brand 'no_such_brand'."
    _shot(page, "error-state")


def test_locked_server_asks_for_a_key(site: dict, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(site["locked"] + "/")
    page.wait_for_selector("#key-box:not([hidden])")
    assert "needs an API key" in page.locator("#status").inner_text()
    page.fill("#api-key", site["key"])
    page.dispatch_event("#api-key", "change")
    page.fill("#brand", BRAND)
    page.click("#search-btn")
    page.wait_for_selector(".card")
    page.wait_for_function("[...document.querySelectorAll('.thumbs img')].every(i => i.complete && i.naturalWidth > 0)")


def test_score_page_ranks_uploaded_images(site: dict, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(site["url"] + "/score")
    images = [
        site["corpus"] / "images" / f"{p}.jpg"
        for p in ("pets_creator_00_p0", "food_creator_01_p1", "fitness_creator_02_p0")
    ]
    page.set_input_files("#files", [str(p) for p in images])
    assert page.locator("#pending figure").count() == 3
    page.locator("#pending input").nth(1).fill("fresh pasta tonight")
    page.click("#score-btn")
    page.wait_for_selector(".scored")
    rows = page.locator(".scored")
    assert rows.count() == 3
    assert [rows.nth(i).locator(".place").inner_text() for i in range(3)] == ["1", "2", "3"]
    values = [float(rows.nth(i).locator(".value").inner_text().split(" / ")[0]) for i in range(3)]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 10 for v in values)
    assert "is expected to get the most attention" in page.locator("#status").inner_text()
    # what the score rests on, beside Imagion and an expert; the small corpus measures no effect, and says so
    basis = page.locator("#basis-text").inner_text()
    assert basis.startswith("Scores come from a model trained on ") and "Imagion's model gets 50.2%" in basis
    assert "an expert 67.5%" in basis
    from congruence.engagement.suggest import NOTHING_QUALIFIES

    assert [rows.nth(i).locator(".no-suggestion").inner_text() for i in range(3)] == [NOTHING_QUALIFIES] * 3
    assert (
        page.locator("#evidence-text")
        .inner_text()
        .startswith("No concept's effect on engagement held up on the accounts held out from training")
    )
    _shot(page, "score-page")

    page.click("#clear-btn")
    assert page.locator("#score-btn").is_disabled() and page.locator(".scored").count() == 0
    fake = tmp_path / "notes.jpg"
    fake.write_text("shopping list: eggs, flour")
    page.set_input_files("#files", [str(images[0]), str(fake)])
    page.click("#score-btn")
    page.wait_for_selector("#status.error")
    assert page.locator("#status").inner_text() == (
        "images[1] (notes.jpg): not an image (JPEG, PNG, WebP, GIF, BMP or TIFF)."
    )
    assert "Scoring 2 images…" in page.evaluate("window.__statuses")
    page.click("#clear-btn")
    many = [str(p) for p in sorted((site["corpus"] / "images").glob("*.jpg"))[:7]]
    page.set_input_files("#files", many)
    assert page.locator("#pending figure").count() == 5
    assert page.locator("#status").inner_text() == "Only 5 images at a time: kept the first 5 of those."


def test_empty_store_and_unreachable_server_read_as_sentences(pg_url: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A store with nothing ingested yet, then the server gone: the page says so in words."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from congruence.core.settings import Settings

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS web_empty WITH (FORCE)")
        conn.execute("CREATE DATABASE web_empty")
    empty = Settings(
        home=tmp_path / "home", database_url=make_conninfo(pg_url, dbname="web_empty"), rate_limit=0, device="cpu"
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        with serving(empty, auth=False) as url:
            pg.goto(url + "/")
            pg.wait_for_function("document.getElementById('status').textContent.length > 0")
            assert pg.locator("#status").inner_text() == (
                "The corpus has no brands yet: describe a new brand instead, or ingest a corpus."
            )
            assert pg.locator("#category option").count() == 1  # "any"
            pg.click("#search-btn")
            assert pg.locator("#status").inner_text() == "Pick a brand first."
            pg.click("#tab-new")
            pg.click("#search-btn")
            assert pg.locator("#status").inner_text() == "Add a few images or a description of the brand."
        pg.fill("#text", "hiking boots")  # the server has stopped
        pg.click("#search-btn")
        pg.wait_for_selector("#status.error")
        assert pg.locator("#status").inner_text() == (
            "The server cannot be reached. Is `congruence serve` still running?"
        )
        _shot(pg, "empty-and-offline")
    finally:
        context.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS web_empty WITH (FORCE)")
