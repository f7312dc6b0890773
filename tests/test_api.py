"""The HTTP API through a real uvicorn server on the embedded PostgreSQL, with API keys."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from congruence.api.keys import create_key, revoke_key
from congruence.search.engine import Engine
from congruence.search.filters import Filters
from congruence.store import database

from .hostile import big_png
from .server import corpus_with_head, serving

BRAND = "brand_peakfit"


@pytest.fixture(scope="module")
def api(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A served app with auth on: {"url", "key", "settings", "corpus"}."""
    settings = corpus_with_head(pg_url, tmp_path_factory.mktemp("api") / "home", small_corpus, engagement=True)
    with database.connect(pg_url, autocommit=True) as conn:
        key, _ = create_key(conn, "tests")
    with serving(settings, auth=True) as url:
        yield {"url": url, "key": key, "settings": settings, "corpus": small_corpus}


@pytest.fixture(scope="module")
def client(api: dict) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api["url"], headers={"Authorization": f"Bearer {api['key']}"}, timeout=120) as c:
        yield c


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


def _png(size: tuple[int, int], color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


# -- health and auth ------------------------------------------------------------------------
def test_health_and_readiness_need_no_key(api: dict) -> None:
    assert httpx.get(api["url"] + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(api["url"] + "/readyz").json()
    assert ready["ready"] is True and ready["influencers"] == 18 and ready["head"]
    assert ready["database"] == "reachable"


def test_every_v1_route_needs_a_live_key(api: dict, pg_url: str) -> None:
    url = api["url"] + "/v1/match"
    body = {"brand_id": BRAND, "k": 3}
    r = httpx.post(url, json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in r.json()["detail"]
    spec = httpx.get(api["url"] + "/openapi.json").json()["paths"]
    routes = [(path, verb) for path, verbs in spec.items() if path.startswith("/v1") for verb in verbs]
    assert len({path for path, _ in routes}) >= 9 and ("/v1/similar", "post") in routes
    for path, verb in routes:  # every method of every route, without a key: 401 before anything else is looked at
        r = httpx.request(verb.upper(), api["url"] + path.replace("{", "").replace("}", ""))
        assert r.status_code == 401, (verb, path)
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer cgk_nope"}).status_code == 401
    with database.connect(pg_url, autocommit=True) as conn:
        key, info = create_key(conn, "to revoke")
        stored = conn.execute("SELECT salt, secret_hash FROM api_keys WHERE id = %s", (info.id,)).fetchone()
        assert key.split("_")[-1].encode() not in bytes(stored[1]) + bytes(stored[0])
        wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
        assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        revoke_key(conn, info.id)
    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid or revoked API key"


def test_rate_limit_per_key(api: dict, pg_url: str) -> None:
    with database.connect(pg_url, autocommit=True) as conn:
        key, _ = create_key(conn, "busy")
        other, _ = create_key(conn, "calm")
    with serving(replace(api["settings"], rate_limit=60), auth=True) as url:  # bursts of 10, then 1 a second
        codes: list[int] = []
        while 429 not in codes and len(codes) < 60:  # a slow machine refills a token now and then
            r = httpx.get(url + "/v1/categories", headers={"Authorization": f"Bearer {key}"})
            codes.append(r.status_code)
        assert codes[:10] == [200] * 10 and codes[-1] == 429
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "rate limit of 60 requests a minute" in r.json()["detail"]
        assert httpx.get(url + "/v1/categories", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        time.sleep(1.1)
        assert httpx.get(url + "/v1/categories", headers={"Authorization": f"Bearer {key}"}).status_code == 200


# -- match ----------------------------------------------------------------------------------
def test_match_known_brand_equals_the_engine(api: dict, client: httpx.Client) -> None:
    r = client.post("/v1/match", json={"brand_id": BRAND, "k": 5, "posts": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 5 and body["ranking"].startswith("congruence head")
    with Engine(api["settings"]) as engine:
        want = engine.match_brand(BRAND, 5)
    assert [h["influencer_id"] for h in body["data"]] == [h.influencer_id for h in want]
    assert np.allclose([h["score"] for h in body["data"]], [h.score for h in want], atol=1e-5)
    assert [h["rank"] for h in body["data"]] == [1, 2, 3, 4, 5]
    first = body["data"][0]
    assert set(first) >= {"influencer_id", "handle", "category", "followers", "score", "rank", "top_posts"}
    assert len(first["top_posts"]) == 2 and first["similar_url"].endswith("/similar")
    thumb = client.get(first["top_posts"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256


def test_match_filters(client: httpx.Client) -> None:
    body = client.post("/v1/match", json={"brand_id": BRAND, "k": 20, "category": "Fashion"}).json()
    assert body["count"] == 3 and {h["category"] for h in body["data"]} == {"fashion"}
    body = client.post("/v1/match", json={"brand_id": BRAND, "k": 20, "micro": True, "max_followers": 50000}).json()
    assert body["count"] > 0 and all(5000 <= h["followers"] <= 50000 for h in body["data"])
    r = client.post("/v1/match", json={"brand_id": BRAND, "k": 5, "category": "no such category"})
    assert r.status_code == 422 and r.json()["detail"].startswith(
        "no influencer has the category 'no such category'; the categories are: "
    )  # a typo is not "nobody"


def test_match_new_brand_from_uploaded_images(api: dict, client: httpx.Client) -> None:
    paths = sorted((api["corpus"] / "images").glob("brand_peakfit_p*.jpg"))
    files = [("images", (p.name, _jpeg(p), "image/jpeg")) for p in paths]
    typo = client.post("/v1/match", files=files, data={"text": "gym workouts", "category": "fitnes"})
    assert typo.status_code == 422 and "no influencer has the category 'fitnes'" in typo.text
    r = client.post("/v1/match", files=files, data={"text": "gym workouts", "k": "4", "micro": "false"})
    assert r.status_code == 200, r.text
    body = r.json()
    with Engine(api["settings"]) as engine:
        images = [Image.open(p).convert("RGB") for p in paths]
        want = engine.match_new(images, "gym workouts", 4)
    assert [h["influencer_id"] for h in body["data"]] == [h.influencer_id for h in want]
    assert body["query_id"]
    post = body["data"][0]["top_posts"][0]["post_id"]
    r = client.get("/v1/explain", params={"query": body["query_id"], "post": post, "format": "npy"})
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).ndim == 2
    with Engine(api["settings"]) as engine:  # the same heatmap as explaining against the same brand, offline
        from congruence.search.explain import Explainer

        exp, _ = Explainer(engine).explain_post_for_query(engine.describe_new(images, "gym workouts"), "x", post)
    assert float(r.headers["x-congruence-score"]) == pytest.approx(exp.score, abs=1e-4)
    assert client.get("/v1/explain", params={"query": "0" * 16, "post": post}).json()["detail"] == (
        "unknown or expired search '0000000000000000': run the search again"
    )
    both = client.get("/v1/explain", params={"query": body["query_id"], "brand": BRAND, "post": post})
    assert both.status_code == 422 and "either brand" in both.json()["detail"]
    only_text = client.post("/v1/match", files={"text": (None, "hiking boots")}, data={"micro": "false"}).json()
    assert only_text["count"] == 18 and only_text["query_id"]
    known = client.post("/v1/match", json={"brand_id": BRAND}).json()
    assert known["query_id"] is None


def test_match_new_brand_with_filters_and_twenty_images(api: dict, client: httpx.Client) -> None:
    paths = sorted((api["corpus"] / "images").glob("brand_*_p*.jpg"))
    assert len(paths) >= 10
    twenty = (paths * 2)[:20]
    files = [("images", (f"{i}-{p.name}", _jpeg(p), "image/jpeg")) for i, p in enumerate(twenty)]
    cases = [
        ({"category": "Fitness"}, Filters.make(category="Fitness")),
        ({"micro": "true", "max_followers": "50000"}, Filters.make(max_followers=50000, micro=True)),
        (
            {"min_followers": "20000", "max_followers": "200000"},
            Filters.make(min_followers=20000, max_followers=200000),
        ),
    ]
    images = [Image.open(p).convert("RGB") for p in twenty]
    with Engine(api["settings"]) as engine:
        wants = [engine.match_new(images, "sport and travel", 10, f) for _, f in cases]
    for (fields, _), want in zip(cases, wants, strict=True):
        r = client.post("/v1/match", files=files, data={"text": "sport and travel", "k": "10", **fields})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(want) == len(body["data"]) > 0, fields
        assert [h["influencer_id"] for h in body["data"]] == [h.influencer_id for h in want], fields
        np.testing.assert_allclose([h["score"] for h in body["data"]], [h.score for h in want], atol=1e-4)
    hits = client.post("/v1/match", files=files, data={"category": "fitness", "k": "10"}).json()["data"]
    assert {h["category"] for h in hits} == {"fitness"}
    r = client.post("/v1/match", files=files, data={"min_followers": "9", "max_followers": "1"})
    assert r.status_code == 422 and "min_followers (9) is greater than the maximum follower count (1)" in r.text
    assert r.json()["field"] == "min_followers"  # the parameter, as the API names it


BAD_JSON = [
    ({"brand_id": "nope"}, 404, "unknown brand 'nope'"),
    ({"brand_id": "fitness_creator_00"}, 404, "'fitness_creator_00' is an influencer, not a brand"),
    ({"brand_id": BRAND, "k": 0}, 422, "greater than or equal to 1"),
    ({"brand_id": BRAND, "k": 5000}, 422, "less than or equal to 1000"),
    (
        {"brand_id": BRAND, "min_followers": 9, "max_followers": 1},
        422,
        "min_followers (9) is greater than the maximum follower count (1)",
    ),
    ({"brand_id": BRAND, "colour": "red"}, 422, "Extra inputs are not permitted"),
    ({"brand_id": BRAND, "k": "many"}, 422, "valid integer"),
    ({"brand_id": "a\x00b"}, 422, "cannot store"),
    ({}, 422, "Field required"),
    ({"brand_id": BRAND, "k": 3.5}, 422, "valid integer"),
    ({"brand_id": BRAND, "micro": "maybe"}, 422, "valid boolean"),
    ({"brand_id": BRAND, "category": "x" * 101}, 422, "at most 100 characters"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_JSON)
def test_match_bad_json_is_a_clear_4xx(client: httpx.Client, body: dict, status: int, message: str) -> None:
    r = client.post("/v1/match", json=body)
    assert r.status_code == status, r.text
    assert message in json.dumps(r.json()["detail"])


def test_sql_in_filters_is_just_text(client: httpx.Client, pg_url: str) -> None:
    sql = "'; DROP TABLE accounts; --"
    r = client.post("/v1/match", json={"brand_id": BRAND, "category": sql})
    assert r.status_code == 422 and r.json()["detail"].startswith(f"no influencer has the category {sql.lower()!r}")
    assert client.post("/v1/match", json={"brand_id": sql}).status_code == 404
    assert client.get("/v1/accounts", params={"q": sql}).json()["count"] == 0
    assert client.get(f"/v1/influencers/{sql}/similar").status_code == 404
    for raw in (
        b'{"brand_id": "brand_peakfit", "k": NaN}',
        b'{"brand_id": "brand_peakfit", "min_followers": 1e309}',
        b'{"brand_id": "brand_peakfit", "max_followers": -Infinity}',
    ):
        r = client.post("/v1/match", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
        r = client.post(
            "/v1/exports",
            content=raw.replace(b'"brand_id": "brand_peakfit"', b'"brands": "all"'),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422, (raw, r.text)
    with database.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (24,)


def test_match_malformed_bodies(client: httpx.Client) -> None:
    r = client.post("/v1/match", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "json" in r.text.lower()
    r = client.post("/v1/match", content=b"brand=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    deep = b"[" * 1_000_000 + b"]" * 1_000_000
    assert client.post("/v1/match", content=deep, headers={"Content-Type": "application/json"}).status_code == 422
    huge = client.post("/v1/match", content=b"x" * (9 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "larger than 8 MB" in huge.json()["detail"]


def test_upload_limits(api: dict, client: httpx.Client) -> None:
    good = _jpeg(next((api["corpus"] / "images").glob("*.jpg")))
    too_many = [("images", (f"{i}.jpg", good, "image/jpeg")) for i in range(21)]
    r = client.post("/v1/match", files=too_many)
    assert r.status_code == 413 and "at most 20 images" in r.json()["detail"]
    r = client.post("/v1/match", files=too_many * 2)  # past the parser's own file limit too: the same answer
    assert r.status_code == 413 and r.json()["detail"] == "images: at most 20 images per request, got 22 or more"
    r = client.post("/v1/score", files=too_many)
    assert r.status_code == 413 and r.json()["detail"] == "images: at most 5 images per request, got 7 or more"
    r = client.post("/v1/match", files={"text": (None, "x" * (2 * 1024 * 1024))})
    assert r.status_code == 413 and r.json()["detail"].startswith("a form field is larger than 1 MB")
    r = client.post("/v1/match", files={"text": (None, "x" * 5001)})
    assert r.status_code == 413 and r.json()["detail"] == "text: longer than 5000 characters"
    r = client.post("/v1/match", files=[(f"f{i}", (None, "1")) for i in range(31)])
    assert r.status_code == 413 and r.json()["detail"] == "at most 30 form fields per request"
    big = good + b"\0" * (10 * 1024 * 1024)
    r = client.post("/v1/match", files=[("images", ("big.jpg", big, "image/jpeg"))])
    assert r.status_code == 413 and "larger than 10 MB" in r.json()["detail"]
    bomb = _png((9000, 9000), "white")  # 81 Mpx, a few hundred KB compressed
    r = client.post("/v1/match", files=[("images", ("bomb.png", bomb, "image/png"))])
    assert r.status_code == 413 and "pixels" in r.json()["detail"]
    for w, h in ((20_000, 20_000), (12_000, 12_000)):  # ~50 KB on disk, 400 and 144 Mpx decoded
        r = client.post("/v1/match", files=[("images", ("bomb.png", big_png(w, h), "image/png"))])
        assert (
            r.status_code == 413 and r.json()["detail"] == "images[0] (bomb.png): too many pixels (decompression bomb)"
        )
        r = client.post("/v1/score", files=[("images", ("bomb.png", big_png(w, h), "image/png"))])
        assert r.status_code == 413 and "decompression bomb" in r.json()["detail"]
    r = client.post(
        "/v1/match", files=[("images", ("a.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"))]
    )
    assert r.status_code == 415 and "not an image" in r.json()["detail"]
    r = client.post("/v1/match", files=[("images", ("page.html", b"<html></html>", "text/html"))])
    assert r.status_code == 415 and "expected an image, got text/html" in r.json()["detail"]
    r = client.post("/v1/match", files=[("images", ("cut.jpg", good[: len(good) // 3], "image/jpeg"))])
    assert r.status_code == 422 and "cannot be decoded" in r.json()["detail"]
    r = client.post("/v1/match", files={"k": (None, "3")})
    assert r.status_code == 422 and "at least one image or some text" in r.json()["detail"]
    r = client.post("/v1/match", files=[("images", ("a.png", _png((64, 64)), "image/png"))], data={"k": "0"})
    assert r.status_code == 422
    # a declared 100 MB body is refused from its headers, before any of it is read
    host, port = api["url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            f"POST /v1/match HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api['key']}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 104857600\r\n\r\n".encode()
        )
        head = b""
        while b"MB" not in head and (chunk := s.recv(4096)):
            head += chunk
    head = head.decode()
    assert head.startswith("HTTP/1.1 413") and "larger than 64 MB" in head


def _chunked_upload(api: dict, path: str, ctype: str, head: bytes, total: int, stop_after: int) -> str:
    """POST a body of ``total`` bytes with Transfer-Encoding: chunked (no Content-Length), stop
    sending after ``stop_after`` bytes, and return the status line and detail of the answer."""
    host, port = api["url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api['key']}\r\n"
            f"Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent, chunk = 0, b"x" * (1024 * 1024)
        s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        while sent < min(total, stop_after):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        answer = b""
        while b"}" not in answer and (part := s.recv(4096)):
            answer += part
    return answer.decode()


def test_huge_bodies_without_content_length_are_refused_while_streaming(api: dict) -> None:
    """A 100 MB JSON string (and a 100 MB multipart body) sent chunked: 413 once the limit is
    passed, long before the whole body could have been buffered."""
    answer = _chunked_upload(api, "/v1/match", "application/json", b'{"brand_id": "', 100 * 2**20, 12 * 2**20)
    assert answer.startswith("HTTP/1.1 413") and "request body larger than 8 MB" in answer
    answer = _chunked_upload(api, "/v1/exports", "application/json", b'{"brands": ["', 100 * 2**20, 12 * 2**20)
    assert answer.startswith("HTTP/1.1 413") and "request body larger than 8 MB" in answer
    head = b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    answer = _chunked_upload(api, "/v1/match", "multipart/form-data; boundary=b", head, 100 * 2**20, 70 * 2**20)
    assert answer.startswith("HTTP/1.1 413") and "request body larger than 64 MB" in answer
    head = b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\n'
    answer = _chunked_upload(api, "/v1/match", "multipart/form-data; boundary=b", head, 100 * 2**20, 3 * 2**20)
    assert answer.startswith("HTTP/1.1 413") and "a form field is larger than 1 MB" in answer


# -- similar, accounts, posts ---------------------------------------------------------------
def test_similar_and_accounts(client: httpx.Client) -> None:
    body = client.get("/v1/influencers/fitness_creator_00/similar", params={"k": 4}).json()
    ids = [h["influencer_id"] for h in body["data"]]
    assert len(ids) == 4 and "fitness_creator_00" not in ids
    assert body["count"] == len(body["data"]) and [h["rank"] for h in body["data"]] == [1, 2, 3, 4]
    assert set(body["data"][0]) >= {"influencer_id", "handle", "category", "followers", "score", "rank", "top_posts"}
    assert body["data"][0]["top_posts"][0]["thumbnail_url"].endswith("/image?size=256")
    food = client.get("/v1/influencers/fitness_creator_00/similar", params={"k": 10, "category": "food"}).json()
    assert food["count"] == 3 and {h["category"] for h in food["data"]} == {"food"}
    assert client.get("/v1/influencers/nobody/similar").status_code == 404
    assert client.get(f"/v1/influencers/{BRAND}/similar").json()["detail"] == f"{BRAND!r} is a brand, not an influencer"
    acc = client.get("/v1/accounts/fitness_creator_00", params={"posts": 2}).json()
    assert acc["kind"] == "influencer" and acc["n_posts"] == 2 and acc["posts"][0]["image_url"]
    assert client.get("/v1/accounts/nobody").status_code == 404
    brands = client.get("/v1/accounts", params={"kind": "brand"}).json()
    assert brands["count"] == 6 and {b["id"] for b in brands["data"]} >= {BRAND}
    assert client.get("/v1/accounts", params={"kind": "brand", "q": "peak"}).json()["count"] == 1
    assert client.get("/v1/accounts", params={"q": "100%_\\"}).json()["count"] == 0
    cats = client.get("/v1/categories").json()
    assert cats["count"] == 6 and all(c["count"] == 3 for c in cats["data"])


def test_post_images_stay_inside_the_corpus(api: dict, client: httpx.Client, pg_url: str) -> None:
    post = "fitness_creator_00_p0"
    r = client.get(f"/v1/posts/{post}/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == (api["corpus"] / "images" / f"{post}.jpg").read_bytes()
    small = client.get(f"/v1/posts/{post}/image", params={"size": 64})
    assert max(Image.open(io.BytesIO(small.content)).size) == 64
    assert client.get(f"/v1/posts/{post}/image", params={"size": 5}).status_code == 422
    assert client.get("/v1/posts/nope/image").status_code == 404
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE posts SET image = '../../../../etc/passwd' WHERE id = 'fitness_creator_01_p0'")
        try:
            r = client.get("/v1/posts/fitness_creator_01_p0/image")
        finally:
            conn.execute(
                "UPDATE posts SET image = 'images/fitness_creator_01_p0.jpg' WHERE id = 'fitness_creator_01_p0'"
            )
    assert r.status_code == 404 and "outside its corpus folder" in r.json()["detail"]


# -- explain --------------------------------------------------------------------------------
def test_explain_png_and_npy(client: httpx.Client, api: dict) -> None:
    post = "fitness_creator_00_p0"
    r = client.get("/v1/explain", params={"brand": BRAND, "post": post})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    overlay = Image.open(io.BytesIO(r.content))
    original = Image.open(api["corpus"] / "images" / f"{post}.jpg")
    assert overlay.size == original.size
    with Engine(api["settings"]) as engine:  # the post scored from its stored vectors, not by the explainer
        from congruence.search.explain import Explainer

        stored = dict(Explainer(engine).top_posts(BRAND, "fitness_creator_00", n=10))
    assert float(r.headers["x-congruence-score"]) == pytest.approx(stored[post], abs=5e-3)
    assert r.headers["x-congruence-method"] == "gradcam"
    raw = client.get("/v1/explain", params={"brand": BRAND, "post": post, "format": "npy"})
    heat = np.load(io.BytesIO(raw.content))
    assert heat.shape == (original.height, original.width) and heat.dtype == np.float32
    assert raw.headers["x-congruence-cached"] == "true"
    assert client.get("/v1/explain", params={"brand": BRAND, "post": post, "method": "magic"}).status_code == 422
    assert client.get("/v1/explain", params={"brand": "nope", "post": post}).status_code == 404
    assert client.get("/v1/explain", params={"brand": BRAND}).status_code == 422


# -- score ----------------------------------------------------------------------------------
def test_score_ranks_images_like_the_scorer(api: dict, client: httpx.Client) -> None:
    from congruence.engagement.service import Scorer
    from congruence.engagement.suggest import NOTHING_QUALIFIES
    from congruence.store.records import Store

    paths = [
        api["corpus"] / "images" / f"{p}.jpg"
        for p in ("pets_creator_00_p0", "food_creator_01_p1", "fitness_creator_02_p0")
    ]
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    r = client.post("/v1/score", files=files, data={"caption1": "fresh pasta tonight"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 3 and [d["rank"] for d in body["data"]] == [1, 2, 3]
    assert sorted(d["index"] for d in body["data"]) == [0, 1, 2]
    assert all(0 <= d["score"] <= 10 for d in body["data"])
    assert [d["filename"] for d in sorted(body["data"], key=lambda d: d["index"])] == [p.name for p in paths]
    with Store.open(api["settings"]) as store:
        scorer = Scorer.load(api["settings"], store)
    want = scorer.score([Image.open(p).convert("RGB") for p in paths], [None, "fresh pasta tonight", None])
    assert body["model"] == scorer.version
    assert {d["index"]: d["score"] for d in body["data"]} == pytest.approx({s.index: s.score for s in want}, abs=1e-3)
    assert {d["index"]: d["suggestions"] for d in body["data"]} == {
        s.index: [g.to_dict() for g in s.suggestions] for s in want
    }
    # the small corpus holds out 4 accounts of 2 posts: no concept's effect can hold up, and each image says so
    assert [d["suggestion_note"] for d in body["data"]] == [NOTHING_QUALIFIES] * 3
    assert body["basis"] == scorer.basis.to_dict() and body["basis"]["reference"]["expert"] == 0.675
    assert body["basis"]["sentence"].startswith("Scores come from a model trained on ")
    model = client.get("/v1/score/model").json()
    assert model["model"] == scorer.version and model["basis"] == body["basis"]
    assert [e["name"] for e in model["evidence"]] == [e.name for e in scorer.model.suggestions.evidence.effects]
    assert not any(e["qualified"] for e in model["evidence"]) and "bootstrap" in model["method"]


def test_score_bad_requests(api: dict, client: httpx.Client) -> None:
    good = next((api["corpus"] / "images").glob("*.jpg")).read_bytes()
    six = [("images", (f"{i}.jpg", good, "image/jpeg")) for i in range(6)]
    r = client.post("/v1/score", files=six)
    assert r.status_code == 413 and "at most 5 images" in r.json()["detail"]
    r = client.post("/v1/score", files={"caption0": (None, "hello")})
    assert r.status_code == 422 and "send 1 to 5 images" in r.json()["detail"]
    r = client.post("/v1/score", files=[("images", ("a.jpg", good, "image/jpeg"))], data={"mood": "x"})
    assert r.status_code == 422 and "unknown field 'mood'" in r.json()["detail"]
    r = client.post("/v1/score", files=[("images", ("a.txt", b"hello", "text/plain"))])
    assert r.status_code == 415
    assert client.post("/v1/score", json={"images": []}).status_code == 415


# -- exports --------------------------------------------------------------------------------
def _finished(client: httpx.Client, job: dict) -> dict:
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = client.get(f"/v1/exports/{job['id']}").json()
    return job


def test_export_job_csv_jsonl_parquet(api: dict, client: httpx.Client) -> None:
    brands = [BRAND, "brand_wanderly"]
    with Engine(api["settings"]) as engine:
        want = [
            (b, h.influencer_id, h.rank) for b in brands for h in engine.match_brand(b, 4, Filters.make(micro=True))
        ]
    tables = {}
    for fmt in ("csv", "jsonl", "parquet"):
        r = client.post("/v1/exports", json={"brands": brands, "k": 4, "format": fmt, "micro": True})
        assert r.status_code == 202, r.text
        job = _finished(client, r.json())
        assert job["status"] == "done" and job["rows"] == len(want) and job["download_url"]
        data = client.get(job["download_url"])
        assert data.status_code == 200
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(data.text)))
        elif fmt == "jsonl":
            rows = [json.loads(line) for line in data.text.splitlines()]
        else:
            rows = pq.read_table(io.BytesIO(data.content)).to_pylist()
        tables[fmt] = [(r["brand_id"], r["influencer_id"], int(r["rank"])) for r in rows]
        assert set(rows[0]) >= {"brand_id", "influencer_id", "handle", "followers", "category", "score", "rank"}
    assert tables["csv"] == tables["jsonl"] == tables["parquet"] == want


def test_export_of_all_brands_reports_progress(client: httpx.Client) -> None:
    r = client.post("/v1/exports", json={"brands": "all", "k": 3, "format": "jsonl"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running", "done") and job["download_url"] in (
        None,
        f"/v1/exports/{job['id']}/download",
    )
    seen = [(job["done_brands"], job["total_brands"])]
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/v1/exports/{job['id']}").json()
        seen.append((job["done_brands"], job["total_brands"]))
    assert job["status"] == "done" and job["rows"] == 18 and (job["done_brands"], job["total_brands"]) == (6, 6)
    done = [d for d, _ in seen]
    assert done == sorted(done) and all(d <= t for d, t in seen if t), seen
    rows = [json.loads(line) for line in client.get(job["download_url"]).text.splitlines()]
    assert len({r["brand_id"] for r in rows}) == 6


def test_export_bad_requests(client: httpx.Client) -> None:
    r = client.post("/v1/exports", json={"brands": ["nope", BRAND], "k": 4})
    assert r.status_code == 422 and "not brands in the corpus: 'nope'" in r.json()["detail"]
    assert client.post("/v1/exports", json={"brands": [], "k": 4}).status_code == 422
    r = client.post("/v1/exports", json={"brands": "all", "k": 4, "category": "fashon"})  # at once, not a failed job
    assert r.status_code == 422 and r.json()["detail"].startswith("no influencer has the category 'fashon'")
    assert client.post("/v1/exports", json={"brands": "some", "k": 4}).status_code == 422
    assert client.post("/v1/exports", json={"format": "xlsx"}).status_code == 422
    assert client.get("/v1/exports/0123456789abcdef").status_code == 404
    assert client.get("/v1/exports/..%2F..%2Fetc").status_code == 404


def test_openapi_and_docs(api: dict) -> None:
    spec = httpx.get(api["url"] + "/openapi.json").json()
    assert {"/v1/match", "/v1/score", "/v1/exports", "/v1/explain", "/healthz", "/readyz"} <= set(spec["paths"])
    content = spec["paths"]["/v1/match"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert httpx.get(api["url"] + "/docs").status_code == 200


def test_concurrent_explanations_and_uploads_do_not_mix(api: dict, client: httpx.Client) -> None:
    """Grad-CAM hooks into the shared image encoder: concurrent requests must not feed each other's hooks."""
    from concurrent.futures import ThreadPoolExecutor

    posts = [f"{cat}_creator_0{i}_p1" for cat in ("fitness", "food", "pets", "fashion") for i in (1, 2)]
    upload = sorted((api["corpus"] / "images").glob("brand_wanderly_p*.jpg"))

    def explain(post: str) -> httpx.Response:
        return client.get("/v1/explain", params={"brand": "brand_wanderly", "post": post, "format": "npy"})

    def match_new(_: int) -> httpx.Response:
        return client.post("/v1/match", files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in upload])

    with ThreadPoolExecutor(12) as pool:
        maps = list(pool.map(explain, posts))
        uploads = list(pool.map(match_new, range(4)))
    assert [r.status_code for r in maps] == [200] * len(posts), [r.text[:200] for r in maps if r.status_code != 200]
    assert all(r.status_code == 200 for r in uploads)
    assert all(r.headers["x-congruence-cached"] == "false" for r in maps)
    with Engine(api["settings"]) as engine:  # the same maps computed one at a time, without the cache
        from congruence.search.explain import Explainer

        explainer = Explainer(engine)
        explainer.cache_dir = api["settings"].home / "cache" / "serial"
        for post, r in zip(posts, maps, strict=True):
            serial, _ = explainer.explain_post("brand_wanderly", post)
            np.testing.assert_allclose(np.load(io.BytesIO(r.content)), serial.heatmap, rtol=1e-3, atol=1e-5)
