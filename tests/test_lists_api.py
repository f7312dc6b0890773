"""Campaign lists over HTTP (`/v1/lists`, docs/lists.md) on a real uvicorn server: every
operation, the errors (404, 409, 422, read-only 403), who the history names (the API key), the
export's file, and concurrent PATCHes at one entry: of writers with the same version exactly one
wins and the others get 409 with the current entry; writers that retry on 409 lose no update."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator

import httpx
import pyarrow.parquet as pq
import pytest

from congruence.api.keys import create_key
from congruence.core.settings import Settings
from congruence.store import lists
from congruence.store.records import Store

from .server import serving
from .test_lists import BRAND, F0, F1, F2, LIST_TABLES, T0, corpus_store  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def keyed(corpus_store: Settings) -> Iterator[tuple[str, str, str]]:  # noqa: F811
    """(base URL of a server that wants keys, a key, its id)."""
    with Store.open(corpus_store) as store:
        key, info = create_key(store.conn, "agency x")
    with serving(corpus_store, auth=True) as url:
        yield url, key, info.id


@pytest.fixture
def api(keyed: tuple[str, str, str], corpus_store: Settings) -> Iterator[httpx.Client]:  # noqa: F811
    with Store.open(corpus_store) as store:
        store.conn.execute(f"TRUNCATE {LIST_TABLES} RESTART IDENTITY CASCADE")
    url, key, _ = keyed
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        yield c


def test_lists_round_trip(api: httpx.Client, keyed: tuple[str, str, str]) -> None:
    r = api.post("/v1/lists", json={"name": "spring", "brand_id": BRAND})
    assert r.status_code == 201 and r.json()["entries"] == 0 and r.json()["created_by"] == f"key:{keyed[2]}"
    api.post("/v1/lists", json={"name": "autumn", "brand_id": BRAND})
    r = api.post("/v1/lists/spring/entries", json={"influencer_ids": [F0, F1], "status": "contacted", "note": "hi"})
    assert r.status_code == 200 and r.json() == {"added": [F0, F1], "already": []}
    assert api.post("/v1/lists/spring/entries", json={"influencer_ids": [F1]}).json() == {"added": [], "already": [F1]}
    api.post("/v1/lists/autumn/entries", json={"influencer_ids": [F1]})
    r = api.patch(f"/v1/lists/spring/entries/{F0}", json={"status": "agreed", "version": 1})
    assert r.status_code == 200 and (r.json()["status"], r.json()["version"], r.json()["note"]) == ("agreed", 2, "hi")
    doc = api.get("/v1/lists/spring").json()
    assert doc["count"] == 2 and doc["list"]["name"] == "spring"
    by_id = {d["influencer_id"]: d for d in doc["data"]}
    assert by_id[F0]["updated_by"] == f"key:{keyed[2]}" and by_id[F0]["gone"] is False
    assert by_id[F1]["other_lists"] == [{"list": "autumn", "status": "prospect"}]
    assert [x["name"] for x in api.get("/v1/lists", params={"brand_id": BRAND}).json()["data"]] == ["autumn", "spring"]
    assert api.get("/v1/lists", params={"brand_id": "brand_wanderly"}).json() == {"data": [], "count": 0}
    hist = api.get("/v1/lists/spring/history", params={"influencer_id": F0}).json()
    assert [(h["action"], h["old_status"], h["new_status"]) for h in hist["data"]] == [
        ("add", None, "contacted"),
        ("set", "contacted", "agreed"),
    ]
    r = api.get("/v1/lists/spring/export", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="spring.csv"'
    assert [(x["influencer_id"], x["status"], x["other_lists"]) for x in rows] == [
        (F0, "agreed", ""),
        (F1, "contacted", "autumn:prospect"),
    ]
    r = api.get("/v1/lists/spring/export", params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(r.content)).column("influencer_id").to_pylist() == [F0, F1]
    assert api.delete(f"/v1/lists/spring/entries/{F1}").status_code == 204
    assert [d["influencer_id"] for d in api.get("/v1/lists/spring").json()["data"]] == [F0]
    assert api.delete("/v1/lists/spring").status_code == 204
    assert api.get("/v1/lists/spring").status_code == 404


def test_errors(api: httpx.Client, keyed: tuple[str, str, str]) -> None:
    r = api.post("/v1/lists", json={"name": "x", "brand_id": "nobody"})
    assert (r.status_code, r.json()) == (404, {"detail": "unknown brand 'nobody'"})
    api.post("/v1/lists", json={"name": "spring", "brand_id": BRAND})
    r = api.post("/v1/lists", json={"name": "spring", "brand_id": BRAND})
    assert (r.status_code, r.json()) == (409, {"detail": "name a list named 'spring' exists already", "field": "name"})
    r = api.post("/v1/lists", json={"name": "a/b", "brand_id": BRAND})
    assert r.status_code == 422 and r.json()["field"] == "name"
    assert api.get("/v1/lists/nope").json() == {"detail": "unknown list 'nope'"}
    r = api.post("/v1/lists/spring/entries", json={"influencer_ids": ["ghost"]})
    assert (r.status_code, r.json()) == (404, {"detail": "unknown influencer: 'ghost'"})
    r = api.post("/v1/lists/spring/entries", json={"influencer_ids": [F0], "status": "maybe"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "status"]
    api.post("/v1/lists/spring/entries", json={"influencer_ids": [F0]})
    r = api.patch(f"/v1/lists/spring/entries/{F1}", json={"status": "agreed"})
    assert (r.status_code, r.json()) == (404, {"detail": f"'{F1}' is not in list 'spring'"})
    r = api.patch(f"/v1/lists/spring/entries/{F0}", json={})
    assert (r.status_code, r.json()["field"]) == (422, "status")
    assert api.delete(f"/v1/lists/spring/entries/{F1}").status_code == 404
    assert httpx.get(f"{keyed[0]}/v1/lists/spring").status_code == 401  # no key


def test_a_stale_patch_gets_409_with_the_current_entry(api: httpx.Client) -> None:
    api.post("/v1/lists", json={"name": "spring", "brand_id": BRAND})
    api.post("/v1/lists/spring/entries", json={"influencer_ids": [F0]})
    assert api.patch(f"/v1/lists/spring/entries/{F0}", json={"note": "first", "version": 1}).status_code == 200
    r = api.patch(f"/v1/lists/spring/entries/{F0}", json={"status": "declined", "version": 1})
    body = r.json()
    assert r.status_code == 409 and body["field"] == "version"
    assert body["detail"] == "version is 2, not 1: the entry changed since it was read"
    assert (body["current"]["influencer_id"], body["current"]["note"], body["current"]["version"]) == (F0, "first", 2)
    assert body["current"]["status"] == "prospect"  # the stale write changed nothing


def _patch_all_at_once(url: str, key: str, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    out: list[httpx.Response | None] = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            barrier.wait()
            out[i] = c.patch(f"/v1/lists/spring/entries/{F0}", json=bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


def test_concurrent_patches_with_one_version_exactly_one_wins(api: httpx.Client, keyed: tuple[str, str, str]) -> None:
    api.post("/v1/lists", json={"name": "spring", "brand_id": BRAND})
    api.post("/v1/lists/spring/entries", json={"influencer_ids": [F0]})
    for round_ in range(3):  # a race is won by chance: three of them
        version = api.get("/v1/lists/spring").json()["data"][0]["version"]
        bodies: list[dict[str, object]] = [{"note": f"r{round_} w{i}", "version": version} for i in range(6)]
        answers = _patch_all_at_once(keyed[0], keyed[1], bodies)
        won = [r for r in answers if r.status_code == 200]
        lost = [r for r in answers if r.status_code == 409]
        assert len(won) == 1 and len(lost) == 5, [r.status_code for r in answers]
        now = api.get("/v1/lists/spring").json()["data"][0]
        assert (now["version"], now["note"]) == (version + 1, won[0].json()["note"])
        assert all(r.json()["current"] == now for r in lost)  # each loser sees the winner's entry


def test_writers_that_retry_on_409_lose_no_update(api: httpx.Client, keyed: tuple[str, str, str]) -> None:
    api.post("/v1/lists", json={"name": "spring", "brand_id": BRAND})
    api.post("/v1/lists/spring/entries", json={"influencer_ids": [F0]})
    writers, each = 4, 3

    def append(i: int) -> None:  # read, modify, write; on 409 start again from the current entry
        with httpx.Client(base_url=keyed[0], headers={"Authorization": f"Bearer {keyed[1]}"}, timeout=60) as c:
            cur = c.get("/v1/lists/spring").json()["data"][0]
            for j in range(each):
                while True:
                    body = {"note": cur["note"] + f"[w{i}.{j}]", "version": cur["version"]}
                    r = c.patch(f"/v1/lists/spring/entries/{F0}", json=body)
                    if r.status_code == 200:
                        cur = r.json()
                        break
                    assert r.status_code == 409
                    cur = r.json()["current"]

    threads = [threading.Thread(target=append, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    e = api.get("/v1/lists/spring").json()["data"][0]
    assert e["version"] == 1 + writers * each
    assert sorted(e["note"].strip("[]").split("][")) == sorted(f"w{i}.{j}" for i in range(writers) for j in range(each))
    assert api.get("/v1/lists/spring/history").json()["count"] == 1 + writers * each


def test_a_read_only_server_reads_lists_and_refuses_changes(corpus_store: Settings) -> None:  # noqa: F811
    with Store.open(corpus_store) as store:
        store.conn.execute(f"TRUNCATE {LIST_TABLES} RESTART IDENTITY CASCADE")
        lists.create_list(store, "spring", BRAND, "ann")
        lists.add(store, "spring", [F2, T0], "ann")
    with serving(corpus_store, auth=False, read_only=True) as url:
        assert httpx.get(f"{url}/v1/lists/spring").json()["count"] == 2
        r = httpx.patch(f"{url}/v1/lists/spring/entries/{F2}", json={"status": "agreed"})
        assert r.status_code == 403 and "read-only" in r.json()["detail"]
        assert httpx.post(f"{url}/v1/lists", json={"name": "x", "brand_id": BRAND}).status_code == 403
        assert httpx.delete(f"{url}/v1/lists/spring").status_code == 403
    with Store.open(corpus_store) as store:
        assert lists.entry(store, "spring", F2).status == "prospect"
