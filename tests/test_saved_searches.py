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

from congruence.cli.feedback import feedback_of
from congruence.cli.main import _filters, build_parser
from congruence.cli.searches import spec_of
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.saved_searches import SearchSpec
from congruence.store import database, saved_searches
from congruence.store.records import Store
from congruence.training.jobs import train_and_deploy
from congruence.training.loop import TrainConfig

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
    opts = s["options"]  # as typed (micro a flag, no bound set), resolved when it runs
    assert (opts["version"], opts["k"], opts["filters"]["micro"], opts["filters"]["min_followers"]) == (
        1,
        6,
        True,
        None,
    )

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
    again = SearchSpec.from_options("x", BRAND, json.loads(json.dumps(spec.to_options())))
    assert again == spec and again.resolve() == (_filters(args), feedback_of(args))
    filters, feedback = again.resolve()
    assert filters.not_worked_with == ("nike",) and feedback.params.like_weight == 2.5
    # what was typed is kept: the weight left unset is null (its default is read when it runs)
    assert (spec.feedback["like_weight"], spec.feedback["dislike_weight"]) == (2.5, None)

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
        (("--brand", BRAND, "--like", "ghost"), "error: --like names an unknown influencer: 'ghost'\n"),
        (("--brand", BRAND, "--since", "2026-01-01"), "--since (2026-01-01) applies only with handles"),
        ((), "give either --brand ID, or --images/--text"),
    ]
    for options, message in cases:
        code, _, err = run(capsys, "search", "save", "bad", *options)
        assert code == 1 and message in err, (options, err)
    for name, message in (
        ("a/b", "must have no '/' and no control character, got 'a/b'"),
        (".", "must not be '.' or '..' (they are no name in a URL), got '.'"),
        ("..", "must not be '.' or '..' (they are no name in a URL), got '..'"),
        (" weekly", "must not begin or end with a space, got ' weekly'"),
        ("weekly ", "must not begin or end with a space, got 'weekly '"),
    ):
        code, _, err = run(capsys, "search", "save", name, "--brand", BRAND)
        assert (code, err) == (1, f"error: NAME {message}\n"), name
    assert run_json(capsys, "search", "list", "--json")["count"] == 0  # nothing was kept

    assert run(capsys, "search", "save", "dup", "--brand", BRAND, "-k", "3")[0] == 0
    code, _, err = run(capsys, "search", "save", "dup", "--brand", BRAND, "-k", "4")
    assert (code, err) == (
        1,
        "error: a saved search named 'dup' exists already: replace it (--replace), or update it and keep its runs "
        "(--update)\n",
    )
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
    with Engine(cli) as engine:
        ids = engine.ids
    with Store.open(cli) as store:  # the encoders' outputs are in PostgreSQL, not only in a process
        dims = store.conn.execute(
            "SELECT array_dims(query_images), array_dims(query_text) FROM saved_searches WHERE name = 'shoes'"
        ).fetchone()
    assert dims == (f"[1:2][1:{ids.d_image}]", f"[1:{ids.d_text}]")
    ran = run_json(capsys, "search", "run", "shoes", "--json")  # each command opens its own engine
    matched = run_json(capsys, "match", *new_brand, "--json")
    assert ran["count"] == 5 and without_marks(ran["data"]) == matched["data"]
    assert run_json(capsys, "search", "list", "--json")["data"][0]["new_brand"] is True
    with Store.open(cli) as store:  # the list reads no query vectors; one search, with them
        assert [s.query for s in saved_searches.all_searches(store)] == [None]
        kept = saved_searches.get(store, "shoes").query
    assert kept is not None and kept.images is not None and kept.images.shape == (2, ids.d_image)


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


