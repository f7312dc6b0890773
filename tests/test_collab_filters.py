"""The collaboration filters (--worked-with, --not-worked-with, --since; docs/collaborations.md,
"Filters") on match, similar and export, against brute force over the accounts the graph says
pass (read straight from PostgreSQL's ``collaboration_edges``): every passing account comes
back, in order, however far from the query. A handle nobody tagged gives an empty answer and a
warning; a handle that is no Instagram username is compared exactly. Also: the CLI, the HTTP
API on a real server, sharded serving, and the web page in a real headless Chromium."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings
from congruence.indexer.corpus import Corpus, read_corpus
from congruence.indexer.corpus_write import write_corpus
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.filters import Filters
from congruence.search.shards import ShardedEngine, ShardServer
from congruence.store import database
from congruence.store.collaborations import normal_handle
from congruence.store.records import Store
from congruence.store.rows import Account
from congruence.training.deploy import publish_current

from .conftest import TABLES, run
from .server import serving
from .test_export import read_rows
from .test_feedback import brute, influencer_vectors
from .test_web import CHROMIUM, browser, page  # noqa: F401  (fixtures)

BRAND, FAR_BRAND = "brand_peakfit", "brand_circuitry"  # fitness; tech, far from the peakfit partners
EARLY, LATE = datetime(2025, 1, 10, 12, tzinfo=UTC), datetime(2026, 6, 1, 12, tzinfo=UTC)
SINCE = "2026-01-01"
# post id -> (tagged, sponsors, when, caption): edges beside the demo's known matches (each brand
# -> its category's creator_00, so fitness_creator_00 -> peakfit, undated)
EDITS: dict[str, tuple[tuple[str, ...], tuple[str, ...], datetime, str | None]] = {
    "food_creator_01_p0": (("@PeakFit",), (), LATE, None),
    "travel_creator_02_p1": ((), ("peakfit",), EARLY, None),  # a paid partnership
    "pets_creator_01_p0": (("puma",), (), EARLY, None),
    "tech_creator_00_p1": (("Puma ",), (), LATE, None),
    "fitness_creator_01_p0": (("@puma", "nikestore"), (), LATE, None),
    "fashion_creator_01_p0": (("Nike Store",), (), EARLY, None),  # no username: kept as it is
    "tech_creator_01_p0": ((), (), LATE, "unboxing day with @peakfit and @mentiononly"),  # mentions only
}
ACME = "worked_with: nobody tagged 'acme', was sponsored by it or is its known match: no creator worked with it"


def tagged_corpus(small: Path, root: Path) -> Path:
    """The demo corpus with ``EDITS`` and an account whose handle is nikestore, in ``root``."""
    shutil.copytree(small, root)
    c = read_corpus(root)
    posts = []
    for p in c.posts:
        if p.id in EDITS:
            tagged, sponsors, ts, caption = EDITS[p.id]
            extra = {**p.extra, "sponsors": list(sponsors)} if sponsors else p.extra
            p = dataclasses.replace(
                p, tagged=tagged, ts=ts, sponsored=bool(sponsors), extra=extra, caption=caption or p.caption
            )
        posts.append(p)
    accounts = [*c.accounts, Account("shop_nikestore", "brand", "nikestore", "fashion", None)]
    return write_corpus(Corpus(root, accounts, posts, c.matches))


@pytest.fixture(scope="module")
def store(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    tmp = tmp_path_factory.mktemp("collab-filters")
    settings = Settings(home=tmp / "home", database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    report = ingest(tagged_corpus(small_corpus, tmp / "corpus"), settings)
    assert report.rejected == []
    return settings


@pytest.fixture
def engine(store: Settings) -> Iterator[Engine]:
    with Engine(store) as e:
        yield e


def worked(settings: Settings, handles: list[str], since: str | None = None) -> set[str]:
    """Influencers with a tag, sponsor or match edge to any of ``handles`` (on or after ``since``,
    undated edges counting), by SQL over the graph's view."""
    with Store.open(settings) as store:
        rows = store.conn.execute(
            "SELECT DISTINCT e.account_id FROM collaboration_edges e JOIN accounts a ON a.id = e.account_id"
            " WHERE a.kind = 'influencer' AND e.kind IN ('tag', 'sponsor', 'match')"
            " AND e.handle IN (SELECT collab_handle(h) FROM unnest(%s::text[]) AS h)"
            " AND (%s::date IS NULL OR e.last_at IS NULL OR e.last_at >= %s::date::timestamptz)",
            (handles, since, since),
        ).fetchall()
    return {r[0] for r in rows}


