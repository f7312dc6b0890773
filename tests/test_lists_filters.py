"""Searches leave out listed creators (docs/lists.md): --exclude-list and --exclude-status in
match, similar and export, and exclude_list / exclude_status in the API, against brute force over
the pooled vectors; never starved (applied as the selection); a list edited between two searches
with the same filter is read again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from congruence.core.errors import InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.filters import Filters
from congruence.search.shards import ShardedEngine, ShardServer
from congruence.store import lists
from congruence.store.records import Store
from congruence.training.deploy import publish_current

from .conftest import run
from .server import serving
from .test_export import read_rows
from .test_feedback import brute, influencer_vectors
from .test_lists import BRAND, F0, F1, F2, LIST_TABLES, T0, corpus_store  # noqa: F401  (fixture)

FOOD = "food_creator_01"
STATUS = {F0: "contacted", F1: "declined", T0: "prospect", FOOD: "agreed"}


@pytest.fixture(scope="module")
def listed(corpus_store: Settings) -> Settings:  # noqa: F811
    """The corpus with the list 'spring' of BRAND: ``STATUS``'s influencers, with those statuses."""
    with Store.open(corpus_store) as store:
        store.conn.execute(f"TRUNCATE {LIST_TABLES} RESTART IDENTITY CASCADE")
        lists.create_list(store, "spring", BRAND, "ann")
        for i, s in STATUS.items():
            lists.add(store, "spring", [i], "ann", status=s)
    return corpus_store


@pytest.fixture
def engine(listed: Settings) -> Iterator[Engine]:
    with Engine(listed) as e:
        yield e


def left_out(statuses: tuple[str, ...] = ()) -> set[str]:
    return {i for i, s in STATUS.items() if not statuses or s in statuses}


FILTERS = [
    (Filters.make(exclude_list="spring"), left_out()),
    (
        Filters.make(exclude_list="spring", exclude_status=["contacted", "declined"]),
        left_out(("contacted", "declined")),
    ),
    (Filters.make(exclude_list="spring", exclude_status="agreed, prospect"), left_out(("agreed", "prospect"))),
    (Filters.make("fitness", exclude_list="spring", exclude_status=["declined"]), {F1}),
]


def test_match_and_similar_against_brute_force(engine: Engine) -> None:
    xb = influencer_vectors(engine)
    everyone = set(xb)
    q = engine.entry(engine.snapshot, BRAND, "brand").vector
    assert FILTERS[1][1] == {F0, F1} and FILTERS[2][1] == {T0, FOOD}  # the brute force is no tautology
    for f, out in FILTERS:
        keep = everyone - out
        if f.category:
            keep = {a for a in keep if a.startswith(f.category)}
        got = [h.influencer_id for h in engine.match_brand(BRAND, k=18, filters=f)]
        assert got == brute(q, xb, set(), keep), f
        assert [h.influencer_id for h in engine.match_brand(BRAND, k=2, filters=f)] == got[:2]
        sim = [h.influencer_id for h in engine.similar(F2, k=18, filters=f)]
        assert sim == brute(xb[F2], xb, {F2}, keep), f
        resolved = engine.with_lists(f)
        assert resolved.listed is not None and engine.snapshot.selection(resolved) is not None  # a selection


def test_never_starved_and_read_again_after_an_edit(listed: Settings, engine: Engine) -> None:
    unfiltered = [h.influencer_id for h in engine.match_brand(BRAND, k=18)]
    with Store.open(listed) as store:
        lists.create_list(store, "top", BRAND, "ann")
        lists.add(store, "top", unfiltered[:10], "ann")  # the ten best of the query
        f = Filters.make(exclude_list="top")
        got = [h.influencer_id for h in engine.match_brand(BRAND, k=5, filters=f)]
        assert got == unfiltered[10:15]  # k hits whenever k pass, however far down
        lists.add(store, "top", [unfiltered[10]], "ann")
        assert [h.influencer_id for h in engine.match_brand(BRAND, k=5, filters=f)] == unfiltered[11:16]
        lists.set_entry(store, "top", unfiltered[0], "ann", status="declined")
        declined = Filters.make(exclude_list="top", exclude_status=["declined"])
        assert [h.influencer_id for h in engine.match_brand(BRAND, k=3, filters=declined)] == unfiltered[1:4]
        lists.delete_list(store, "top")
    with pytest.raises(NotFound, match="^unknown list 'top'$"):
        engine.match_brand(BRAND, k=5, filters=f)


