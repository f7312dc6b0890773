"""Feedback, look-alikes of several influencers and the brand-safety filters through the HTTP
API (a real uvicorn server), with and without a trained head."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from congruence.core.settings import Settings
from congruence.search.engine import Engine
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters

from .server import serving
from .test_safety import planted_store

BRAND = "brand_peakfit"
FLAGGED = {"fitness_creator_01", "food_creator_02"}  # the planted beer and gun posts


@pytest.fixture(scope="module", params=["head", "pooled"])
def served(
    request: pytest.FixtureRequest, pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Settings]]:
    tmp = tmp_path_factory.mktemp("api-feedback")
    settings = planted_store(pg_url, small_corpus, tmp, with_head=request.param == "head")
    with serving(settings, auth=False) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, settings


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [h["influencer_id"] for h in resp.json()["data"]]


def test_match_with_feedback_is_the_engines(served: tuple[httpx.Client, Settings]) -> None:
    client, settings = served
    first = ids(client.post("/v1/match", json={"brand_id": BRAND, "k": 18}))
    body = {"brand_id": BRAND, "k": 18, "like": ["pets_creator_01"], "dislike": first[:2], "like_weight": 1.5}
    answer = client.post("/v1/match", json=body).json()
    got = answer["data"]
    assert "plus the feedback terms" in answer["ranking"]  # the scores say how they were made
    assert "feedback" not in client.post("/v1/match", json={"brand_id": BRAND, "k": 3}).json()["ranking"]
    with Engine(settings) as engine:
        want = engine.match_brand(BRAND, 18, feedback=Feedback.make(["pets_creator_01"], first[:2], 1.5))
        plain = engine.match_brand(BRAND, 18)
    assert [h["influencer_id"] for h in got] == [h.influencer_id for h in want]
    assert [h["score"] for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
    marked = {"pets_creator_01", *first[:2]}
    assert not {h["influencer_id"] for h in got} & marked and len(got) == 15
    # the feedback moved the list, not only dropped the marked from it
    rest = [h.influencer_id for h in plain if h.influencer_id not in marked]
    assert len(rest) == 15 and [h["influencer_id"] for h in got] != rest


def test_brand_safe_and_flags_in_hits(served: tuple[httpx.Client, Settings]) -> None:
    client, _ = served
    every = client.post("/v1/match", json={"brand_id": BRAND, "k": 18}).json()["data"]
    beer = next(h for h in every if h["influencer_id"] == "fitness_creator_01")["safety"]
    assert beer["flagged_posts"] == 1 and {f["post_id"] for f in beer["flags"]} == {"beer_p"}
    assert {f["evidence"] for f in beer["flags"] if f["source"] == "words"} == {"craft beer", "vodka", "craftbeer"}
    flagged = {h["influencer_id"] for h in every if h["safety"]["flagged_posts"]}
    assert flagged >= FLAGGED
    safe = ids(client.post("/v1/match", json={"brand_id": BRAND, "k": 18, "brand_safe": True}))
    assert len(safe) == 18 - len(flagged) and not set(safe) & flagged
    arms = ids(client.post("/v1/match", json={"brand_id": BRAND, "k": 18, "exclude_categories": ["arms"]}))
    assert "food_creator_02" not in arms and "fitness_creator_01" in arms
    similar = ids(
        client.get(
            "/v1/influencers/food_creator_00/similar",
            params={"k": 18, "brand_safe": "true", "dislike": ["food_creator_01"]},
        )
    )
    assert not set(similar) & (flagged | {"food_creator_00", "food_creator_01"})
    bad = client.post("/v1/match", json={"brand_id": BRAND, "exclude_categories": ["guns"]})
    assert bad.status_code == 422 and "exclude_categories names an unknown safety category 'guns'" in bad.text
    # names separated by commas are read alike by the GET route and the JSON body
    both = {"k": 18, "exclude_categories": "drugs,arms"}
    listed = ids(client.get("/v1/influencers/food_creator_00/similar", params=both))
    assert listed == ids(client.post("/v1/similar", json={"influencers": ["food_creator_00"], **both}))
    assert not set(listed) & FLAGGED and len(listed) == 17 - len(FLAGGED)  # 18 influencers, the seed out
    nan = client.get("/v1/influencers/food_creator_00/similar", params={"like_weight": "nan"})
    assert nan.status_code == 422 and "finite number" in nan.text
    idle = client.post("/v1/match", json={"brand_id": BRAND, "safe_last": 5})
    assert idle.status_code == 422 and "safe_last (5) applies only with a brand-safety filter" in idle.text
    seed = client.post("/v1/similar", json={"influencers": ["food_creator_00"], "dislike": ["food_creator_00"]})
    assert (
        seed.status_code == 422 and seed.json()["detail"] == "'food_creator_00' is both a seed of similar and disliked"
    )


def test_lookalikes_of_several_and_a_new_brand_rerun(served: tuple[httpx.Client, Settings], small_corpus: Path) -> None:
    client, settings = served
    seeds = ["pets_creator_00", "food_creator_00"]
    body = {"influencers": seeds, "k": 5, "dislike": ["pets_creator_01"], "micro": True}
    answer = client.post("/v1/similar", json=body)
    got = ids(answer)
    with Engine(settings) as engine:
        want = engine.similar(seeds, 5, Filters.make(micro=True), feedback=Feedback.make(None, ["pets_creator_01"]))
        head = engine.snapshot.head is not None
    ranking, signals = answer.json()["ranking"].rsplit("; signals: ", 1)  # the signals that served come last
    assert signals.startswith("content only")  # the demo names no handle: no fusion
    assert ranking.endswith(
        "(to the mean of the set), plus the feedback terms (like weight x similarity to the closest liked influencer, "
        "minus dislike weight x (similarity to the closest disliked one + once something is liked, a push that grows "
        "with every disliked one nearby), plus, once both are marked, 0.25 x the position along what tells the liked "
        "from the disliked, by least squares over pooled embeddings); similarity: "
        + (
            "the cosine in the head's influencer tower mixed with the cosine of pooled embeddings (1:1 to the liked, "
            "1:3 to the disliked)"
            if head
            else "the cosine of pooled embeddings"
        )
    )
    assert got == [h.influencer_id for h in want] and not set(got) & {*seeds, "pets_creator_01"}
    image = (small_corpus / "images" / "food_creator_00_p0.jpg").read_bytes()
    new = client.post(
        "/v1/match",
        files=[("images", ("a.jpg", image, "image/jpeg"))],
        data={"text": "pasta brunch", "k": "6", "exclude_categories": "arms,drugs"},
    )
    first, query_id = ids(new), new.json()["query_id"]
    assert not set(first) & FLAGGED
    again = ids(client.post("/v1/match", json={"query_id": query_id, "k": 6, "dislike": first[:1]}))
    assert first[0] not in again and len(again) == 6
    both = client.post("/v1/match", json={"brand_id": BRAND, "query_id": query_id})
    assert both.status_code == 422 and "give either brand_id" in both.text
    same = client.post("/v1/match", json={"brand_id": BRAND, "like": ["x"], "dislike": ["x"]})
    assert same.status_code == 422 and same.json()["detail"] == "'x' is both liked and disliked"
    unknown = client.post("/v1/match", json={"brand_id": BRAND, "like": ["nobody"]})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "like names an unknown influencer: 'nobody'"