def passing(settings: Settings, f: Filters, everyone: set[str]) -> set[str]:
    keep = worked(settings, list(f.worked_with)) if f.worked_with else set(everyone)
    return keep - worked(settings, list(f.not_worked_with), f.since) if f.not_worked_with else keep


FILTERS = [
    Filters.make(worked_with=["@PeakFit"]),
    Filters.make(worked_with=["peakfit", "PUMA"]),
    Filters.make(not_worked_with=["puma"]),
    Filters.make(not_worked_with=["puma", "peakfit"], since=SINCE),
    Filters.make(worked_with=["peakfit"], not_worked_with=["peakfit"], since=SINCE),  # only before SINCE
    Filters.make(worked_with=["Nike Store"]),
    Filters.make("tech", worked_with=["puma"]),
]
EXPECTED = [  # the graph as EDITS and the demo's matches make it: the brute force is no tautology
    {"fitness_creator_00", "food_creator_01", "travel_creator_02"},
    {
        "fitness_creator_00",
        "food_creator_01",
        "travel_creator_02",
        "pets_creator_01",
        "tech_creator_00",
        "fitness_creator_01",
    },
    None,
    None,
    {"travel_creator_02"},
    {"fashion_creator_01"},
    {"tech_creator_00"},
]


def test_match_and_similar_against_brute_force(store: Settings, engine: Engine) -> None:
    xb = influencer_vectors(engine)
    everyone = set(xb)
    q = engine.entry(engine.snapshot, BRAND, "brand").vector
    for f, expected in zip(FILTERS, EXPECTED, strict=True):
        keep = passing(store, f, everyone) & (
            {a for a in everyone if a.startswith(f.category)} if f.category else everyone
        )
        if expected is not None:
            assert keep == expected, f
        assert 0 < len(keep) < 18, f
        got = [h.influencer_id for h in engine.match_brand(BRAND, k=18, filters=f)]
        assert got == brute(q, xb, set(), keep), f  # every one that passes: never starved
        assert [h.influencer_id for h in engine.match_brand(BRAND, k=2, filters=f)] == got[:2]
        seed = "fitness_creator_02"
        sim = [h.influencer_id for h in engine.similar(seed, k=18, filters=f)]
        assert sim == brute(xb[seed], xb, {seed}, keep), f
        assert engine.snapshot.selection(f) is not None  # applied inside the search, as a selection
    nine_late = Filters.make(not_worked_with=["puma", "peakfit"], since=SINCE)  # the dated edges after SINCE
    assert everyone - passing(store, nine_late, everyone) == {
        "fitness_creator_00",  # a known match: undated, always counts
        "food_creator_01",
        "tech_creator_00",
        "fitness_creator_01",
    }


def test_filters_never_starve_a_far_query(engine: Engine) -> None:
    f = Filters.make(worked_with=["peakfit"])
    unfiltered = [h.influencer_id for h in engine.match_brand(FAR_BRAND, k=18)]
    partners = {"fitness_creator_00", "food_creator_01", "travel_creator_02"}
    assert min(unfiltered.index(a) for a in partners) >= 3  # none in the unfiltered top 3
    got = engine.match_brand(FAR_BRAND, k=3, filters=f)
    assert {h.influencer_id for h in got} == partners and [h.rank for h in got] == [1, 2, 3]
    assert [h.influencer_id for h in got] == [a for a in unfiltered if a in partners]
    assert len(engine.match_brand(FAR_BRAND, k=5, filters=Filters.make(not_worked_with=["peakfit"]))) == 5


def test_export_equals_match_and_the_job_file_round_trips(engine: Engine, tmp_path: Path) -> None:
    for i, f in enumerate((FILTERS[1], FILTERS[3])):
        out = tmp_path / f"s{i}.jsonl"
        report = run_export(engine, ExportSpec((BRAND, FAR_BRAND), 18, "jsonl", f), out)
        rows = read_rows(out, "jsonl")
        for brand in (BRAND, FAR_BRAND):
            expected = [h.influencer_id for h in engine.match_brand(brand, 18, f)]
            assert [r["influencer_id"] for r in rows if r["brand_id"] == brand] == expected
        assert report.warnings == ()
        assert Filters(**json.loads(json.dumps(f.to_json()))) == f  # an export job's file
    report = run_export(engine, ExportSpec((BRAND,), 18, "jsonl", Filters.make(worked_with=["acme"])), tmp_path / "a")
    assert report.rows == 0 and report.warnings == (ACME,) and report.to_dict()["warnings"] == [ACME]