def test_sharded_serving_filters_in_each_shard(listed: Settings, engine: Engine) -> None:
    n = 3
    publish_current(listed, shards=n)
    servers = [ShardServer(listed, i, n) for i in range(n)]
    try:
        with ShardedEngine(listed, servers) as sharded:
            for f, out in FILTERS:
                a, b = sharded.match_brand(BRAND, 18, f), engine.match_brand(BRAND, 18, f)
                assert [h.influencer_id for h in a] == [h.influencer_id for h in b], f
                assert not {h.influencer_id for h in a} & out
                assert len(a) == (3 - len(out) if f.category else 18 - len(out)), f
                a, b = sharded.similar(F2, 5, f), engine.similar(F2, 5, f)
                assert [h.influencer_id for h in a] == [h.influencer_id for h in b], f
    finally:
        for s in servers:
            s.close()


def test_export_equals_match_and_the_job_file_round_trips(engine: Engine, tmp_path: Path) -> None:
    f = FILTERS[1][0]
    out = tmp_path / "s.jsonl"
    run_export(engine, ExportSpec((BRAND, "brand_wanderly"), 18, "jsonl", f), out)
    rows = read_rows(out, "jsonl")
    for brand in (BRAND, "brand_wanderly"):
        expected = [h.influencer_id for h in engine.match_brand(brand, 18, f)]
        assert len(expected) == 16 and [r["influencer_id"] for r in rows if r["brand_id"] == brand] == expected
    for g in (f, engine.with_lists(f)):
        assert Filters(**json.loads(json.dumps(g.to_json()))) == g  # an export job's file


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_rows_name_the_lists_of_their_brand(engine: Engine, tmp_path: Path, fmt: str) -> None:
    """An influencer already in a list of the row's brand is marked there, as match marks it;
    the same influencer under another brand is not."""
    with Store.open(engine.settings) as store:
        lists.create_list(store, "autumn", BRAND, "bo")
        lists.add(store, "autumn", [F1], "bo", status="prospect")
    try:
        out = tmp_path / f"s.{fmt}"
        run_export(engine, ExportSpec((BRAND, "brand_wanderly"), 18, fmt, Filters()), out)
        rows = read_rows(out, fmt)
        got = {(r["brand_id"], r["influencer_id"]): r["in_lists"] for r in rows}
        assert len(rows) == 36 and {k: v for k, v in got.items() if v} == {
            (BRAND, F0): "spring:contacted",
            (BRAND, F1): "autumn:prospect;spring:declined",
            (BRAND, T0): "spring:prospect",
            (BRAND, FOOD): "spring:agreed",
        }
    finally:
        with Store.open(engine.settings) as store:
            lists.delete_list(store, "autumn")


def test_make_checks_the_list_filters() -> None:
    with pytest.raises(InvalidInput, match=r"^exclude_status \(declined\) applies only with a list to exclude"):
        Filters.make(exclude_status=["declined"])
    with pytest.raises(InvalidInput, match="^exclude_status must be one of prospect, contacted, agreed, declined"):
        Filters.make(exclude_list="spring", exclude_status="contacted,maybe")
    with pytest.raises(InvalidInput, match="^exclude_list must have no '/'"):
        Filters.make(exclude_list="a/b")
    assert not Filters.make().active and Filters.make(exclude_list="spring").active


