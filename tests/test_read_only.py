"""The serving engine only reads: it answers through a PostgreSQL role that cannot write,
never touches the index folder, picks up what writers publish, keeps answering with the
generation before when a newer one cannot be loaded, and reads through a pool, so that no
query waits for another's connection and no read runs on the event loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from congruence.core.settings import Settings
from congruence.indexer.maintenance import delete_accounts
from congruence.indexer.publish import NotPublished, read_publication
from congruence.search.engine import Engine
from congruence.store import database
from congruence.store.records import Store
from congruence.training.deploy import ACTIVE_KEY, active_spaces, head_space, publish_current

from .server import corpus_with_head, serving

READER = "congruence_reader"
BRAND = "brand_peakfit"


@pytest.fixture(scope="module")
def store(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A store with a head in service, published by its writers (ingest, train)."""
    return corpus_with_head(pg_url, tmp_path_factory.mktemp("read-only") / "home", small_corpus)


def reader_url(url: str) -> str:
    """``url`` as a role that may only SELECT, in read-only transactions."""
    with database.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD 'reader'")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
        conn.execute(f"ALTER ROLE {READER} SET default_transaction_read_only = on")
    return make_conninfo(**{**conninfo_to_dict(url), "user": READER, "password": "reader"})


def listing(root: Path) -> dict[str, float]:
    """Every file under the index folder with its modification time."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def match(url: str, **body: object) -> list[str]:
    r = httpx.post(f"{url}/v1/match", json={"brand_id": BRAND, "k": 10, **body}, timeout=60)
    assert r.status_code == 200, r.text
    return [h["influencer_id"] for h in r.json()["data"]]


def test_the_role_really_cannot_write(store: Settings) -> None:
    """The premise of the next test: the reader role is refused any write."""
    with (
        psycopg.connect(reader_url(str(store.database_url)), autocommit=True) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("UPDATE store_meta SET value = value WHERE key = 'generation'")


def test_a_read_only_server_answers_everything_and_follows_the_writers(store: Settings) -> None:
    reader = replace(store, database_url=reader_url(str(store.database_url)))
    before = listing(store.index_dir)
    with serving(reader, auth=False, read_only=True) as url, httpx.Client(base_url=url, timeout=60) as c:
        ready = c.get("/readyz").json()
        assert ready["ready"] and ready["head"] is not None, ready
        first = match(url, posts=2)
        assert len(first) == 10
        named = c.post("/v1/match", json={"brand_id": BRAND, "k": 3}).json()  # every answer names its sources
        assert (named["generation"], named["head"]) == (ready["generation"], ready["head"])
        liked, disliked = first[3], first[0]
        moved = match(url, like=[liked], dislike=[disliked])
        assert disliked not in moved and liked not in moved
        assert match(url, micro=True)
        r = c.get(f"/v1/influencers/{first[1]}/similar", params={"k": 5, "posts": 1})
        assert r.status_code == 200 and len(r.json()["data"]) == 5, r.text
        r = c.post("/v1/similar", json={"influencers": first[1:3], "k": 5})
        assert r.status_code == 200, r.text
        r = c.post("/v1/match", files=[("text", (None, "running shoes and trail races")), ("k", (None, "5"))])
        assert r.status_code == 200 and len(r.json()["data"]) == 5, r.text
        for path in (f"/v1/accounts/{first[0]}", f"/v1/accounts/{first[0]}/metrics", "/v1/categories", "/v1/accounts"):
            assert c.get(path).status_code == 200, path
        assert listing(store.index_dir) == before  # the reader wrote no index file

        # a writer deletes the top influencer and publishes: the next answer is without it
        gone = first[0]
        assert delete_accounts(store, [gone], active_spaces(store)) == [gone]
        after = match(url)
        assert gone not in after and after[:9] == first[1:10]
        assert c.get("/readyz").json()["generation"] > ready["generation"]
        published = listing(store.index_dir)
        assert published != before  # the writer's new generation ...
        match(url, posts=1)
    assert listing(store.index_dir) == published  # ... and nothing of the reader's


def test_a_generation_that_cannot_be_loaded_leaves_the_one_before_answering(store: Settings) -> None:
    with serving(store, auth=False, read_only=True) as url, httpx.Client(base_url=url, timeout=60) as c:
        served = match(url)
        generation = c.get("/readyz").json()["generation"]
        victim = served[-1]
        assert delete_accounts(store, [victim], active_spaces(store)) == [victim]
        with Store.open(store) as s:
            _, pub = read_publication(s)
        assert pub is not None
        folder = pub.indexes[head_space(_active(store))].path(store.index_dir)
        data = bytearray((folder / "index.faiss").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / "index.faiss").write_bytes(bytes(data))

        assert match(url) == served  # the generation before, whole: the victim is still there
        ready = c.get("/readyz").json()
        assert ready["ready"] and ready["generation"] == generation
        assert "checksum" in ready["load_error"] and str(pub.generation) in ready["load_error"]

        publish_current(store, verify=True)  # a writer repairs it: rebuilt and published again
        assert victim not in match(url)
        ready = c.get("/readyz").json()
        assert ready["load_error"] is None and ready["generation"] > pub.generation


def _active(settings: Settings) -> str:
    with Store.open(settings) as s:
        return s.meta()[ACTIVE_KEY]


@pytest.fixture
def engine(store: Settings) -> Iterator[Engine]:
    with Engine(store) as e:
        yield e


def test_a_query_never_waits_for_another_connection(engine: Engine) -> None:
    """A connection held elsewhere (a slow read, an export) does not stop a query: each read
    borrows its own from the pool."""
    answer: list[object] = []
    with engine.reading() as held:
        held.conn.execute("SELECT 1")
        t = threading.Thread(target=lambda: answer.append(engine.match_brand(BRAND, k=5, posts=1)))
        t.start()
        t.join(timeout=60)
        assert not t.is_alive(), "the query waited for the connection held by this thread"
    assert len(answer) == 1 and len(answer[0]) == 5  # type: ignore[arg-type]


def test_decoration_runs_off_the_event_loop(store: Settings) -> None:
    """A match whose hit decoration waits on PostgreSQL (a table locked by another session)
    does not stop the server from answering other requests meanwhile."""
    with serving(store, auth=False, read_only=True) as url, httpx.Client(base_url=url, timeout=60) as c:
        match(url)  # loaded and warm
        with database.connect(str(store.database_url)) as locker:
            locker.execute("LOCK TABLE account_metrics IN ACCESS EXCLUSIVE MODE")
            result: list[int] = []
            t = threading.Thread(
                target=lambda: result.append(
                    httpx.post(f"{url}/v1/match", json={"brand_id": BRAND, "k": 5}, timeout=60).status_code
                )
            )
            t.start()
            _wait_for_lock_waiter(locker)  # the match is blocked in its decoration now
            assert c.get("/healthz", timeout=10).status_code == 200
            assert c.get("/v1/categories", timeout=10).status_code == 200
            assert not result  # still waiting on the lock
            locker.rollback()
        t.join(timeout=60)
        assert result == [200]


def _wait_for_lock_waiter(conn: psycopg.Connection) -> None:
    with database.connect(conn.info.dsn, autocommit=True) as watcher:
        for _ in range(600):
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                ("%account_metrics%",),
            ).fetchone()
            if row and row[0]:
                return
            watcher.execute("SELECT pg_sleep(0.05)")
    raise AssertionError("no query waited on the locked table")


def test_writers_publish_the_head_with_its_index(store: Settings) -> None:
    with Store.open(store) as s:
        generation, pub = read_publication(s)
        active = s.meta()[ACTIVE_KEY]
    assert pub is not None and pub.generation <= generation
    entry = pub.indexes[head_space(active)]
    assert entry.path(store.index_dir).is_dir() and entry.post_dim > 0
    assert pub.indexes["pooled"].path(store.index_dir).is_dir()
    again = publish_current(store)  # nothing changed: nothing new published
    assert again == pub


@pytest.fixture
def never_published(settings: Settings) -> Settings:
    with Store.open(settings):  # the schema, and nothing else
        pass
    return settings


def test_nothing_published_is_said_not_repaired(never_published: Settings) -> None:
    with pytest.raises(NotPublished, match="nothing is published"):
        Engine(never_published)
    with serving(never_published, auth=False, read_only=True) as url:
        r = httpx.get(url + "/readyz", timeout=60)
        assert r.status_code == 503 and "nothing is published" in r.json()["database"]
    with Store.open(never_published) as s:
        assert read_publication(s)[1] is None  # the read-only server published nothing