def test_an_unknown_handle_gives_an_empty_answer_and_says_why(engine: Engine) -> None:
    snap = engine.current()
    f = Filters.make(worked_with=["@ACME"])
    assert engine.match_brand(BRAND, 18, f) == [] and f.warnings(snap.collabs) == [ACME]
    both = Filters.make(worked_with=["acme", "peakfit"])  # the answer of the other; the warning all the same
    assert {h.influencer_id for h in engine.match_brand(BRAND, 18, both)} == EXPECTED[0]
    assert both.warnings(snap.collabs) == [ACME]
    mentioned = Filters.make(worked_with=["mentiononly"])  # a caption @mention is no collaboration
    assert engine.similar("pets_creator_00", 18, mentioned) == []
    assert mentioned.warnings(snap.collabs) == [ACME.replace("acme", "mentiononly")]
    loose = Filters.make(not_worked_with=["acme"])
    assert len(engine.match_brand(BRAND, 18, loose)) == 18
    assert loose.warnings(snap.collabs) == [
        "not_worked_with: nobody tagged 'acme', was sponsored by it or is its known match: it leaves no one out"
    ]
    assert Filters.make(worked_with=["peakfit"], not_worked_with=["puma"]).warnings(snap.collabs) == []


def test_a_handle_that_is_no_username_is_compared_exactly(engine: Engine) -> None:
    exact = [h.influencer_id for h in engine.match_brand(BRAND, 18, Filters.make(worked_with=["Nike Store"]))]
    assert exact == ["fashion_creator_01"]
    username = [h.influencer_id for h in engine.match_brand(BRAND, 18, Filters.make(worked_with=["@NikeStore"]))]
    assert username == ["fitness_creator_01"]  # tagged nikestore, the account's handle: not 'Nike Store'
    lower = Filters.make(worked_with=["nike store"])
    assert engine.match_brand(BRAND, 18, lower) == []
    assert lower.warnings(engine.current().collabs) == [
        "worked_with: nobody tagged 'nike store' (not an Instagram username: compared exactly), was sponsored "
        "by it or is its known match: no creator worked with it"
    ]


TRICKY = [
    "  @Nike ",
    "@@nike",
    "Nike Store",
    "NIKE.STORE_1",
    "\u212aate",  # KELVIN SIGN: lower-cased to 'k'
    "\u0130stanbul",  # I WITH DOT ABOVE: 'i' in SQL, two characters in Python's lower()
    "\xa0nike\u202f",  # no-break spaces: not stripped in SQL, stripped by Python's str.strip()
    "\x1cnike\x85",
    "\u2003nike\u3000",
    "\tnike\n",
    "A" * 31,
    "a" * 30,
    "@",
    " @ nike",
    "ＮＩＫＥ",
    "nike\u200b",
    "ß",
    "Émile",
]


def test_normal_handle_agrees_with_the_sql_function(pg_url: str) -> None:
    with database.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT collab_handle(t.h) FROM unnest(%s::text[]) WITH ORDINALITY AS t(h, n) ORDER BY t.n", (TRICKY,)
        ).fetchall()
    assert [normal_handle(h) for h in TRICKY] == [r[0] for r in rows]


