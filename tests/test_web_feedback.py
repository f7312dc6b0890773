"""Like / dislike on the web page's cards, the brand-safety filters and look-alikes of the liked,
in Debian's Chromium, with and without a trained head."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server import serving
from .test_safety import planted_store
from .test_web import CHROMIUM, _shot, browser, page  # noqa: F401 (fixtures)

BRAND = "brand_peakfit"
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)


@pytest.fixture(scope="module", params=["head", "pooled"])
def site(
    request: pytest.FixtureRequest, pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("web-feedback")
    settings = planted_store(pg_url, small_corpus, tmp, with_head=request.param == "head")
    with serving(settings, auth=False) as url:
        yield {"url": url, "kind": request.param}


# counts the answers the page has read, by path: the page's own code runs on before anything else can
ANSWERS = """
window.__answers = {};
const readJson = Response.prototype.json;
Response.prototype.json = function () {
  const path = new URL(this.url).pathname;
  return readJson.call(this).then(v => { window.__answers[path] = (window.__answers[path] || 0) + 1; return v; });
};
"""


def api_ids(site: dict, path: str, body: dict) -> list[str]:
    r = httpx.post(site["url"] + path, json={"posts": 3, **body}, timeout=60)
    assert r.status_code == 200, r.text
    return [h["influencer_id"] for h in r.json()["data"]]


def shown(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.get_attribute("data-influencer") for c in page.locator(".card").all()]


def wait_for(page, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('.card')]"
        ".map(c => c.dataset.influencer)) === JSON.stringify(ids)",
        arg=ids,
    )


def search_brand(page, site: dict, k: int) -> None:  # type: ignore[no-untyped-def]
    """Open the page and search BRAND's first k, all follower counts."""
    page.goto(site["url"] + "/")
    page.wait_for_function("document.querySelectorAll('#brand-list option').length === 6")
    page.fill("#brand", BRAND)
    page.uncheck("#micro")
    page.fill("#k", str(k))
    page.click("#search-btn")


def assert_icon_button(button, label: str, title: str) -> None:  # type: ignore[no-untyped-def]
    """A labelled button drawn with an inline SVG icon, not an emoji (a bare Debian has no emoji
    font: an emoji there is an empty box, with a size of its own, so the size alone proves nothing)."""
    assert button.get_attribute("aria-label") == label and button.get_attribute("title") == title
    assert button.is_visible()
    box = button.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0, box
    icon = button.locator("svg")
    assert icon.count() == 1 and icon.get_attribute("aria-hidden") == "true"
    drawn = icon.bounding_box()
    assert drawn is not None and drawn["width"] > 0 and drawn["height"] > 0, drawn
    text = button.text_content()
    assert text.isascii(), f"a pictograph in {label!r}: {text!r}"


def test_thumbs_rerun_the_search_and_show_what_changed(site: dict, page) -> None:  # type: ignore[no-untyped-def]
    search_brand(page, site, 6)
    first = api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 6})
    wait_for(page, first)
    card = page.locator(f'.card[data-influencer="{first[0]}"]')
    handle = card.locator(".handle").inner_text()
    assert_icon_button(card.locator("button.like"), f"More like this {handle}", "More like this")
    assert_icon_button(card.locator("button.dislike"), f"Fewer like this {handle}", "Fewer like this")
    assert card.locator("button.like").get_attribute("aria-pressed") == "false"
    card.locator("button.dislike").click()
    second = api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 6, "dislike": [first[0]]})
    wait_for(page, second)  # re-run at once, as the API ranks with the feedback
    unmark = page.locator(f'.feedback .mark.dislike[data-influencer="{first[0]}"] button')
    assert_icon_button(unmark, f"Remove the mark: disliked {handle}", "Remove this mark")
    assert first[0] not in second
    new = [a for a in second if a not in first]
    changes = page.locator("#changes").inner_text()
    assert changes.startswith(f"What changed: {len(new)} new") and "not shown again" in changes
    assert [c.get_attribute("data-influencer") for c in page.locator(".card:has(.badge.new)").all()] == new
    liked = "pets_creator_01" if "pets_creator_01" in second else second[-1]
    page.locator(f'.card[data-influencer="{liked}"] button.like').click()
    third = api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 6, "like": [liked], "dislike": [first[0]]})
    wait_for(page, third)
    assert liked not in third and page.locator(".feedback .mark.like").get_attribute("data-influencer") == liked
    _shot(page, f"feedback-{site['kind']}")
    page.click("#lookalikes-btn")
    look = api_ids(site, "/v1/similar", {"influencers": [liked], "k": 6, "dislike": [first[0]]})
    wait_for(page, look)
    assert page.locator("#results-title").inner_text() == "Look-alikes of 1 influencer"
    page.locator(".feedback .mark.dislike button").click()  # its remove button undoes a mark and re-runs
    wait_for(page, api_ids(site, "/v1/similar", {"influencers": [liked], "k": 6}))


