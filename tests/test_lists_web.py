"""Campaign lists on the web page, in a real headless Chromium on a real server (docs/lists.md):
create a list, add from a card, change status and note, a stale edit refused with the current
entry shown, reload (it persists), leave the list out of the next search, export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from congruence.core.settings import Settings
from congruence.store.records import Store

from .server import serving
from .test_lists import BRAND, LIST_TABLES, corpus_store  # noqa: F401  (fixture)
from .test_web import CHROMIUM, _shot, browser, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def site(corpus_store: Settings) -> Iterator[str]:  # noqa: F811
    with Store.open(corpus_store) as store:
        store.conn.execute(f"TRUNCATE {LIST_TABLES} RESTART IDENTITY CASCADE")
    with serving(corpus_store, auth=False) as url:
        yield url


def _search(page) -> list[str]:  # type: ignore[no-untyped-def]  # noqa: F811
    page.click("#search-btn")
    page.wait_for_function("document.getElementById('status').textContent.endsWith('best first.')")
    return [c.get_attribute("data-influencer") for c in page.locator(".card").all()]


def test_add_change_reload_exclude_export(site: str, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(site + "/")
    page.wait_for_function("document.querySelectorAll('#brand-list option').length === 6")
    assert page.locator("#list-select option").all_inner_texts() == ["no list yet"]
    page.fill("#brand", BRAND)
    page.fill("#list-name", "spring")
    page.click("#list-create")
    page.wait_for_function("document.getElementById('list-status').textContent.startsWith('Created')")
    assert page.locator("#list-select").input_value() == "spring"
    page.uncheck("#micro")
    page.fill("#k", "18")
    shown = _search(page)
    assert len(shown) == 18
    first = page.locator(".card").first
    button = first.locator("button.add-to-list")
    assert button.is_visible() and button.get_attribute("aria-label").startswith("Add @")
    button.click()
    row = page.locator(f"#list-entries tr[data-influencer='{shown[0]}']")
    row.wait_for()
    assert row.locator("select").input_value() == "prospect"
    row.locator("select").select_option("contacted")
    row.locator("input").fill("DM sent")
    row.locator("button").click()
    page.wait_for_function("document.getElementById('list-status').textContent.startsWith('Saved')")
    row = page.locator(f"#list-entries tr[data-influencer='{shown[0]}']")
    assert row.get_attribute("data-version") == "2"
    assert page.locator("#list-select option:checked").inner_text() == f"spring · {BRAND} (1)"
    _shot(page, "list-panel")

    # another person changes the entry; the page's edit, made at version 2, is refused
    r = httpx.patch(f"{site}/v1/lists/spring/entries/{shown[0]}", json={"status": "declined", "version": 2}, timeout=60)
    assert r.status_code == 200
    row.locator("select").select_option("agreed")
    row.locator("button").click()
    page.wait_for_function("document.getElementById('list-status').textContent.startsWith('Not saved')")
    assert "(now declined)" in page.locator("#list-status").inner_text()
    row = page.locator(f"#list-entries tr[data-influencer='{shown[0]}']")
    assert (row.locator("select").input_value(), row.get_attribute("data-version")) == ("declined", "3")
    row.locator("select").select_option("contacted")  # decided again, on the current entry
    row.locator("button").click()
    page.wait_for_function("document.getElementById('list-status').textContent.startsWith('Saved')")

    page.reload()  # the list persists, and the page remembers which one was open
    row = page.locator(f"#list-entries tr[data-influencer='{shown[0]}']")
    row.wait_for()
    assert (row.locator("select").input_value(), row.locator("input").input_value()) == ("contacted", "DM sent")
    page.fill("#brand", BRAND)
    page.uncheck("#micro")
    page.fill("#k", "18")
    _search(page)
    assert page.locator(f".card[data-influencer='{shown[0]}'] .in-lists").inner_text() == "in spring: contacted"

    page.fill("#exclude-list", "spring")
    again = _search(page)
    assert again == [a for a in shown if a != shown[0]]  # the 17 others, in the same order
    page.select_option("#exclude-status", ["declined"])  # only the declined ones: this one is contacted
    assert shown[0] in _search(page)

    with page.expect_download() as dl:
        page.click("#list-export")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert [(r["influencer_id"], r["status"], r["note"]) for r in rows] == [(shown[0], "contacted", "DM sent")]
    assert dl.value.suggested_filename == "spring.csv"