def test_make_checks_the_collaboration_filters() -> None:
    f = Filters.make(worked_with=["@Nike", " nike", "Nike Store"], not_worked_with=["puma"], since=date(2026, 1, 1))
    assert (f.worked_with, f.not_worked_with, f.since) == (("Nike Store", "nike"), ("puma",), "2026-01-01")
    assert f.active and Filters.make(worked_with=["nike", "adidas"]) == Filters.make(worked_with=["adidas", "nike"])
    for kwargs, message, field in [
        ({"not_worked_with": ["x"], "since": "2026-13-01"}, "must be a date, YYYY-MM-DD, got '2026-13-01'", "since"),
        ({"since": "2026-01-01"}, "(2026-01-01) applies only with handles not worked with", "since"),
        ({"worked_with": "nike"}, "expects a list of handles, got str", "worked_with"),
        ({"not_worked_with": ["@"]}, "'@' is no handle", "not_worked_with"),
        ({"worked_with": [f"h{i}" for i in range(101)]}, "takes at most 100 handles, got 101", "worked_with"),
        ({"worked_with": ["x" * 101]}, "is longer than 100 characters", "worked_with"),
        ({"worked_with": ["nike"], "not_worked_with": ["NIKE"]}, "'nike' is also among the handles worked with", None),
    ]:
        with pytest.raises(InvalidInput) as e:
            Filters.make(**kwargs)  # type: ignore[arg-type]
        assert message in e.value.message and e.value.field == (field or "not_worked_with"), kwargs