def test_a_deleted_like_is_left_out_and_a_deleted_list_repaired_by_update(
    pg_url: str, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = fresh_corpus(pg_url, small_corpus, tmp_path / "home")
    monkeypatch.setenv("CONGRUENCE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    assert run(capsys, "list", "create", "spring", "--brand", BRAND)[0] == 0
    assert run(capsys, "list", "add", "spring", "fitness_creator_00")[0] == 0
    steer = ("--brand", BRAND, "-k", "5", "--dislike", "travel_creator_00")
    saved = ("search", "save", "steer", *steer, "--like", "fitness_creator_02", "--exclude-list", "spring")
    assert run(capsys, *saved)[0] == 0
    assert run_json(capsys, "search", "run", "steer", "--json")["warnings"] == []

    assert run(capsys, "delete", "fitness_creator_02")[0] == 0  # the liked one: left out, and said so
    ran = run_json(capsys, "search", "run", "steer", "--json")
    assert ran["warnings"] == [
        "liked influencer 'fitness_creator_02' no longer exists (deleted since the search was saved): "
        "left out of the feedback"
    ]
    matched = run_json(capsys, "match", *steer, "--exclude-list", "spring", "--json")
    assert without_marks(ran["data"]) == matched["data"] and ran["ranking"] == matched["ranking"]

    assert run(capsys, "list", "delete", "spring")[0] == 0  # the list left out: an error naming both
    code, _, err = run(capsys, "search", "run", "steer")
    assert (code, err) == (
        1,
        "error: saved search 'steer' leaves out the campaign list 'spring', which no longer exists: update the "
        "search (its runs stay) to leave out another list, or none\n",
    )
    code, out, err = run(capsys, "search", "save", "steer", *steer, "--update")  # the repair: its runs stay
    assert code == 0 and out.startswith("updated search 'steer': brand 'brand_peakfit', k 5"), err
    s = run_json(capsys, "search", "list", "--json")["data"][0]
    assert (s["runs"], s["options"]["filters"]["exclude_list"], s["options"]["feedback"]["like"]) == (2, None, None)
    assert s["updated_at"] is not None
    ran = run_json(capsys, "search", "run", "steer", "--json")
    assert ran["previous_run"]["count"] == 5 and ran["warnings"] == [
        "the options changed since the previous run (the search was updated): what is marked new compares "
        "with a run of the old options"
    ]
    assert without_marks(ran["data"]) == run_json(capsys, "match", *steer, "--json")["data"]
    assert run_json(capsys, "search", "run", "steer", "--json")["warnings"] == []  # the same options since
    code, _, err = run(capsys, "search", "save", "nope", *steer, "--update")
    assert (code, err) == (1, "error: unknown saved search 'nope'\n")
    with pytest.raises(SystemExit):
        run(capsys, "search", "save", "nope", *steer, "--update", "--replace")
    assert capsys.readouterr().err.endswith("error: argument --replace: not allowed with argument --update\n")


V1 = {  # the options of `search save NAME --brand B -k 4 --micro`, as version 1 writes them
    "version": 1,
    "k": 4,
    "posts": 0,
    "signals": "all",
    "filters": {
        "category": None, "min_followers": None, "max_followers": None, "micro": True, "brand_safe": False,
        "exclude_categories": None, "safe_last": None, "worked_with": None, "not_worked_with": None,
        "since": None, "exclude_list": None, "exclude_status": None,
        "metrics": {
            "min_er": None, "max_er": None, "max_sponsored_share": None, "min_posts_per_week": None,
            "no_flags": False, "min_growth": None, "max_growth": None,
        },
    },
    "feedback": {"like": None, "dislike": None, "like_weight": None, "dislike_weight": None},
}  # fmt: skip


def _stored(settings: Settings, name: str, options: dict[str, Any]) -> None:
    """A saved search as an older or a newer congruence left it."""
    with Store.open(settings) as store:
        store.conn.execute(
            "INSERT INTO saved_searches (name, brand_id, options) VALUES (%s, %s, %s)",
            (name, BRAND, json.dumps(options)),
        )


def test_options_are_versioned_and_read_tolerantly(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "search", "save", "micro", "--brand", BRAND, "-k", "4", "--micro")[0] == 0
    assert run_json(capsys, "search", "list", "--json")["data"][0]["options"] == V1
    matched = run_json(capsys, "match", "--brand", BRAND, "-k", "4", "--micro", "--json")
    _stored(cli, "v1", V1)
    _stored(cli, "sparse", {"version": 1, "k": 4, "filters": {"micro": True}})  # absent keys: their defaults
    _stored(cli, "unversioned", {"k": 4, "filters": {"micro": True}})
    for name in ("micro", "v1", "sparse", "unversioned"):
        assert without_marks(run_json(capsys, "search", "run", name, "--json")["data"]) == matched["data"], name
    newer = "it was saved by a newer congruence"
    for name, options, message in (
        ("colour", V1 | {"colour": "red"}, f"saved search 'colour' has an option this congruence does not know, "
                                           f"'colour': {newer}"),
        ("reach", {"k": 4, "filters": {"micro": True, "min_reach": 5}}, "saved search 'reach' has an option this "
                                           f"congruence does not know, 'filters.min_reach': {newer}"),
        ("v2", V1 | {"version": 2}, "saved search 'v2' was saved by a newer congruence (options version 2; this "
                                    "one reads version 1)"),
        ("badk", V1 | {"k": "4"}, "saved search 'badk': k must be a whole number from 1 to 1000, got '4'"),
        ("badcat", {"filters": {"category": 5}}, "saved search 'badcat' has options this congruence cannot read: "
                                                 "'int' object has no attribute 'strip'"),
    ):  # fmt: skip
        _stored(cli, name, options)
        code, _, err = run(capsys, "search", "run", name)
        assert (code, err) == (1, f"error: {message}\n"), name


def test_a_run_compares_with_the_run_recorded_while_it_waited(cli: Settings) -> None:
    """Rank first, then under the search's row lock: read the previous run, record this one. A run
    recorded while this one waited for the lock is the one it compares with; a run of an older
    snapshot generation than the previous run's is not recorded."""
    import threading
    import time

    from congruence.search.saved_searches import NOT_RECORDED, run_search, save_search
    from congruence.store.saved_searches import NewRun

    with Engine(cli) as engine:
        save_search(engine, "race", SearchSpec(BRAND, 3), None, "t")
        first = run_search(engine, "race")
        assert first.recorded is not None
        got: list[Any] = []
        with Store.open(cli) as holder, holder.conn.transaction():
            sid = holder.conn.execute("SELECT id FROM saved_searches WHERE name = 'race' FOR UPDATE").fetchone()[0]
            waiting = threading.Thread(target=lambda: got.append(run_search(engine, "race")))
            waiting.start()
            time.sleep(1.0)
            assert waiting.is_alive() and not got  # ranked, and waiting for the lock
            other = NewRun(("fitness_creator_00",), (0.5,), first.recorded.max_seq, first.recorded.generation,
                           first.recorded.space, first.recorded.options_hash)  # fmt: skip
            _, between = saved_searches.record_run(holder, sid, other)
        waiting.join(timeout=60)
        (second,) = got
        assert between is not None and second.previous == between
        ids = [h.influencer_id for h in second.hits]
        assert ids == [h.influencer_id for h in first.hits]  # marked new against the run recorded between
        assert second.marks == [(False, None) if a == "fitness_creator_00" else (True, "moved in") for a in ids]

        with Store.open(cli) as store:  # a previous run of a newer generation: this one is not kept
            newer = NewRun(("fitness_creator_00",), (0.5,), 0, second.snap.generation + 1, second.snap.space, "x")
            _, ahead = saved_searches.record_run(store, sid, newer)
            runs = saved_searches.get(store, "race").runs
        stale = run_search(engine, "race")
        assert (stale.previous, stale.recorded) == (ahead, None) and NOT_RECORDED in stale.warnings
        with Store.open(cli) as store:
            assert saved_searches.get(store, "race").runs == runs


def test_the_newest_runs_are_kept(cli: Settings) -> None:
    from congruence.store.saved_searches import KEEP_RUNS, NewRun

    with Store.open(cli) as store:
        s = saved_searches.save(store, "kept", BRAND, SearchSpec(BRAND, 3).to_options(), None, "t")
        for i in range(KEEP_RUNS + 3):
            saved_searches.record_run(store, s.id, NewRun((f"a{i}",), (1.0,), i, None, "pooled", "h"))
        assert saved_searches.get(store, "kept").runs == KEEP_RUNS == 100
        left = saved_searches.runs(store, s.id, limit=1000)
    assert [r.max_seq for r in left] == list(range(KEEP_RUNS + 2, 2, -1))


def test_concurrent_saves_of_one_name(cli: Settings) -> None:
    """Of saves racing for one name exactly one wins (the others: Conflict); racing replaces all
    succeed, one after the other, and one search of the name is left."""
    import threading

    from congruence.core.errors import Conflict

    options = SearchSpec(BRAND, 3).to_options()

    def race(replace: bool) -> list[str]:
        got: list[str] = []

        def save(i: int) -> None:
            with Store.open(cli) as store:
                try:
                    mode = "replace" if replace else "create"
                    saved_searches.save(store, "race", BRAND, options | {"k": i + 1}, None, f"w{i}", mode)
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


def _deploy(settings: Settings, seed: int) -> str:
    """Train a tiny head and put it in service; its space."""
    outcome = train_and_deploy(
        settings,
        TrainConfig(epochs=1, batch_brands=4, list_size=8, device="cpu", seed=seed),
        ("head",),
        None,
        0.3,
        activate_anyway=True,
    )
    return f"head:{outcome.version}"


def test_a_new_brand_reruns_after_each_retrain_and_keeps_its_history(
    pg_url: str, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new brand is kept as its encoders' outputs: each head put in service rebuilds its query
    (as `match` with the same images and text does), the runs stay, and the run says the head changed."""
    settings = fresh_corpus(pg_url, small_corpus, tmp_path / "home")
    monkeypatch.setenv("CONGRUENCE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    images = [str(small_corpus / "images" / f"brand_peakfit_p{i}.jpg") for i in range(2)]
    new_brand = ("--images", *images, "--text", "trail running shoes", "-k", "5")
    assert run(capsys, "search", "save", "shoes", *new_brand)[0] == 0
    assert run_json(capsys, "search", "run", "shoes", "--json")["previous_run"] is None
    before = "pooled"
    for runs, seed in enumerate((0, 1), start=2):
        now = _deploy(settings, seed)
        assert now != before
        ran = run_json(capsys, "search", "run", "shoes", "--json")
        matched = run_json(capsys, "match", *new_brand, "--json")
        assert ran["count"] == 5 and without_marks(ran["data"]) == matched["data"]
        assert ran["ranking"] == matched["ranking"] and ran["ranking"].startswith(f"congruence head {now[5:]}")
        assert ran["previous_run"]["space"] == before  # the history stays, and says which model ranked it
        assert ran["warnings"] == [
            f'another model ranks since the previous run ({before} then, {now} now): "moved in" includes '
            "re-ranking by the new head"
        ]
        assert run_json(capsys, "search", "list", "--json")["data"][0]["runs"] == runs
        before = now
    again = run_json(capsys, "search", "run", "shoes", "--json")  # the same head: nothing to say
    assert again["warnings"] == [] and again["previous_run"]["space"] == before


def test_new_is_decided_by_the_snapshot_that_ranked(
    pg_url: str, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hit's seq for new/moved in is the one of the snapshot that ranked it: an account
    ingested after the previous run, and deleted while this run ranked, is newly ingested."""
    from congruence.indexer.maintenance import delete_accounts
    from congruence.search.saved_searches import run_search, save_search

    settings = fresh_corpus(pg_url, small_corpus, tmp_path / "home")
    with Engine(settings) as engine:
        save_search(engine, "all", SearchSpec(BRAND, 100), None, "t")
        assert run_search(engine, "all").previous is None
        assert ingest(_newcomer(small_corpus, tmp_path / "extra"), settings).rejected == []
        snap = engine.current()
        assert "newcomer" in snap.table.ids
        assert delete_accounts(settings, ["newcomer"]) == ["newcomer"]
        monkeypatch.setattr(engine, "current", lambda: snap)  # the snapshot taken before the delete ranks
        ran = run_search(engine, "all")
    marks = dict(zip([h.influencer_id for h in ran.hits], ran.marks, strict=True))
    assert marks["newcomer"] == (True, "newly ingested")
    assert [m for a, m in marks.items() if a != "newcomer"] == [(False, None)] * (len(marks) - 1)
