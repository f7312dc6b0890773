"""Reading an account's collaborations (docs/collaborations.md, "An account's collaborations"):
`congruence account ID` (table and --json), `GET /v1/accounts/{id}` on a real server, the web
account page in a real Chromium, and the export's columns `collaborations` and
`collaborated_with`, each against what the posts say and against brute force over
`edges_from`; a sharded ingress writes the single process's columns."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.filters import Filters
from congruence.search.shards import ShardedEngine, ShardServer
from congruence.store import account_metrics as metrics_store
from congruence.store import collaborations as graph
from congruence.store import database
from congruence.store.collaborations import KINDS
from congruence.store.records import Store
from congruence.training.deploy import publish_current

from .conftest import TABLES, run
from .server import serving
from .test_ray import needs_ray, ray_cluster  # noqa: F401  (fixture)
from .test_web import CHROMIUM, _shot, browser, page  # noqa: F401  (fixtures)

F0, F1, T0 = "fitness_creator_00", "fitness_creator_01", "travel_creator_00"
PEAKFIT, WANDERLY = "brand_peakfit", "brand_wanderly"  # handles peakfit, wanderly
# what the demo's posts are given: tags, sponsors of a paid partnership, a caption @mention
TAGS: dict[str, dict[str, object]] = {
    f"{F0}_p0": {"tagged": ["@PeakFit", "some_shop"], "sponsored": True, "sponsors": ["peakfit"], "at": "@wanderly"},
    f"{F0}_p1": {"tagged": ["peakfit", "Wanderly"], "sponsored": False},
    f"{F1}_p0": {"tagged": ["PEAKFIT"], "sponsored": True},
    f"{T0}_p1": {"tagged": [], "sponsored": True, "sponsors": ["wanderly"], "handle_of": F0},
    "food_creator_02_p0": {"tagged": ["Nike Official"], "sponsored": False},
}
Edge = tuple[str, str, str, int, int, datetime | None, datetime | None, str | None]


def tagged_corpus(small_corpus: Path, root: Path) -> tuple[Path, dict[str, datetime], dict[str, str]]:
    """A copy of the demo corpus whose posts name others as ``TAGS`` says: (folder, post -> its
    time, account -> its handle)."""
    shutil.copytree(small_corpus, root)
    handles = {a["id"]: a["handle"] for a in map(json.loads, (root / "accounts.jsonl").read_text().splitlines())}
    posts, at = [], {}
    for p in map(json.loads, (root / "posts.jsonl").read_text().splitlines()):
        at[p["id"]] = datetime.fromisoformat(p["ts"])
        t = TAGS.get(p["id"])
        if t is not None:
            tagged = list(t["tagged"]) + ([handles[str(t["handle_of"])]] if "handle_of" in t else [])  # type: ignore[call-overload]
            p |= {"tagged": tagged, "sponsored": t["sponsored"]}
            if "sponsors" in t:
                p["sponsors"] = t["sponsors"]
            if "at" in t:
                p["caption"] += f" with {t['at']}"  # a mention: no collaboration
        posts.append(json.dumps(p))
    (root / "posts.jsonl").write_text("\n".join(posts) + "\n")
    return root, at, handles


def expected(at: dict[str, datetime]) -> dict[str, set[Edge]]:
    """The edges ``TAGS`` gives (with the demo's known matches), by hand: (account, kind, handle,
    posts, sponsored, first, last, account of the handle)."""
    p0, p1, f1, t1 = at[f"{F0}_p0"], at[f"{F0}_p1"], at[f"{F1}_p0"], at[f"{T0}_p1"]
    return {
        F0: {
            (F0, "tag", "peakfit", 2, 1, min(p0, p1), max(p0, p1), PEAKFIT),  # '@PeakFit' and 'peakfit'
            (F0, "tag", "some_shop", 1, 1, p0, p0, None),  # no account: an edge all the same
            (F0, "tag", "wanderly", 1, 0, p1, p1, WANDERLY),
            (F0, "sponsor", "peakfit", 1, 1, p0, p0, PEAKFIT),
            (F0, "match", "peakfit", 0, 0, None, None, PEAKFIT),  # the demo's known match
        },
        F1: {(F1, "tag", "peakfit", 1, 1, f1, f1, PEAKFIT)},
        T0: {
            (T0, "tag", "<F0's handle>", 1, 1, t1, t1, F0),
            (T0, "sponsor", "wanderly", 1, 1, t1, t1, WANDERLY),
            (T0, "match", "wanderly", 0, 0, None, None, WANDERLY),
        },
    }


@pytest.fixture(scope="module")
def site(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The tagged corpus ingested (graph and metrics), served without auth."""
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    tmp = tmp_path_factory.mktemp("account-collabs")
    root, at, handles = tagged_corpus(small_corpus, tmp / "corpus")
    settings = Settings(home=tmp / "home", database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    report = ingest(root, settings)
    assert report.rejected == []
    want = expected(at)
    want[T0] = {e if e[2] != "<F0's handle>" else (*e[:2], handles[F0], *e[3:]) for e in want[T0]}
    with serving(settings, auth=False) as url:
        yield {"url": url, "settings": settings, "want": want, "handles": handles}


def as_edges(items: list[dict]) -> set[Edge]:
    """JSON edges (the CLI's or the API's) as tuples, dates parsed."""

    def at(s: str | None) -> datetime | None:
        return datetime.fromisoformat(s) if s is not None else None

    return {
        (
            e["account_id"],
            e["kind"],
            e["handle"],
            e["posts"],
            e["sponsored_posts"],
            at(e["first_at"]),
            at(e["last_at"]),
            e["target_id"],
        )
        for e in items
    }


def cli_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, site: dict, *argv: str) -> dict:
    env(monkeypatch, site["settings"])
    code, out, err = run(capsys, "account", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("CONGRUENCE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    # the CLI's sessions 14 hours ahead of UTC (the posts are at noon UTC): its days are UTC's still
    monkeypatch.setenv("PGTZ", "Pacific/Kiritimati")


# -- the command line ----------------------------------------------------------------------------
def test_cli_json_of_an_influencer_is_what_its_posts_say(
    site: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    got = cli_json(capsys, monkeypatch, site, F0)
    with Store.open(site["settings"]) as store:
        acc = store.account(F0)
        metrics = metrics_store.read(store, [F0])[F0]
    assert {k: got[k] for k in ("id", "kind", "handle", "category", "followers", "n_posts")} == {
        "id": F0,
        "kind": "influencer",
        "handle": site["handles"][F0],
        "category": "fitness",
        "followers": acc.followers,
        "n_posts": 2,
    }
    assert got["metrics"] == json.loads(json.dumps(metrics.to_dict())) and metrics.sponsored_posts == 1
    assert as_edges(got["worked_with"]) == site["want"][F0]  # no mention: '@wanderly' of a caption
    assert got["worked_with"][0]["handle"] == "peakfit" and got["worked_with"][0]["posts"] == 2  # most posts first
    assert got["collaborations"] == 3 and got["worked_with_total"] == 5  # peakfit, some_shop, wanderly
    assert as_edges(got["tagged_by"]) == {e for e in site["want"][T0] if e[7] == F0} and got["tagged_by_total"] == 1
    assert got["partners"] == [] and got["partners_total"] == 0
    assert as_edges(cli_json(capsys, monkeypatch, site, T0)["worked_with"]) == site["want"][T0]


def test_cli_json_of_a_brand_lists_who_tagged_it_and_its_known_partners(
    site: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    got = cli_json(capsys, monkeypatch, site, PEAKFIT)
    assert got["kind"] == "brand" and got["worked_with"] == [] and got["collaborations"] == 0
    named = {e for a in (F0, F1) for e in site["want"][a] if e[7] == PEAKFIT}
    assert as_edges(got["tagged_by"]) == {e for e in named if e[1] != "match"}  # F0's tag and sponsor, F1's tag
    assert (
        as_edges(got["partners"])
        == {e for e in named if e[1] == "match"}
        == {(F0, "match", "peakfit", 0, 0, None, None, PEAKFIT)}
    )
    assert (got["tagged_by_total"], got["partners_total"]) == (3, 1)
    few = cli_json(capsys, monkeypatch, site, PEAKFIT, "--limit", "1")
    assert len(few["tagged_by"]) == 1 and few["tagged_by_total"] == 3 and few["tagged_by"][0]["posts"] == 2
    assert few["tagged_by"][0] == got["tagged_by"][0]


def test_cli_table_of_an_influencer_and_a_brand(
    site: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env(monkeypatch, site["settings"])
    code, out, err = run(capsys, "account", F0)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"@{site['handles'][F0]} ({F0})"
    assert lines[1].startswith("influencer · fitness · ") and lines[1].endswith(" · 2 posts")
    assert lines[2].startswith("metrics: engagement rate ") and "authenticity flags: " in lines[2]
    assert "worked with 3 handles (tags, sponsors, known matches)" in lines
    rows = {tuple(line.split()) for line in lines if line.startswith("  ")}
    for _, kind, handle, posts, sponsored, first, last, target in site["want"][F0]:
        day = (first.date().isoformat(), last.date().isoformat()) if first and last else ("-", "-")
        assert (handle, kind, str(posts), str(sponsored), *day, target or "-") in rows
    assert tuple(lines[lines.index("worked with (5):") + 2].split()[:4]) == ("peakfit", "tag", "2", "1")
    code, out, _ = run(capsys, "account", PEAKFIT)
    assert code == 0 and "worked with (0):" in out and "tagged by (or sponsoring) (3):" in out
    partners = out.split("known partners (1):\n")[1].splitlines()
    assert partners[1].split() == [F0, "match", "0", "0", "-", "-"]


def test_cli_unknown_account_and_bad_limit(
    site: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env(monkeypatch, site["settings"])
    assert run(capsys, "account", "nobody") == (1, "", "error: unknown account 'nobody'\n")
    assert run(capsys, "account", "nobody", "--json") == (1, "", "error: unknown account 'nobody'\n")
    assert run(capsys, "account", F0, "--limit", "-1") == (
        1,
        "",
        f"error: --limit must be a whole number from 0 to {graph.MAX_EDGES}, got -1\n",
    )


# -- the HTTP API and the web page ---------------------------------------------------------------
def test_api_account_carries_what_the_cli_prints(
    site: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ("collaborations", "worked_with_total", "tagged_by_total", "partners_total")
    for account in (F0, T0, PEAKFIT):
        r = httpx.get(site["url"] + f"/v1/accounts/{account}", timeout=60)
        assert r.status_code == 200, r.text
        api, cli = r.json(), cli_json(capsys, monkeypatch, site, account)
        assert {k: api[k] for k in keys} == {k: cli[k] for k in keys}
        for k in ("worked_with", "tagged_by", "partners"):
            assert as_edges(api[k]) == as_edges(cli[k])
            assert [e["handle"] for e in api[k]] == [e["handle"] for e in cli[k]]  # the same order
    f0 = httpx.get(site["url"] + f"/v1/accounts/{F0}", timeout=60).json()
    assert as_edges(f0["worked_with"]) == site["want"][F0] and f0["collaborations"] == 3
    one = httpx.get(site["url"] + f"/v1/accounts/{F0}", params={"edges": 1}, timeout=60).json()
    assert len(one["worked_with"]) == 1 and one["worked_with_total"] == 5 and one["collaborations"] == 3
    assert httpx.get(site["url"] + f"/v1/accounts/{F0}", params={"edges": -1}, timeout=60).status_code == 422
    r = httpx.get(site["url"] + "/v1/accounts/nobody", timeout=60)
    assert r.status_code == 404 and "nobody" in r.text


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_account_page_shows_worked_with_tagged_by_and_partners(site: dict, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(site["url"] + f"/account?id={F0}")
    page.wait_for_selector("#worked-with tbody tr")
    rows = page.locator("#worked-with tbody tr").all_inner_texts()
    assert {tuple(c.strip() for c in r.split("\t")) for r in rows} == {
        (h, k, str(n), str(s), f.date().isoformat() if f else "–", la.date().isoformat() if la else "–")
        for _, k, h, n, s, f, la, _ in site["want"][F0]
    }
    assert rows[0].split("\t")[:3] == ["peakfit", "tag", "2"]  # most posts first
    assert page.locator("#worked-with-note").inner_text().startswith("3 handles:")
    links = page.locator("#worked-with a")  # the handles that are accounts of the store
    assert sorted(links.all_inner_texts()) == ["peakfit", "peakfit", "peakfit", "wanderly"]
    assert page.locator("#worked-with td", has_text="some_shop").locator("a").count() == 0
    _shot(page, "account-worked-with")
    assert not page.locator("#tagged-by-box").is_hidden()  # others tagged this influencer
    assert page.locator("#tagged-by a").all_inner_texts() == [T0] and page.locator("#partners-box").is_hidden()
    page.locator("#worked-with a", has_text="wanderly").click()
    page.wait_for_url(f"**/account?id={WANDERLY}")
    page.wait_for_selector("#tagged-by tbody tr")
    assert page.locator("#account-title").inner_text() == "@wanderly"
    assert sorted(page.locator("#tagged-by a").all_inner_texts()) == [F0, T0]
    assert page.locator("#partners a").all_inner_texts() == [T0]
    assert page.locator("#worked-with-note").inner_text() == "No tag, sponsor or known match recorded."
    _shot(page, "account-brand-tagged-by")


# -- the export's columns ------------------------------------------------------------------------
def brute_force(store: Store, account_id: str, named: tuple[str, ...]) -> tuple[int, str | None]:
    """(collaborations, collaborated_with) of one influencer, from ``edges_from`` alone."""
    edges = graph.edges_from(store, account_id)
    if not named:
        return len({e.handle for e in edges}), None
    mine = sorted((named.index(e.handle), KINDS.index(e.kind), e) for e in edges if e.handle in named)
    text = ";".join(
        f"{e.handle}:{e.kind}:{e.posts}:{e.last_at.astimezone(UTC).date().isoformat() if e.last_at else ''}"
        for *_, e in mine
    )
    return len({e.handle for e in edges}), text


def read_export(path: Path, fmt: str) -> list[dict]:
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with path.open(newline="") as f:  # CSV cannot tell null from ""
        return [r | {"collaborations": int(r["collaborations"])} for r in csv.DictReader(f)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_columns_equal_brute_force_over_edges_from(site: dict, fmt: str, tmp_path: Path) -> None:
    settings = site["settings"]
    filters = {
        "none": Filters(),
        "worked": Filters.make(worked_with=["@PeakFit", "WANDERLY", "some_shop"]),
        "not since": Filters.make(not_worked_with=["wanderly", "nobody_at_all"], since="2000-01-01"),
    }
    with Engine(settings) as engine:
        for name, f in filters.items():
            run_export(engine, ExportSpec(None, 18, fmt, f), tmp_path / f"{name}.{fmt}")
    named = {"none": (), "worked": ("peakfit", "some_shop", "wanderly"), "not since": ("nobody_at_all", "wanderly")}
    with Store.open(settings) as store:
        for name in filters:
            rows = read_export(tmp_path / f"{name}.{fmt}", fmt)
            assert rows and list(rows[0])[-3:] == ["collaborations", "collaborated_with", "in_lists"]
            for r in rows:
                count, text = brute_force(store, r["influencer_id"], named[name])
                if fmt == "csv":
                    text = text or ""
                assert (r["collaborations"], r["collaborated_with"]) == (count, text), (name, r)
            ids = {r["influencer_id"] for r in rows}
            if name == "worked":  # exactly the edges with the handles named
                assert ids == {F0, F1, T0}
                f0 = next(r for r in rows if r["influencer_id"] == F0)["collaborated_with"]
                assert [p.split(":")[:3] for p in f0.split(";")] == [
                    ["peakfit", "tag", "2"],
                    ["peakfit", "sponsor", "1"],
                    ["peakfit", "match", "0"],
                    ["some_shop", "tag", "1"],
                    ["wanderly", "tag", "1"],
                ]
                assert f0.split(";")[2] == "peakfit:match:0:"  # a known match: undated
            if name == "not since":
                assert F0 not in ids and T0 not in ids and len(ids) == 16
                assert {r["collaborated_with"] for r in rows} == {""}  # none of theirs names a handle named
            if name == "none":
                counts = {r["influencer_id"]: r["collaborations"] for r in rows}
                assert counts[F0] == 3 and counts[T0] == 2 and counts[F1] == 1 and counts["food_creator_02"] == 1


def test_a_sharded_ingress_writes_the_single_process_columns(site: dict, tmp_path: Path) -> None:
    settings = site["settings"]
    publish_current(settings, shards=2)
    servers = [ShardServer(settings, i, 2) for i in range(2)]
    spec = ExportSpec(None, 18, "jsonl", Filters.make(worked_with=["peakfit", "wanderly"]))
    try:
        with Engine(settings) as single, ShardedEngine(settings, servers) as sharded:
            assert len(sharded.snapshot.table.ids) == 18 and sharded.snapshot.collabs is not None
            run_export(single, spec, tmp_path / "single.jsonl")
            run_export(sharded, spec, tmp_path / "sharded.jsonl")
    finally:
        for s in servers:
            s.close()
    cols = ("brand_id", "influencer_id", "rank", "collaborations", "collaborated_with")
    a, b = (read_export(tmp_path / f"{n}.jsonl", "jsonl") for n in ("single", "sharded"))
    assert [tuple(r[c] for c in cols) for r in a] == [tuple(r[c] for c in cols) for r in b]
    assert {r["influencer_id"] for r in a} == {F0, F1, T0}


@needs_ray
def test_a_ray_export_writes_the_local_columns(site: dict, ray_cluster: None, tmp_path: Path) -> None:  # noqa: F811
    spec = ExportSpec(None, 18, "jsonl", Filters.make(worked_with=["peakfit"], not_worked_with=["some_shop"]))
    with Engine(site["settings"]) as engine:
        run_export(engine, spec, tmp_path / "local.jsonl", batch_brands=2)
        run_export(engine, spec, tmp_path / "ray.jsonl", batch_brands=2, ray_address="local")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    rows = read_export(tmp_path / "ray.jsonl", "jsonl")
    assert {(r["influencer_id"], r["collaborated_with"].split(":")[0]) for r in rows} == {(F1, "peakfit")}
