"""Saved searches over HTTP (`/v1/searches`, docs/saved-searches.md) on a real uvicorn server
with a congruence head in service: create, list, get, run, delete; the errors (404, 409, 422,
read-only 403); a rerun answers what `POST /v1/match` answers with the same body; a new brand
saved by its query_id reruns on a restarted server, whose query cache has forgotten it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from congruence.api.keys import create_key
from congruence.core.settings import Settings
from congruence.store import database
from congruence.store.records import Store
from congruence.training.jobs import train_and_deploy
from congruence.training.loop import TrainConfig

from .server import corpus_with_head, serving
from .test_saved_searches import BRAND, SEARCH_TABLES, without_marks

BODY: dict[str, Any] = {
    "brand_id": BRAND,
    "k": 6,
    "posts": 2,
    "micro": False,
    "dislike": ["travel_creator_00"],
    "like": ["fitness_creator_01"],
    "exclude_categories": "violence",
}


@pytest.fixture(scope="module")
def headed(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SEARCH_TABLES} RESTART IDENTITY CASCADE")
    settings = corpus_with_head(pg_url, tmp_path_factory.mktemp("searches-api") / "home", small_corpus)
    from congruence.safety.screen import screen

    screen(settings)  # the brand-safety filter reads the screen
    return settings


@pytest.fixture(scope="module")
def keyed(headed: Settings) -> Iterator[tuple[str, str, str]]:
    with Store.open(headed) as store:
        key, info = create_key(store.conn, "agency y")
    with serving(headed, auth=True) as url:
        yield url, key, info.id


@pytest.fixture
def api(keyed: tuple[str, str, str], headed: Settings) -> Iterator[httpx.Client]:
    with Store.open(headed) as store:
        store.conn.execute(f"TRUNCATE {SEARCH_TABLES} RESTART IDENTITY CASCADE")
    url, key, _ = keyed
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        yield c


def test_create_list_get_run_delete(api: httpx.Client, keyed: tuple[str, str, str]) -> None:
    r = api.post("/v1/searches", json={"name": "weekly", **BODY})
    assert r.status_code == 201, r.text
    s = r.json()
    assert (s["name"], s["brand_id"], s["new_brand"], s["runs"], s["created_by"]) == (
        "weekly", BRAND, False, 0, f"key:{keyed[2]}",
    )  # fmt: skip
    assert s["options"]["feedback"]["like"] == ["fitness_creator_01"]
    assert s["options"]["filters"]["exclude_categories"] == ["violence"] and s["options"]["posts"] == 2
    assert s["options"]["version"] == 1 and s["options"]["feedback"]["like_weight"] is None
    assert api.get("/v1/searches").json()["count"] == 1

    first = api.post("/v1/searches/weekly/run").json()
    assert first["count"] == 6 and first["previous_run"] is None and first["gone"] == [] and first["recorded"]
    assert all(h["new"] is False and h["new_reason"] is None for h in first["data"])
    assert first["head"] and first["ranking"].startswith(f"congruence head {first['head']}")
    assert "feedback terms" in first["ranking"] and all(len(h["top_posts"]) == 2 for h in first["data"])
    second = api.post("/v1/searches/weekly/run").json()
    assert second["previous_run"]["influencer_ids"] == [h["influencer_id"] for h in first["data"]]
    assert second["data"] == first["data"]

    matched = api.post("/v1/match", json=BODY).json()  # the rerun is the match with the same body
    assert without_marks(second["data"]) == matched["data"]
    assert (second["ranking"], second["warnings"], second["generation"]) == (
        matched["ranking"], matched["warnings"], matched["generation"],
    )  # fmt: skip

    got = api.get("/v1/searches/weekly").json()
    assert got["runs"] == 2 and [len(r["influencer_ids"]) for r in got["recent_runs"]] == [6, 6]
    assert got["recent_runs"][0]["ran_at"] > got["recent_runs"][1]["ran_at"]
    assert api.delete("/v1/searches/weekly").status_code == 204
    assert api.get("/v1/searches").json() == {"data": [], "count": 0}


def test_errors(api: httpx.Client) -> None:
    for verb, path in (
        ("GET", "/v1/searches/nope"),
        ("POST", "/v1/searches/nope/run"),
        ("DELETE", "/v1/searches/nope"),
    ):
        r = api.request(verb, path)
        assert r.status_code == 404 and r.json()["detail"] == "unknown saved search 'nope'", (verb, path)
    assert api.post("/v1/searches", json={"name": "dup", "brand_id": BRAND, "k": 3}).status_code == 201
    r = api.post("/v1/searches", json={"name": "dup", "brand_id": BRAND, "k": 4})
    assert r.status_code == 409
    assert r.json() == {
        "detail": "a saved search named 'dup' exists already: replace it (\"replace\": true), or update it and keep "
        'its runs ("update": true)'
    }
    r = api.post("/v1/searches", json={"name": "dup", "brand_id": BRAND, "k": 4, "replace": True})
    assert r.status_code == 201 and r.json()["options"]["k"] == 4
    r = api.post("/v1/searches", json={"name": "dup", "brand_id": BRAND, "k": 4, "replace": True, "update": True})
    assert (r.status_code, r.json()) == (
        422,
        {"detail": 'update send "replace": true or "update": true, not both', "field": "update"},
    )
    r = api.post("/v1/searches", json={"name": "nope", "brand_id": BRAND, "update": True})
    assert (r.status_code, r.json()["detail"]) == (404, "unknown saved search 'nope'")
    bad = [
        ({"brand_id": "nope"}, 404, "unknown brand 'nope'"),
        ({"brand_id": BRAND, "min_followers": 10, "max_followers": 5}, 422, "min_followers (10) is greater"),
        ({"brand_id": BRAND, "category": "knitting"}, 422, "no influencer has the category 'knitting'"),
        ({"brand_id": BRAND, "exclude_list": "nolist"}, 404, "unknown list 'nolist'"),
        ({"query_id": "0" * 16}, 404, "unknown or expired search"),
        ({"brand_id": BRAND, "k": 0}, 422, "greater than or equal to 1"),
        ({}, 422, "brand_id"),
    ]
    for body, status, message in bad:
        r = api.post("/v1/searches", json={"name": "bad", **body})
        assert r.status_code == status and message in r.text, (body, r.status_code, r.text)
    r = api.post("/v1/searches", json={"name": "bad", "brand_id": BRAND, "like": ["ghost"]})
    assert (r.status_code, r.json()) == (404, {"detail": "like names an unknown influencer: 'ghost'", "field": "like"})
    r = api.post("/v1/searches", json={"name": "a/b", "brand_id": BRAND})
    assert r.status_code == 422 and "no '/'" in r.json()["detail"]
    r = api.post("/v1/searches", json={"name": "..", "brand_id": BRAND})
    assert (r.status_code, r.json()) == (
        422,
        {"detail": "name must not be '.' or '..' (they are no name in a URL), got '..'", "field": "name"},
    )
    assert [s["name"] for s in api.get("/v1/searches").json()["data"]] == ["dup"]  # nothing bad was kept


def test_a_key_is_required(api: httpx.Client, keyed: tuple[str, str, str]) -> None:
    assert api.post("/v1/searches", json={"name": "kept", "brand_id": BRAND, "k": 3}).status_code == 201
    for verb, path, body in (
        ("GET", "/v1/searches", None),
        ("POST", "/v1/searches", {"name": "other", "brand_id": BRAND}),
        ("GET", "/v1/searches/kept", None),
        ("POST", "/v1/searches/kept/run", None),
        ("DELETE", "/v1/searches/kept", None),
    ):
        r = httpx.request(verb, keyed[0] + path, json=body, timeout=60)  # no key
        assert (r.status_code, r.headers["www-authenticate"]) == (401, "Bearer"), (verb, path)
    got = api.get("/v1/searches/kept").json()
    assert got["runs"] == 0 and [s["name"] for s in api.get("/v1/searches").json()["data"]] == ["kept"]


def test_update_keeps_the_runs_and_stored_options_are_read_tolerantly(api: httpx.Client, headed: Settings) -> None:
    assert api.post("/v1/searches", json={"name": "weekly", **BODY}).status_code == 201
    first = api.post("/v1/searches/weekly/run").json()
    r = api.post("/v1/searches", json={"name": "weekly", **BODY, "k": 4, "update": True})
    assert r.status_code == 200 and (r.json()["options"]["k"], r.json()["runs"]) == (4, 1), r.text
    ran = api.post("/v1/searches/weekly/run").json()
    assert ran["previous_run"]["influencer_ids"] == [h["influencer_id"] for h in first["data"]]
    assert ran["count"] == 4 and ran["warnings"] == [
        "the options changed since the previous run (the search was updated): what is marked new compares "
        "with a run of the old options"
    ]
    assert ran["previous_run"]["space"] == f"head:{ran['head']}"

    with Store.open(headed) as store:  # as a newer congruence would leave them: a 409 that says so, not a 500
        for name, options in (("future", {"version": 2, "k": 3}), ("colour", {"k": 3, "colour": "red"})):
            store.conn.execute(
                "INSERT INTO saved_searches (name, brand_id, options) VALUES (%s, %s, %s)",
                (name, BRAND, json.dumps(options)),
            )
    r = api.post("/v1/searches/future/run")
    assert (r.status_code, r.json()["detail"]) == (
        409,
        "saved search 'future' was saved by a newer congruence (options version 2; this one reads version 1)",
    )
    r = api.post("/v1/searches/colour/run")
    assert (r.status_code, r.json()["detail"]) == (
        409,
        "saved search 'colour' has an option this congruence does not know, 'colour': it was saved by a newer "
        "congruence",
    )


def _jpeg(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


def test_a_new_brand_reruns_after_a_restart(headed: Settings, small_corpus: Path) -> None:
    with Store.open(headed) as store:
        store.conn.execute(f"TRUNCATE {SEARCH_TABLES} RESTART IDENTITY CASCADE")
    paths = sorted((small_corpus / "images").glob("brand_peakfit_p*.jpg"))
    files = [("images", (p.name, _jpeg(p), "image/jpeg")) for p in paths]
    with serving(headed, auth=False) as url, httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/v1/match", files=files, data={"text": "gym workouts", "k": "5"})
        assert r.status_code == 200, r.text
        matched = r.json()
        r = c.post("/v1/searches", json={"name": "gym", "query_id": matched["query_id"], "k": 5})
        assert r.status_code == 201 and r.json()["new_brand"] is True and r.json()["brand_id"] is None
    with Store.open(headed) as store:  # the encoders' (2, d_image) and (d_text,) outputs, in PostgreSQL
        dims = store.conn.execute("SELECT array_ndims(query_images), array_ndims(query_text) FROM saved_searches")
        assert dims.fetchone() == (2, 1)
    with serving(headed, auth=False) as url, httpx.Client(base_url=url, timeout=120) as c:  # a new process's cache
        assert c.post("/v1/match", json={"query_id": matched["query_id"]}).status_code == 404
        ran = c.post("/v1/searches/gym/run").json()
        assert ran["count"] == 5 and without_marks(ran["data"]) == matched["data"]
        assert ran["ranking"] == matched["ranking"]

        before = ran["head"]  # another head in service: the query is rebuilt for it, the runs stay
        train_and_deploy(headed, TrainConfig(epochs=1, batch_brands=4, list_size=8, device="cpu", seed=5), ("head",),
                         None, 0.3, activate_anyway=True)  # fmt: skip
        r = c.post("/v1/searches/gym/run")
        assert r.status_code == 200, r.text
        ran = r.json()
        again = c.post("/v1/match", files=files, data={"text": "gym workouts", "k": "5"}).json()
    assert ran["head"] != before and ran["head"] == again["head"]
    assert without_marks(ran["data"]) == again["data"] and ran["ranking"] == again["ranking"]
    assert ran["previous_run"]["space"] == f"head:{before}" and ran["warnings"] == [
        f'another model ranks since the previous run (head:{before} then, head:{ran["head"]} now): "moved in" '
        "includes re-ranking by the new head"
    ]


def test_a_read_only_server_runs_but_neither_saves_nor_records(headed: Settings) -> None:
    with Store.open(headed) as store:
        store.conn.execute(f"TRUNCATE {SEARCH_TABLES} RESTART IDENTITY CASCADE")
    with serving(headed, auth=False) as url:
        assert httpx.post(f"{url}/v1/searches", json={"name": "ro", "brand_id": BRAND}, timeout=120).status_code == 201
        assert httpx.post(f"{url}/v1/searches/ro/run", timeout=120).json()["recorded"] is True
    with serving(headed, auth=False, read_only=True) as url:
        r = httpx.post(f"{url}/v1/searches", json={"name": "x", "brand_id": BRAND}, timeout=120)
        assert r.status_code == 403 and "read-only" in r.json()["detail"]
        assert httpx.delete(f"{url}/v1/searches/ro", timeout=120).status_code == 403
        ran = httpx.post(f"{url}/v1/searches/ro/run", timeout=120).json()
        assert (
            ran["recorded"] is False and ran["previous_run"] is not None and ran["count"] == 18
        )  # every influencer: k 20
        assert httpx.get(f"{url}/v1/searches/ro", timeout=120).json()["runs"] == 1