def test_brand_safe_filters_and_flags_on_cards(site: dict, page) -> None:  # type: ignore[no-untyped-def]
    search_brand(page, site, 18)
    wait_for(page, api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 18}))
    flag = page.locator('.card[data-influencer="fitness_creator_01"] .flagged')
    assert flag.inner_text() == "1 of 3 posts flagged: drugs" and "beer_p: drugs, craft beer" in flag.get_attribute(
        "title"
    )
    warning = flag.locator("svg.icon-warning")  # the sign is drawn, not an emoji
    assert warning.get_attribute("aria-hidden") == "true" and (warning.bounding_box() or {}).get("width", 0) > 0
    page.check("#brand-safe")
    page.click("#search-btn")
    safe = api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 18, "brand_safe": True})
    wait_for(page, safe)
    assert "fitness_creator_01" not in safe and "food_creator_02" not in safe and page.locator(".flagged").count() == 0
    page.uncheck("#brand-safe")
    page.select_option("#exclude-categories", ["arms"])
    page.click("#search-btn")
    wait_for(page, api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 18, "exclude_categories": ["arms"]}))
    assert "food_creator_02" not in shown(page) and "fitness_creator_01" in shown(page)


def test_reruns_read_the_form_now_keep_dislikes_and_drop_stale_answers(site: dict, page) -> None:  # type: ignore[no-untyped-def]
    page.add_init_script(ANSWERS)
    search_brand(page, site, 6)
    first = api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 6})
    wait_for(page, first)
    held = []  # the first feedback re-run is held back until a later one has answered

    def hold_first(route) -> None:  # type: ignore[no-untyped-def]
        if not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/v1/match", hold_first)
    page.locator(f'.card[data-influencer="{first[0]}"] button.dislike').click()
    page.locator(f'.card[data-influencer="{first[1]}"] button.dislike').click()
    both = api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 6, "dislike": first[:2]})
    wait_for(page, both)
    read = page.evaluate("window.__answers['/v1/match']")
    with page.expect_response("**/v1/match"):
        held[0].continue_()  # the older answer (only first[0] disliked) arrives last
    page.wait_for_function("n => window.__answers['/v1/match'] > n", arg=read)  # ... and the page has read it
    assert shown(page) == both  # and dropped it: first[1] does not come back
    page.unroute("**/v1/match")
    # a filter ticked after the search counts in the next re-run, as the form shows it
    page.check("#brand-safe")
    page.fill("#safe-last", "2")
    liked = both[-1]
    page.locator(f'.card[data-influencer="{liked}"] button.like').click()
    steered = api_ids(
        site,
        "/v1/match",
        {"brand_id": BRAND, "k": 6, "like": [liked], "dislike": first[:2], "brand_safe": True, "safe_last": 2},
    )
    wait_for(page, steered)
    assert steered != api_ids(site, "/v1/match", {"brand_id": BRAND, "k": 6, "like": [liked], "dislike": first[:2]})
    # a card's look-alikes keep what was disliked out
    seed = steered[0]
    page.locator(f'.card[data-influencer="{seed}"] a.similar').click()
    look = api_ids(
        site, "/v1/similar", {"influencers": [seed], "k": 6, "dislike": first[:2], "brand_safe": True, "safe_last": 2}
    )
    wait_for(page, look)
    assert not set(look) & set(first[:2])
    assert sorted(m.get_attribute("data-influencer") for m in page.locator(".feedback .mark.dislike").all()) == sorted(
        first[:2]
    )
    # a new list, not the brand's re-run: nothing marked new or moved against the brand's list
    assert page.locator("#changes").inner_text() == "The liked and disliked are not shown again."
    assert page.locator(".card .badge").count() == 0