def test_cli_match_similar_export(
    listed: Settings,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CONGRUENCE_HOME", str(listed.home))
    monkeypatch.setenv("DATABASE_URL", str(listed.database_url))
    f = FILTERS[1][0]
    code, out, err = run(
        capsys, "match", "--brand", BRAND, "-k", "18", "--exclude-list", "spring",
        "--exclude-status", "contacted,declined", "--json",
    )  # fmt: skip
    assert code == 0, err
    expected = [h.influencer_id for h in engine.match_brand(BRAND, 18, f)]
    assert [d["influencer_id"] for d in json.loads(out)["data"]] == expected and len(expected) == 16
    code, out, _ = run(capsys, "similar", "--influencer", F2, "-k", "18", "--exclude-list", "spring", "--json")
    sim = [h.influencer_id for h in engine.similar(F2, 18, FILTERS[0][0])]
    assert code == 0 and [d["influencer_id"] for d in json.loads(out)["data"]] == sim and len(sim) == 13
    brands = tmp_path / "brands.txt"
    brands.write_text(f"{BRAND}\n")
    out_file = tmp_path / "s.csv"
    code, _, err = run(
        capsys, "export", "--brands", str(brands), "--out", str(out_file), "-k", "18",
        "--exclude-list", "spring", "--exclude-status", "contacted,declined",
    )  # fmt: skip
    assert code == 0, err
    assert [r["influencer_id"] for r in read_rows(out_file, "csv")] == expected
    code, _, err = run(capsys, "match", "--brand", BRAND, "--exclude-status", "declined")
    assert (code, err) == (
        1,
        "error: --exclude-status (declined) applies only with a list to exclude (exclude_list): "
        "it narrows which of its influencers are left out\n",
    )
    code, _, err = run(capsys, "match", "--brand", BRAND, "--exclude-list", "spring", "--exclude-status", "maybe")
    assert (code, err) == (1, f"error: --exclude-status must be one of {', '.join(lists.STATUSES)}, got 'maybe'\n")
    assert run(capsys, "similar", "--influencer", F2, "--exclude-list", "nope")[2] == "error: unknown list 'nope'\n"


def test_api_match_similar_export(listed: Settings, engine: Engine) -> None:
    f = FILTERS[1][0]
    expected = [h.influencer_id for h in engine.match_brand(BRAND, 18, f)]
    with serving(listed, auth=False) as site:
        for statuses in (["contacted", "declined"], "contacted, declined"):
            body = {"brand_id": BRAND, "k": 18, "posts": 0, "exclude_list": "spring", "exclude_status": statuses}
            r = httpx.post(site + "/v1/match", json=body, timeout=60)
            assert r.status_code == 200, r.text
            assert [h["influencer_id"] for h in r.json()["data"]] == expected
        q: dict[str, str | int] = {"exclude_list": "spring", "k": 18}
        r = httpx.get(site + f"/v1/influencers/{F2}/similar", params=q, timeout=60)
        sim = [h.influencer_id for h in engine.similar(F2, 18, FILTERS[0][0])]
        assert [h["influencer_id"] for h in r.json()["data"]] == sim
        body = {"influencers": [F2], "k": 18, "exclude_list": "spring", "exclude_status": ["agreed", "prospect"]}
        r = httpx.post(site + "/v1/similar", json=body, timeout=60)
        sim = [h.influencer_id for h in engine.similar(F2, 18, FILTERS[2][0])]
        assert [h["influencer_id"] for h in r.json()["data"]] == sim
        r = httpx.post(site + "/v1/match", json={"brand_id": BRAND, "exclude_list": "nope"}, timeout=60)
        assert (r.status_code, r.json()) == (404, {"detail": "unknown list 'nope'"})
        r = httpx.post(site + "/v1/match", json={"brand_id": BRAND, "exclude_status": ["declined"]}, timeout=60)
        assert r.status_code == 422 and r.json()["field"] == "exclude_status"
        r = httpx.post(site + "/v1/match", json={"brand_id": BRAND, "exclude_status": ["maybe"]}, timeout=60)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-2:] == ["exclude_status", 0]
        body = {
            "brands": [BRAND],
            "k": 18,
            "format": "jsonl",
            "exclude_list": "spring",
            "exclude_status": "contacted,declined",
        }
        job = httpx.post(site + "/v1/exports", json=body, timeout=60).json()
        for _ in range(600):
            job = httpx.get(site + f"/v1/exports/{job['id']}", timeout=60).json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert job["status"] == "done", job
        rows = httpx.get(site + f"/v1/exports/{job['id']}/download", timeout=60).text.splitlines()
        assert [json.loads(x)["influencer_id"] for x in rows] == expected


def test_hits_name_the_lists_of_the_brand_holding_them(
    listed: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONGRUENCE_HOME", str(listed.home))
    monkeypatch.setenv("DATABASE_URL", str(listed.database_url))
    code, out, _ = run(capsys, "match", "--brand", BRAND, "-k", "18", "--json")
    marks = {d["influencer_id"]: d["in_lists"] for d in json.loads(out)["data"]}
    assert code == 0 and len(marks) == 18
    assert marks == {i: ([{"list": "spring", "status": STATUS[i]}] if i in STATUS else []) for i in marks}
    code, out, _ = run(capsys, "match", "--brand", BRAND, "-k", "18")
    assert code == 0 and out.count("[in spring:") == 4 and "[in spring:declined]" in out
    code, out, _ = run(capsys, "match", "--brand", "brand_wanderly", "-k", "18", "--json")  # not its list
    assert code == 0 and all(d["in_lists"] == [] for d in json.loads(out)["data"])
    with serving(listed, auth=False) as site:
        r = httpx.post(site + "/v1/match", json={"brand_id": BRAND, "k": 18, "posts": 0}, timeout=60)
        assert {h["influencer_id"]: h["in_lists"] for h in r.json()["data"]} == marks
        r = httpx.post(site + "/v1/match", json={"brand_id": "brand_wanderly", "k": 18, "posts": 0}, timeout=60)
        assert all(h["in_lists"] == [] for h in r.json()["data"])
