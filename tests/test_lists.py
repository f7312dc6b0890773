"""Campaign lists (docs/lists.md) in the store and on the command line: create, add, set, remove,
show, export, delete; the history of every change; stale writes (Conflict with the current
entry); the other lists of the brand; a deleted account's entries marked gone, and back after a
re-ingest; clear errors naming the field. On a real PostgreSQL with the small demo corpus."""

from __future__ import annotations

import csv
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from congruence.core.errors import Conflict, InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.store import account_metrics as metrics_store
from congruence.store import database, list_views, lists
from congruence.store.collaborations import account_collaborations
from congruence.store.records import Store

from .conftest import TABLES, run

BRAND, OTHER_BRAND = "brand_peakfit", "brand_wanderly"
F0, F1, F2, T0 = "fitness_creator_00", "fitness_creator_01", "fitness_creator_02", "travel_creator_00"
LIST_TABLES = "lists, list_entries, list_history"


@pytest.fixture(scope="module")
def corpus_store(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    home = tmp_path_factory.mktemp("lists") / "home"
    settings = Settings(home=home, database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    assert ingest(small_corpus, settings).rejected == []
    return settings


@pytest.fixture
def store(corpus_store: Settings) -> Iterator[Store]:
    with Store.open(corpus_store) as s:
        s.conn.execute(f"TRUNCATE {LIST_TABLES} RESTART IDENTITY CASCADE")
        yield s


@pytest.fixture
def cli_env(corpus_store: Settings, store: Store, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CONGRUENCE_HOME", str(corpus_store.home))
    monkeypatch.setenv("DATABASE_URL", str(corpus_store.database_url))
    return corpus_store


def test_create_add_set_remove_and_history(store: Store) -> None:
    lst = lists.create_list(store, "spring", BRAND, "ann")
    assert (lst.name, lst.brand_id, lst.entries, lst.created_by) == ("spring", BRAND, 0, "ann")
    assert lists.add(store, "spring", [F0, F1, F0], "ann", note="first pick") == ([F0, F1], [])
    assert lists.add(store, "spring", [F1, F2], "bob", status="contacted") == ([F2], [F1])  # F1 left as it was
    got = {e.influencer_id: (e.status, e.note, e.version, e.updated_by) for e in lists.entries(store, "spring")}
    assert got == {
        F0: ("prospect", "first pick", 1, "ann"),
        F1: ("prospect", "first pick", 1, "ann"),
        F2: ("contacted", "", 1, "bob"),
    }
    e = lists.set_entry(store, "spring", F0, "bob", status="contacted", expected_version=1)
    assert (e.status, e.note, e.version, e.updated_by) == ("contacted", "first pick", 2, "bob")
    e = lists.set_entry(store, "spring", F0, "ann", note="replied")
    assert (e.status, e.note, e.version) == ("contacted", "replied", 3)
    assert lists.set_entry(store, "spring", F0, "ann", note="replied").version == 3  # no change: no new version
    assert lists.remove(store, "spring", [F1], "ann") == [F1]
    assert [x.influencer_id for x in lists.entries(store, "spring")] == [F0, F2]
    assert lists.get_list(store, "spring").entries == 2
    hist = [(c.influencer_id, c.action, c.actor, c.old_status, c.new_status, c.old_note, c.new_note, c.version)
            for c in list_views.history(store, "spring")]  # fmt: skip
    assert hist == [
        (F0, "add", "ann", None, "prospect", None, "first pick", 1),
        (F1, "add", "ann", None, "prospect", None, "first pick", 1),
        (F2, "add", "bob", None, "contacted", None, "", 1),
        (F0, "set", "bob", "prospect", "contacted", "first pick", "first pick", 2),
        (F0, "set", "ann", "contacted", "contacted", "first pick", "replied", 3),
        (F1, "remove", "ann", "prospect", None, "first pick", None, 1),
    ]
    assert [c.action for c in list_views.history(store, "spring", F1)] == ["add", "remove"]
    lists.delete_list(store, "spring")
    with pytest.raises(NotFound, match="unknown list 'spring'"):
        lists.entries(store, "spring")
    assert store.conn.execute("SELECT count(*) FROM list_history").fetchone() == (0,)


def test_a_stale_version_raises_conflict_with_the_current_entry(store: Store) -> None:
    lists.create_list(store, "spring", BRAND, "ann")
    lists.add(store, "spring", [F0], "ann")
    lists.set_entry(store, "spring", F0, "ann", status="contacted", expected_version=1)
    with pytest.raises(Conflict) as err:
        lists.set_entry(store, "spring", F0, "bob", status="declined", expected_version=1)
    assert err.value.field == "version"
    assert str(err.value) == "version is 2, not 1: the entry changed since it was read"
    current = err.value.current
    assert isinstance(current, lists.Entry)
    assert (current.status, current.version, current.updated_by) == ("contacted", 2, "ann")
    assert lists.entry(store, "spring", F0).status == "contacted"  # the stale write changed nothing
    assert [c.action for c in list_views.history(store, "spring", F0)] == ["add", "set"]
    # removed and added again: the entry goes on from its last version, so a writer holding the
    # removed entry's version 2 cannot overwrite the new one
    lists.remove(store, "spring", [F0], "ann")
    lists.add(store, "spring", [F0], "ann")
    assert lists.entry(store, "spring", F0).version == 3
    with pytest.raises(Conflict):
        lists.set_entry(store, "spring", F0, "bob", status="declined", expected_version=2)


def test_two_writers_with_one_version_exactly_one_wins(corpus_store: Settings, store: Store) -> None:
    lists.create_list(store, "spring", BRAND, "ann")
    lists.add(store, "spring", [F0], "ann")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        with Store.open(corpus_store) as own:
            barrier.wait()
            try:
                lists.set_entry(own, "spring", F0, f"w{i}", note=f"note {i}", expected_version=1)
                outcomes.append(f"won w{i}")
            except Conflict as e:
                assert isinstance(e.current, lists.Entry) and e.current.version == 2
                outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("conflict") == 7
    e = lists.entry(store, "spring", F0)
    assert (e.version, e.updated_by, e.note) == (2, winners[0][4:], f"note {winners[0][5:]}")


def test_other_lists_of_the_same_brand(store: Store) -> None:
    lists.create_list(store, "spring", BRAND, "ann")
    lists.create_list(store, "autumn", BRAND, "ann")
    lists.create_list(store, "travel", OTHER_BRAND, "ann")
    lists.add(store, "spring", [F0, F1], "ann")
    lists.add(store, "autumn", [F0], "ann", status="declined")
    lists.add(store, "travel", [F0, F1], "ann")
    others = {e.influencer_id: e.other_lists for e in lists.entries(store, "spring")}
    assert others == {F0: (lists.OtherList("autumn", "declined"),), F1: ()}  # not the other brand's list
    assert lists.entry(store, "autumn", F0).other_lists == (lists.OtherList("spring", "prospect"),)


def test_errors_name_the_field(store: Store) -> None:
    with pytest.raises(NotFound, match="^unknown brand 'nobody'$"):
        lists.create_list(store, "x", "nobody", "ann")
    with pytest.raises(NotFound, match=f"^'{F0}' is an influencer, not a brand$"):
        lists.create_list(store, "x", F0, "ann")
    with pytest.raises(InvalidInput, match=r"^name must have no '/'"):
        lists.create_list(store, "a/b", BRAND, "ann")
    with pytest.raises(InvalidInput, match=r"^name must be 1 to 100 characters"):
        lists.create_list(store, " ", BRAND, "ann")
    for dots in (".", ".."):
        message = f"name must not be '.' or '..' (they are no name in a URL), got '{dots}'"
        with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
            lists.create_list(store, dots, BRAND, "ann")
    with pytest.raises(InvalidInput, match=r"^name must not begin or end with a space, got ' spring'$"):
        lists.create_list(store, " spring", BRAND, "ann")
    with pytest.raises(InvalidInput, match=r"^name must not begin or end with a space, got 'spring '$"):
        lists.create_list(store, "spring ", BRAND, "ann")
    lists.create_list(store, "spring", BRAND, "ann")
    with pytest.raises(Conflict, match="^name a list named 'spring' exists already$"):
        lists.create_list(store, "spring", OTHER_BRAND, "ann")
    with pytest.raises(NotFound, match="^unknown list 'autumn'$"):
        lists.add(store, "autumn", [F0], "ann")
    with pytest.raises(NotFound, match="^unknown influencers: 'ghost', 'ghost2'$"):
        lists.add(store, "spring", [F0, "ghost", "ghost2"], "ann")
    with pytest.raises(NotFound, match=f"^'{BRAND}' is a brand, not an influencer$"):
        lists.add(store, "spring", [BRAND], "ann")
    assert lists.entries(store, "spring") == []  # all or nothing
    expected = "^status must be one of prospect, contacted, agreed, declined, posted, got 'maybe'$"
    with pytest.raises(InvalidInput, match=expected):
        lists.add(store, "spring", [F0], "ann", status="maybe")
    lists.add(store, "spring", [F0], "ann")
    with pytest.raises(InvalidInput, match=expected):
        lists.set_entry(store, "spring", F0, "ann", status="maybe")
    with pytest.raises(InvalidInput, match="^status give a new status or a new note$"):
        lists.set_entry(store, "spring", F0, "ann")
    with pytest.raises(NotFound, match=f"^'{F1}' is not in list 'spring'$"):
        lists.set_entry(store, "spring", F1, "ann", status="agreed")
    with pytest.raises(NotFound, match=f"^not in list 'spring': '{F1}'$"):
        lists.remove(store, "spring", [F0, F1], "ann")
    assert [e.influencer_id for e in lists.entries(store, "spring")] == [F0]  # all or nothing
    with pytest.raises(InvalidInput, match="^exclude_status must be one of"):
        lists.check_statuses(["contacted", "nope"])


def test_cli_round_trip_and_json(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "list", "create", "spring", "--brand", BRAND)[0] == 0
    assert run(capsys, "list", "create", "autumn", "--brand", BRAND)[0] == 0
    code, out, _ = run(capsys, "list", "add", "spring", F0, F1, "--status", "contacted", "--note", "hi", "--json")
    assert (code, json.loads(out)) == (0, {"added": [F0, F1], "already": []})
    run(capsys, "list", "add", "autumn", F1, "--by", "carol")
    code, out, _ = run(capsys, "list", "set", "spring", F1, "--status", "agreed", "--expect-version", "1", "--json")
    assert code == 0 and json.loads(out)["version"] == 2
    code, out, err = run(capsys, "list", "set", "spring", F1, "--status", "declined", "--expect-version", "1")
    assert (code, err) == (1, "error: --expect-version is 2, not 1: the entry changed since it was read\n")
    code, out, _ = run(capsys, "list", "show", "spring", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["count"] == 2 and doc["list"]["brand_id"] == BRAND
    by_id = {d["influencer_id"]: d for d in doc["data"]}
    assert (by_id[F0]["status"], by_id[F0]["note"], by_id[F0]["gone"], by_id[F0]["other_lists"]) == (
        "contacted",
        "hi",
        False,
        [],
    )
    assert by_id[F1]["status"] == "agreed" and by_id[F1]["other_lists"] == [{"list": "autumn", "status": "prospect"}]
    code, out, _ = run(capsys, "list", "show", "spring", "--history")
    assert code == 0 and "agreed" in out and f"add {F0}" in out and "autumn:prospect" in out
    doc = json.loads(run(capsys, "list", "all", "--brand", BRAND, "--json")[1])
    assert [(x["name"], x["entries"]) for x in doc["data"]] == [("autumn", 1), ("spring", 2)] and doc["count"] == 2
    assert json.loads(run(capsys, "list", "all", "--brand", "brand_wanderly", "--json")[1])["count"] == 0
    code, out, _ = run(capsys, "list", "all")
    assert code == 0 and out.startswith(f"autumn  brand {BRAND}  1 entry  created ")
    assert run(capsys, "list", "remove", "spring", F0)[0] == 0
    assert [d["influencer_id"] for d in json.loads(run(capsys, "list", "show", "spring", "--json")[1])["data"]] == [F1]
    assert run(capsys, "list", "delete", "spring")[0] == 0
    assert run(capsys, "list", "show", "spring") == (1, "", "error: unknown list 'spring'\n")


def test_cli_errors(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "list", "create", "x", "--brand", "nobody") == (1, "", "error: unknown brand 'nobody'\n")
    run(capsys, "list", "create", "x", "--brand", BRAND)
    assert run(capsys, "list", "add", "x", "ghost")[2] == "error: unknown influencer: 'ghost'\n"
    assert run(capsys, "list", "add", "y", F0)[2] == "error: unknown list 'y'\n"
    code, _, err = run(capsys, "list", "add", "x", F0, "--status", "maybe")
    assert (code, err) == (1, f"error: --status must be one of {', '.join(lists.STATUSES)}, got 'maybe'\n")
    assert run(capsys, "list", "create", "a/b", "--brand", BRAND)[2].startswith("error: NAME must have no '/'")
    code, _, err = run(capsys, "list", "export", "x", "--out", "x.txt")
    assert (code, err) == (1, "error: --out must end in .csv or .parquet, got 'x.txt'\n")


def test_export_carries_account_metrics_list_fields_and_collaborations(
    cli_env: Settings, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lists.create_list(store, "spring", BRAND, "ann")
    lists.create_list(store, "autumn", BRAND, "ann")
    lists.add(store, "spring", [F0, T0], "ann", status="contacted", note='said "maybe", later')
    lists.add(store, "autumn", [T0], "ann")
    code, out, _ = run(capsys, "list", "export", "spring", "--out", str(tmp_path / "s.csv"))
    assert (code, out) == (0, f"wrote 2 rows to {tmp_path / 's.csv'}\n")
    assert run(capsys, "list", "export", "spring", "--out", str(tmp_path / "s.parquet"))[0] == 0
    rows = list(csv.DictReader((tmp_path / "s.csv").open(encoding="utf-8")))
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    metrics = metrics_store.read(store, [F0, T0])
    assert [r["influencer_id"] for r in rows] == [r["influencer_id"] for r in table] == [F0, T0]
    for r, p in zip(rows, table, strict=True):
        i = p["influencer_id"]
        acc, m = store.account(i), metrics[i]
        assert (p["list"], p["brand_id"], p["handle"], p["category"], p["followers"]) == (
            "spring",
            BRAND,
            acc.handle,
            acc.category,
            acc.followers,
        )
        assert p["engagement_rate"] == pytest.approx(m.engagement_rate) and p["posts_per_week"] == pytest.approx(
            m.posts_per_week
        )
        assert p["authenticity_flags"] == ";".join(sorted({f.signal for f in m.flags}))
        collabs = account_collaborations(store, i)
        assert p["collaborations"] == collabs.handles
        edges = sorted(collabs.worked_with, key=lambda e: (e.handle, e.kind))
        day = lambda e: e.last_at.date().isoformat() if e.last_at else ""  # noqa: E731
        assert p["worked_with"] == ";".join(f"{e.handle}:{e.kind}:{e.posts}:{day(e)}" for e in edges)
        assert (p["status"], p["note"], p["version"], p["gone"]) == ("contacted", 'said "maybe", later', 1, False)
        assert r["note"] == p["note"] and r["status"] == "contacted" and r["collaborations"] == str(p["collaborations"])
    assert [p["other_lists"] for p in table] == ["", "autumn:prospect"]


def test_deleting_an_account_marks_its_entries_and_a_reingest_brings_them_back(
    cli_env: Settings, store: Store, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lists.create_list(store, "spring", BRAND, "ann")
    lists.add(store, "spring", [F2, T0], "ann", status="agreed")
    assert run(capsys, "delete", F2)[0] == 0
    doc = json.loads(run(capsys, "list", "show", "spring", "--json")[1])
    gone = {d["influencer_id"]: (d["gone"], d["status"], d["handle"]) for d in doc["data"]}
    assert gone == {F2: (True, "agreed", None), T0: (False, "agreed", store.account(T0).handle)}
    assert [c.action for c in list_views.history(store, "spring", F2)] == ["add", "gone"]
    assert run(capsys, "list", "export", "spring", "--out", str(tmp_path / "g.csv"))[0] == 0
    rows = {r["influencer_id"]: r for r in csv.DictReader((tmp_path / "g.csv").open(encoding="utf-8"))}
    assert (rows[F2]["gone"], rows[F2]["handle"], rows[T0]["gone"]) == ("true", "", "false")
    ingest(small_corpus, cli_env)  # the account comes back under its id
    e = lists.entry(store, "spring", F2)
    assert (e.gone, e.status, e.version) == (False, "agreed", 1)
    assert [c.action for c in list_views.history(store, "spring", F2)] == ["add", "gone", "back"]


def test_a_list_deleted_while_entries_are_added_is_not_found(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = lists.create_list(store, "spring", BRAND, "ann")
    lists.delete_list(store, "spring")  # by someone else, after this writer read the list
    monkeypatch.setattr(lists, "get_list", lambda *_: stale)
    with pytest.raises(NotFound, match="^unknown list 'spring'$"):
        lists.add(store, "spring", [F0], "ann")
