"""Saved searches (docs/saved-searches.md) on the command line, on a real PostgreSQL with the
small demo corpus: save, run, list, delete; the options round-trip into the same Filters and
Feedback, so a rerun prints what `match` prints; a new brand's vectors are kept and rerun by a
fresh engine; errors at save time; what is new since the previous run (newly ingested, moved
in) and who is gone."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from congruence.cli.main import _filters, build_parser
from congruence.cli.searches import spec_of
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.search.saved_searches import SearchSpec
from congruence.store import database
from congruence.store.records import Store

from .conftest import TABLES, run

BRAND = "brand_peakfit"
SEARCH_TABLES = "saved_searches, saved_search_runs, lists, list_entries, list_history"


def fresh_corpus(pg_url: str, corpus: Path, home: Path) -> Settings:
    """An emptied database (saved searches and lists too) with ``corpus`` ingested."""
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES}, {SEARCH_TABLES} RESTART IDENTITY CASCADE")
    settings = Settings(home=home, database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    assert ingest(corpus, settings).rejected == []
    return settings


@pytest.fixture(scope="module")
def corpus_store(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return fresh_corpus(pg_url, small_corpus, tmp_path_factory.mktemp("searches") / "home")


@pytest.fixture
def cli(corpus_store: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    with Store.open(corpus_store) as store:
        store.conn.execute(f"TRUNCATE {SEARCH_TABLES} RESTART IDENTITY CASCADE")
    monkeypatch.setenv("CONGRUENCE_HOME", str(corpus_store.home))
    monkeypatch.setenv("DATABASE_URL", str(corpus_store.database_url))
    yield corpus_store


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def without_marks(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k not in ("new", "new_reason")} for d in data]


def test_save_run_list_delete(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "search", "save", "weekly", "--brand", BRAND, "-k", "6", "--micro")
    assert code == 0, err
    assert "saved search 'weekly'" in out
    listed = run_json(capsys, "search", "list", "--json")
    assert listed["count"] == 1
    s = listed["data"][0]
    assert (s["name"], s["brand_id"], s["new_brand"], s["runs"], s["last_run_at"]) == ("weekly", BRAND, False, 0, None)
    assert s["options"]["k"] == 6 and s["options"]["filters"]["min_followers"] == 5000

    first = run_json(capsys, "search", "run", "weekly", "--json")
    assert first["count"] == 6 and len(first["data"]) == 6
    assert first["previous_run"] is None and first["gone"] == [] and first["warnings"] == []
    assert all(d["new"] is False and d["new_reason"] is None for d in first["data"])
    assert first["ranking"].startswith("untrained")
    again = run_json(capsys, "search", "run", "weekly", "--json")
    assert again["previous_run"]["influencer_ids"] == [d["influencer_id"] for d in first["data"]]
    assert again["previous_run"]["count"] == 6 and again["previous_run"]["max_seq"] > 0
    assert not any(d["new"] for d in again["data"]) and again["data"] == first["data"]

    code, out, _ = run(capsys, "search", "run", "weekly")  # the table: a "new" column, nothing new
    assert code == 0 and "0 new since the previous run" in out and " new " in out.splitlines()[1]
    code, out, _ = run(capsys, "search", "list")
    assert code == 0 and out.startswith("weekly  brand brand_peakfit  k 6  3 runs, last run ")

    code, out, _ = run(capsys, "search", "delete", "weekly")
    assert code == 0 and "deleted saved search 'weekly'" in out
    assert run_json(capsys, "search", "list", "--json") == {"data": [], "count": 0}
    code, _, err = run(capsys, "search", "run", "weekly")
    assert code == 1 and "unknown saved search 'weekly'" in err
    code, _, err = run(capsys, "search", "delete", "weekly")
    assert code == 1 and "unknown saved search 'weekly'" in err


MATCH_OPTIONS = (
    "-k", "7", "--min-followers", "1000", "--signals", "content", "--dislike", "travel_creator_00",
    "--like", "fitness_creator_02", "--like-weight", "2.5", "--exclude-list", "spring",
    "--not-worked-with", "Nike", "--since", "2026-01-01",
)  # fmt: skip


def test_options_round_trip_and_rerun_equals_match(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["search", "save", "x", "--brand", BRAND, *MATCH_OPTIONS])
    spec = spec_of(args, _filters)
    again = SearchSpec.from_options(BRAND, json.loads(json.dumps(spec.to_options())))
    assert again == spec and again.filters.not_worked_with == ("nike",) and again.feedback.params.like_weight == 2.5

    assert run(capsys, "list", "create", "spring", "--brand", BRAND)[0] == 0
    assert run(capsys, "list", "add", "spring", "fitness_creator_00")[0] == 0
    code, _, err = run(capsys, "search", "save", "steered", "--brand", BRAND, *MATCH_OPTIONS)
    assert code == 0, err
    ran = run_json(capsys, "search", "run", "steered", "--json")
    matched = run_json(capsys, "match", "--brand", BRAND, *MATCH_OPTIONS, "--json")
    assert matched["count"] == 7 and without_marks(ran["data"]) == matched["data"]
    assert (ran["ranking"], ran["warnings"]) == (matched["ranking"], matched["warnings"])
    shown = {d["influencer_id"] for d in ran["data"]}
    assert not shown & {"fitness_creator_00", "fitness_creator_02", "travel_creator_00"}  # listed, liked, disliked
    assert ran["warnings"] and "nike" in ran["warnings"][0]  # nobody in this corpus worked with it

    # the list is read when the search runs, as match reads it: its new member leaves both
    top = ran["data"][0]["influencer_id"]
    assert run(capsys, "list", "add", "spring", top)[0] == 0
    ran = run_json(capsys, "search", "run", "steered", "--json")
    matched = run_json(capsys, "match", "--brand", BRAND, *MATCH_OPTIONS, "--json")
    assert top not in {d["influencer_id"] for d in ran["data"]}
    assert without_marks(ran["data"]) == matched["data"]
    assert [d["new_reason"] for d in ran["data"] if d["new"]] == ["moved in"]


def test_bad_options_are_refused_when_saved(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (("--brand", "nope"), "unknown brand 'nope'"),
        (("--brand", "fitness_creator_00"), "'fitness_creator_00' is an influencer, not a brand"),
        (("--brand", BRAND, "--min-followers", "10", "--max-followers", "5"), "--min-followers (10) is greater"),
        (("--brand", BRAND, "--category", "knitting"), "no influencer has the category 'knitting'"),
        (("--brand", BRAND, "--exclude-list", "nolist"), "unknown list 'nolist'"),
        (("--brand", BRAND, "-k", "0"), "-k must be a whole number from 1 to 1000, got 0"),
        (("--brand", BRAND, "--like", "ghost"), "ghost"),
        (("--brand", BRAND, "--since", "2026-01-01"), "--since (2026-01-01) applies only with handles"),
        ((), "give either --brand ID, or --images/--text"),
    ]
    for options, message in cases:
        code, _, err = run(capsys, "search", "save", "bad", *options)
        assert code == 1 and message in err, (options, err)
    code, _, err = run(capsys, "search", "save", "a/b", "--brand", BRAND)
    assert code == 1 and "NAME must have no '/'" in err
    assert run_json(capsys, "search", "list", "--json")["count"] == 0  # nothing was kept

    assert run(capsys, "search", "save", "dup", "--brand", BRAND, "-k", "3")[0] == 0
    code, _, err = run(capsys, "search", "save", "dup", "--brand", BRAND, "-k", "4")
    assert code == 1 and "a saved search named 'dup' exists already" in err
    run_json(capsys, "search", "run", "dup", "--json")
    code, _, err = run(capsys, "search", "save", "dup", "--brand", BRAND, "-k", "4", "--replace")
    assert code == 0, err
    s = run_json(capsys, "search", "list", "--json")["data"][0]
    assert (s["options"]["k"], s["runs"]) == (4, 0)  # replaced, and its runs (of other options) gone
    assert run_json(capsys, "search", "run", "dup", "--json")["previous_run"] is None


def test_a_new_brand_is_kept_and_rerun_by_a_new_engine(
    cli: Settings, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [str(small_corpus / "images" / f"brand_peakfit_p{i}.jpg") for i in range(2)]
    new_brand = ("--images", *images, "--text", "trail running shoes", "-k", "5")
    code, out, err = run(capsys, "search", "save", "shoes", *new_brand)
    assert code == 0 and "a new brand" in out, err
    with Store.open(cli) as store:  # the query's vectors are in PostgreSQL, not only in a process
        space, dim = store.conn.execute(
            "SELECT query_space, array_length(query_vector, 1) FROM saved_searches WHERE name = 'shoes'"
        ).fetchone()
    assert space == "pooled" and dim > 100
    ran = run_json(capsys, "search", "run", "shoes", "--json")  # each command opens its own engine
    matched = run_json(capsys, "match", *new_brand, "--json")
    assert ran["count"] == 5 and without_marks(ran["data"]) == matched["data"]
    assert run_json(capsys, "search", "list", "--json")["data"][0]["new_brand"] is True
    with Store.open(cli) as store:  # as if another head were put in service since: said, not ranked wrongly
        store.conn.execute("UPDATE saved_searches SET query_space = 'head:v0' WHERE name = 'shoes'")
    code, _, err = run(capsys, "search", "run", "shoes")
    assert code == 1 and "saved search 'shoes' describes its brand in 'head:v0', but 'pooled' is in service" in err


def _newcomer(corpus: Path, folder: Path) -> Path:
    """A corpus folder of one new influencer whose posts are the brand's own pictures."""
    shutil.copytree(corpus / "images", folder / "images")
    acc = {"id": "newcomer", "kind": "influencer", "handle": "newcomer", "category": "fitness", "followers": 20000}
    (folder / "accounts.jsonl").write_text(json.dumps(acc) + "\n")
    posts = [
        {
            "id": f"newcomer_p{i}",
            "account_id": "newcomer",
            "image": f"images/brand_peakfit_p{i}.jpg",
            "caption": "a run",
        }
        for i in range(2)
    ]
    (folder / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in posts))
    return folder