def test_cli_match_similar_export_and_warnings(
    store: Settings, engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONGRUENCE_HOME", str(store.home))
    monkeypatch.setenv("DATABASE_URL", str(store.database_url))
    f = FILTERS[3]
    code, out, err = run(
        capsys,
        "match",
        "--brand",
        BRAND,
        "-k",
        "18",
        "--not-worked-with",
        "puma",
        "peakfit",
        "--since",
        SINCE,
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert [d["influencer_id"] for d in doc["data"]] == [h.influencer_id for h in engine.match_brand(BRAND, 18, f)]
    assert doc["warnings"] == [] and err == ""
    code, out, err = run(capsys, "similar", "--influencer", "pets_creator_00", "--worked-with", "acme", "--json")
    doc = json.loads(out)
    assert code == 0 and doc.pop("ranking").endswith("signals: content only (no head in service)")
    assert doc == {"data": [], "count": 0, "warnings": [ACME]}
    assert err == f"warning: {ACME}\n"
    code, out, _ = run(capsys, "similar", "--influencer", "pets_creator_00", "-k", "18", "--worked-with", "@PeakFit")
    assert code == 0 and len(out.splitlines()) == 4  # the header and the three
    code, _, err = run(capsys, "match", "--brand", BRAND, "--since", SINCE)
    assert code == 1 and f"--since ({SINCE}) applies only with handles not worked with" in err
    code, _, err = run(capsys, "match", "--brand", BRAND, "--not-worked-with", "puma", "--since", "June")
    assert code == 1 and "--since must be a date, YYYY-MM-DD, got 'June'" in err
    brands = tmp_path / "brands.txt"
    brands.write_text(f"{BRAND}\n")
    out_file = tmp_path / "s.jsonl"
    code, out, err = run(
        capsys, "export", "--brands", str(brands), "--out", str(out_file), "--format", "jsonl", "-k", "18",
        "--worked-with", "acme", "peakfit", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["warnings"] == [ACME] and f"warning: {ACME}" in err
    expected = [h.influencer_id for h in engine.match_brand(BRAND, 18, Filters.make(worked_with=["peakfit"]))]
    assert [r["influencer_id"] for r in read_rows(out_file, "jsonl")] == expected


@pytest.fixture(scope="module")
def site(store: Settings) -> Iterator[str]:
    with serving(store, auth=False) as url:
        yield url


def test_api_match_similar_export_and_warnings(site: str, engine: Engine, store: Settings) -> None:
    f = FILTERS[3]
    body = {"brand_id": BRAND, "k": 18, "posts": 0, "not_worked_with": ["puma", "peakfit"], "since": SINCE}
    r = httpx.post(site + "/v1/match", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert [h["influencer_id"] for h in r.json()["data"]] == [h.influencer_id for h in engine.match_brand(BRAND, 18, f)]
    assert r.json()["warnings"] == []
    r = httpx.post(site + "/v1/match", json={"brand_id": BRAND, "worked_with": "acme, peakfit"}, timeout=60)
    assert {h["influencer_id"] for h in r.json()["data"]} == EXPECTED[0] and r.json()["warnings"] == [ACME]
    q: dict[str, list[str] | int] = {"worked_with": ["peakfit", "PUMA"], "k": 18}
    r = httpx.get(site + "/v1/influencers/fitness_creator_02/similar", params=q, timeout=60)
    sim = [h.influencer_id for h in engine.similar("fitness_creator_02", 18, FILTERS[1])]
    assert [h["influencer_id"] for h in r.json()["data"]] == sim
    r = httpx.post(site + "/v1/similar", json={"influencers": ["pets_creator_00"], "worked_with": ["acme"]}, timeout=60)
    assert r.json()["data"] == [] and r.json()["warnings"] == [ACME]
    image = next((store.home.parent / "corpus" / "images").iterdir())
    r = httpx.post(
        site + "/v1/match",
        data={"text": "running shoes", "k": "18", "worked_with": "Nike Store"},
        files=[("images", (image.name, image.read_bytes(), "image/jpeg"))],
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert [h["influencer_id"] for h in r.json()["data"]] == ["fashion_creator_01"] and r.json()["warnings"] == []
    r = httpx.post(site + "/v1/match", json={"brand_id": BRAND, "since": SINCE}, timeout=60)
    assert r.status_code == 422 and r.json()["field"] == "since"
    r = httpx.post(site + "/v1/match", json={"brand_id": BRAND, "not_worked_with": ["x"], "since": "x"}, timeout=60)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["since"]
    job = httpx.post(
        site + "/v1/exports", json={"brands": [BRAND], "k": 18, "format": "jsonl", "worked_with": ["acme"]}, timeout=60
    ).json()
    for _ in range(600):
        job = httpx.get(site + f"/v1/exports/{job['id']}", timeout=60).json()
        if job["status"] in ("done", "failed"):
            break
        __import__("time").sleep(0.1)
    assert job["status"] == "done" and job["rows"] == 0 and job["warnings"] == [ACME], job
    saved = json.loads((store.home / "exports" / job["id"] / "job.json").read_text())
    assert saved["filters"]["worked_with"] == ["acme"] and saved["warnings"] == [ACME]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_search_form_sends_the_filters_and_shows_warnings(site: str, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(site + "/")
    page.wait_for_function("document.querySelectorAll('#brand-list option').length === 7")
    page.fill("#brand", BRAND)
    page.uncheck("#micro")
    page.fill("#worked-with", "@PeakFit, acme")
    page.click("#search-btn")
    page.wait_for_function("document.querySelectorAll('.card').length === 3")
    assert {c.get_attribute("data-influencer") for c in page.locator(".card").all()} == EXPECTED[0]
    assert page.locator("#warnings li").all_inner_texts() == [ACME]
    page.fill("#worked-with", "")
    page.fill("#since", SINCE)
    page.click("#search-btn")
    page.wait_for_function("document.querySelector('#status').classList.contains('error')")
    assert "applies only with handles in" in page.locator("#status").inner_text()
    page.fill("#not-worked-with", "puma, peakfit")
    page.click("#search-btn")
    page.wait_for_function("document.querySelectorAll('.card').length === 14")
    assert page.locator("#warnings").is_hidden()
    shown = {c.get_attribute("data-influencer") for c in page.locator(".card").all()}
    assert not shown & {"fitness_creator_00", "food_creator_01", "tech_creator_00", "fitness_creator_01"}


def test_sharded_serving_filters_in_each_shard(store: Settings, engine: Engine) -> None:
    n = 3
    publish_current(store, shards=n)
    servers = [ShardServer(store, i, n) for i in range(n)]
    try:
        with ShardedEngine(store, servers) as sharded:
            for f in [*FILTERS, Filters.make(worked_with=["acme"])]:
                for brand in (BRAND, FAR_BRAND):
                    a, b = sharded.match_brand(brand, 18, f), engine.match_brand(brand, 18, f)
                    assert [(h.influencer_id, round(h.score, 5)) for h in a] == [
                        (h.influencer_id, round(h.score, 5)) for h in b
                    ], f
                a, b = sharded.similar("pets_creator_00", 5, f), engine.similar("pets_creator_00", 5, f)
                assert [h.influencer_id for h in a] == [h.influencer_id for h in b], f
            for f, expected in zip(FILTERS, EXPECTED, strict=True):  # not only as the single process is
                assert expected is None or {h.influencer_id for h in sharded.match_brand(BRAND, 18, f)} == expected
            assert Filters.make(worked_with=["acme"]).warnings(sharded.current().collabs) == [ACME]
            assert all(s.engine.snapshot.collabs is not None for s in servers)
    finally:
        for s in servers:
            s.close()
