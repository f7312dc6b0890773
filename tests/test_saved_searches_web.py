"""Saved searches on the web page, in a real headless Chromium on a real server
(docs/saved-searches.md): save the search form (with a like) under a name, rerun it from the
saved-searches panel (the same list as the match), delete an account, rerun: the one that moved
in is marked on its card and the deleted one is named gone; a taken name asks to confirm the
replacement; delete, once confirmed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from congruence.core.settings import Settings
from congruence.indexer.maintenance import delete_accounts

from .server import serving
from .test_saved_searches import BRAND, fresh_corpus
from .test_web import CHROMIUM, _shot, browser, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def store(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return fresh_corpus(pg_url, small_corpus, tmp_path_factory.mktemp("searches-web") / "home")


@pytest.fixture(scope="module")
def site(store: Settings) -> Iterator[str]:
    with serving(store, auth=False) as url:
        yield url


def _cards(page) -> list[str]:  # type: ignore[no-untyped-def]  # noqa: F811
    return [c.get_attribute("data-influencer") for c in page.locator(".card").all()]


def _saved_status(page, start: str) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    page.wait_for_function(f"document.getElementById('saved-status').textContent.startsWith({start!r})")
    return str(page.locator("#saved-status").inner_text())


def test_save_rerun_new_and_gone(site: str, store: Settings, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(site + "/")
    page.wait_for_function("document.querySelectorAll('#brand-list option').length === 6")
    assert page.locator("#saved-select option").all_inner_texts() == ["no saved search yet"]
    assert page.locator("#saved-run").is_disabled()
    page.fill("#brand", BRAND)
    page.uncheck("#micro")
    page.fill("#k", "5")
    page.click("#search-btn")
    page.wait_for_function("document.getElementById('status').textContent.endsWith('best first.')")
    liked = _cards(page)[1]
    page.locator(f".card[data-influencer='{liked}'] button.like").click()
    page.wait_for_function(f"!document.querySelector(\".card[data-influencer='{liked}']\")")
    page.wait_for_function("document.getElementById('status').textContent.endsWith('best first.')")
    page.fill("#search-name", "weekly")
    page.click("#search-save")
    _saved_status(page, "Saved the search weekly")
    assert page.locator("#saved-select option:checked").inner_text() == f"weekly · {BRAND} · k 5 (never run)"
    opts = httpx.get(f"{site}/v1/searches/weekly", timeout=60).json()["options"]
    assert (opts["k"], opts["posts"], opts["feedback"]["like"], opts["filters"]["min_followers"]) == (
        5,
        3,
        [liked],
        None,
    )

    page.fill("#brand", "")  # the form no longer matters: the saved search has its own options
    page.click("#saved-run")
    assert _saved_status(page, "First run of weekly").startswith("First run of weekly: nothing to compare with")
    page.wait_for_function("document.getElementById('results-title').textContent === 'Saved search weekly'")
    body = {"brand_id": BRAND, "k": 5, "posts": 3, "micro": False, "like": [liked]}
    want = [h["influencer_id"] for h in httpx.post(f"{site}/v1/match", json=body, timeout=60).json()["data"]]
    first = _cards(page)
    assert first == want and len(first) == 5 and page.locator(".run-new").count() == 0

    assert delete_accounts(store, [first[0]]) == [first[0]]
    page.click("#saved-run")
    summary = _saved_status(page, "1 new since the previous run")
    assert "0 newly ingested, 1 moved in" in summary and summary.endswith(f"Gone since (deleted): {first[0]}.")
    page.wait_for_function(f"!document.querySelector(\".card[data-influencer='{first[0]}']\")")
    again = _cards(page)
    assert again[:4] == first[1:] and page.locator(".run-new").count() == 1
    badge = page.locator(f".card[data-influencer='{again[4]}'] .run-new")
    assert badge.inner_text() == "moved in"
    assert page.locator("#saved-select option:checked").inner_text() == f"weekly · {BRAND} · k 5 (2 runs)"
    _shot(page, "saved-search-rerun")

    page.fill("#brand", BRAND)  # a taken name: refused, and replaced on the second click
    page.fill("#search-name", "weekly")
    page.click("#search-save")
    assert "again to replace it" in _saved_status(page, "a saved search named 'weekly' exists already")
    page.click("#search-save")
    _saved_status(page, "Saved the search weekly")
    assert page.locator("#saved-select option:checked").inner_text() == f"weekly · {BRAND} · k 5 (never run)"

    asked: list[str] = []  # deleting asks first: dismissed, nothing is deleted
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#saved-delete")
    page.wait_for_function("document.getElementById('saved-select').value === 'weekly'")
    assert asked == ["Delete the saved search weekly and its runs?"]
    assert httpx.get(f"{site}/v1/searches", timeout=60).json()["count"] == 1
    page.once("dialog", lambda d: d.accept())
    page.click("#saved-delete")
    _saved_status(page, "Deleted the saved search weekly")
    assert page.locator("#saved-select option").all_inner_texts() == ["no saved search yet"]
    assert httpx.get(f"{site}/v1/searches", timeout=60).json()["count"] == 0