def test_new_since_the_previous_run_and_gone(
    pg_url: str, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = fresh_corpus(pg_url, small_corpus, tmp_path / "home")
    monkeypatch.setenv("CONGRUENCE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    assert run(capsys, "search", "save", "watch", "--brand", BRAND, "-k", "5")[0] == 0
    first = run_json(capsys, "search", "run", "watch", "--json")
    ids = [d["influencer_id"] for d in first["data"]]
    wider = [d["influencer_id"] for d in run_json(capsys, "match", "--brand", BRAND, "-k", "6", "--json")["data"]]
    assert wider[:5] == ids

    # the top one is deleted: it is gone, and the 6th moves in
    assert run(capsys, "delete", ids[0])[0] == 0
    second = run_json(capsys, "search", "run", "watch", "--json")
    assert second["gone"] == [ids[0]]
    assert [d["influencer_id"] for d in second["data"]] == wider[1:6]
    assert [(d["influencer_id"], d["new_reason"]) for d in second["data"] if d["new"]] == [(wider[5], "moved in")]
    code, out, _ = run(capsys, "search", "run", "watch")  # the table says so too (a third run: nothing new)
    assert "0 new since the previous run" in out and "gone" not in out

    # a newcomer is ingested: newly ingested (it came after the previous run's newest seq)
    assert run(capsys, "ingest", str(_newcomer(small_corpus, tmp_path / "extra")))[0] == 0
    code, out, _ = run(capsys, "search", "run", "watch")
    new_rows = [line.split()[:4] for line in out.splitlines()[2:] if "newly ingested" in line]
    assert "1 new since the previous run" in out and [r[1:] for r in new_rows] == [["newly", "ingested", "newcomer"]]
    fourth = run_json(capsys, "search", "run", "watch", "--json")
    assert "newcomer" in [d["influencer_id"] for d in fourth["data"]] and not any(d["new"] for d in fourth["data"])
    assert run_json(capsys, "search", "list", "--json")["data"][0]["runs"] == 5
    with Store.open(settings) as store:
        (seq,) = store.seqs_of(["newcomer"])
    assert fourth["previous_run"]["max_seq"] == seq  # the newest influencer seq the previous run saw

    assert run(capsys, "delete", BRAND)[0] == 0  # its brand deleted: the run says which search lost what
    code, _, err = run(capsys, "search", "run", "watch")
    assert code == 1 and "saved search 'watch': unknown brand 'brand_peakfit'" in err


def test_concurrent_saves_of_one_name(cli: Settings) -> None:
    """Of saves racing for one name exactly one wins (the others: Conflict); racing replaces all
    succeed, one after the other, and one search of the name is left."""
    import threading

    from congruence.core.errors import Conflict
    from congruence.store import saved_searches

    options = SearchSpec(BRAND, 3).to_options()

    def race(replace: bool) -> list[str]:
        got: list[str] = []

        def save(i: int) -> None:
            with Store.open(cli) as store:
                try:
                    saved_searches.save(store, "race", BRAND, options | {"k": i + 1}, None, f"w{i}", replace)
                    got.append("ok")
                except Conflict:
                    got.append("conflict")

        threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(got)

    assert race(False) == ["conflict"] * 5 + ["ok"]
    assert race(True) == ["ok"] * 6
    with Store.open(cli) as store:
        assert [s.name for s in saved_searches.all_searches(store)] == ["race"]
