"""The collaboration graph (migration 007, store/collaborations.py): edges from every input
format, their counts and dates exact, handles normalised, invalid ones never matched loosely,
and the graph exact under incremental ingest, re-ingest of edited posts and delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from congruence.core.settings import Settings
from congruence.indexer.corpus import Corpus, Post, read_corpus
from congruence.indexer.corpus_write import write_corpus
from congruence.indexer.formats.instaloader import read_instaloader
from congruence.indexer.formats.tables import read_tables
from congruence.indexer.ingest import ingest
from congruence.indexer.maintenance import delete_accounts
from congruence.indexer.prepare import prepare_posts
from congruence.store import collaborations as graph
from congruence.store import database
from congruence.store.records import Store
from congruence.store.rows import Account, Collaboration, Match

from .instaloader_files import media_item, post_node, profile_node, save_logged_in_post, save_post, save_profile

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ALL = ("tag", "sponsor", "mention", "match")
Edge = tuple[int, int, datetime | None, datetime | None, str | None]


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def post(
    pid: str,
    account: str,
    n: int | None,
    tagged: tuple[str, ...] = (),
    sponsored: bool = False,
    caption: str = "a post",
    sponsors: tuple[str, ...] = (),
) -> Post:
    extra = {"sponsors": list(sponsors)} if sponsors else {}
    ts = day(n) if n is not None else None
    return Post(pid, account, None, caption, ts=ts, sponsored=sponsored, tagged=tagged, extra=extra)


ACCOUNTS = [
    Account("anna", "influencer", "Anna", "fitness", 1000),
    Account("ben", "influencer", "ben", "fitness", 2000),
    Account("nike", "brand", "nike", "sport", None),
    Account("b_adidas", "brand", "adidas", "sport", None),
    Account("Brand-7", "brand", "Brand-7", "sport", None),  # an id that is no Instagram username
    Account("twin_a", "brand", "twin", "", None),  # two accounts with one handle
    Account("twin_b", "brand", "twin", "", None),
]
POSTS = [
    post("a1", "anna", 0, ("@Nike", "adidas"), True, "run with @nike. write to me@mail.com"),
    post("a2", "anna", 31, ("nike",)),
    post("a3", "anna", 60, ("NIKE ", "unknownshop", "nike"), True, "thanks @Puma and @Anna"),
    post("a4", "anna", None, ("Nike Official", "Brand-7", "brand-7", "twin", "@Nike!")),
    post("b1", "ben", 14, ("anna", "twin"), True, sponsors=("Nike",)),
]
MATCHES = [Match("nike", "ben")]

# anna's and ben's edges as POSTS and MATCHES give them: (posts, sponsored, first, last, account)
ANNA: dict[tuple[str, str], Edge] = {
    ("tag", "nike"): (3, 2, day(0), day(60), "nike"),  # '@Nike', 'nike', 'NIKE ' (twice in a3: one post)
    ("tag", "adidas"): (1, 1, day(0), day(0), "b_adidas"),  # b_adidas's handle
    ("tag", "unknownshop"): (1, 1, day(60), day(60), None),  # no account: an edge all the same
    ("tag", "Nike Official"): (1, 0, None, None, None),  # not usernames: as they are, never matched loosely
    ("tag", "Nike!"): (1, 0, None, None, None),
    ("tag", "brand-7"): (1, 0, None, None, None),
    ("tag", "Brand-7"): (1, 0, None, None, "Brand-7"),  # exactly an account's id
    ("tag", "twin"): (1, 0, None, None, None),  # two accounts have that handle: neither
}
ANNA_MENTIONS: dict[tuple[str, str], Edge] = {
    ("mention", "nike"): (1, 1, day(0), day(0), "nike"),  # "@nike." ends a sentence; no e-mail; not '@Anna'
    ("mention", "puma"): (1, 1, day(60), day(60), None),
}
BEN: dict[tuple[str, str], Edge] = {
    ("tag", "anna"): (1, 1, day(14), day(14), "anna"),
    ("tag", "twin"): (1, 1, day(14), day(14), None),
    ("sponsor", "nike"): (1, 1, day(14), day(14), "nike"),
    ("match", "nike"): (0, 0, None, None, "nike"),  # a known match: an edge with no posts
}


def edges(
    store: Store, account_id: str, kinds: tuple[str, ...] = ("tag", "sponsor", "match")
) -> dict[tuple[str, str], Edge]:
    got = graph.edges_from(store, account_id, kinds)
    assert all(isinstance(e, Collaboration) and e.account_id == account_id for e in got)
    return {(e.kind, e.handle): (e.posts, e.sponsored_posts, e.first_at, e.last_at, e.target_id) for e in got}


def jsonl(
    root: Path, accounts: list[Account] = ACCOUNTS, posts: list[Post] = POSTS, matches: list[Match] = MATCHES
) -> Path:
    return write_corpus(Corpus(root, accounts, posts, matches))


def store_corpus(settings: Settings, corpus: Corpus) -> None:
    """What ingest stores of a corpus (its rows), without encoding anything."""
    assert corpus.errors == []
    with Store.open(settings) as store:
        store.upsert_accounts(corpus.accounts)
        posts, errors = prepare_posts(corpus.posts, corpus.root, set())
        assert errors == []
        store.upsert_posts(posts)
        store.upsert_matches(corpus.matches)


def test_jsonl_edges_counts_dates_handles_and_matches(settings: Settings, tmp_path: Path) -> None:
    report = ingest(jsonl(tmp_path / "c"), settings)
    assert report.rejected == [] and report.posts_new == 5
    with Store.open(settings) as store:
        assert edges(store, "anna") == ANNA
        assert edges(store, "anna", ALL) == ANNA | ANNA_MENTIONS  # caption mentions: only when asked
        assert edges(store, "ben") == BEN
        assert edges(store, "nike") == {}
        first = graph.edges_from(store, "anna")[0]  # most posts first
        assert (first.kind, first.handle) == ("tag", "nike")
        who = {(e.account_id, e.kind) for e in graph.edges_to(store, "@NIKE")}  # any case, a leading '@'
        assert who == {("anna", "tag"), ("ben", "sponsor"), ("ben", "match")}
        assert {(e.account_id, e.kind) for e in graph.edges_to(store, "nike", ALL)} == who | {("anna", "mention")}
        assert [(e.account_id, e.handle) for e in graph.edges_to(store, "b_adidas")] == [("anna", "adidas")]
        with pytest.raises(
            ValueError, match="unknown collaboration kind 'tags': expected tag, sponsor, mention, match"
        ):
            graph.edges_from(store, "anna", ("tags",))


def test_an_invalid_handle_is_kept_as_it_is_and_never_matched_loosely(settings: Settings, tmp_path: Path) -> None:
    accounts = [
        Account("ann", "influencer", "ann", "", None),
        Account("nike", "brand", "Nike", "", None),
        Account("shop", "brand", "Nike Store", "", None),  # a handle that is no username
    ]
    tags = (" @Nike ", "@Nike!", "nike store", "Nike Store", "nikestore", "n" * 31, "@@nike", "nike-")
    store_corpus(settings, Corpus(tmp_path, accounts, [post("p", "ann", 0, tags)], []))
    with Store.open(settings) as store:
        assert {h: e[4] for (_, h), e in edges(store, "ann").items()} == {
            "nike": "nike",  # spaces, one '@' and the case dropped: a username
            "Nike!": None,
            "nike store": None,  # no case rule for what is not a username
            "Nike Store": "shop",  # exactly its handle
            "nikestore": None,
            "n" * 31: None,  # longer than a username can be
            "@nike": None,
            "nike-": None,
        }


def test_an_account_naming_itself_is_no_edge_even_once_renamed(settings: Settings, tmp_path: Path) -> None:
    ann = Account("ann", "influencer", "Ann_K", "", None)
    p = post("p", "ann", 0, ("ann", "@ann_k", "annie"), caption="me again: @ANN_K with @annie")
    store_corpus(settings, Corpus(tmp_path, [ann], [p], []))
    with Store.open(settings) as store:
        assert set(edges(store, "ann", ALL)) == {("tag", "annie"), ("mention", "annie")}
        store.upsert_accounts([Account("ann", "influencer", "annie", "", None)])  # renamed: annie is ann now
        assert set(edges(store, "ann", ALL)) == {("tag", "ann_k"), ("mention", "ann_k")}


def test_instaloader_tags_sponsors_and_paid_partnerships(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "dl"
    t0 = 1_600_000_000
    save_profile(root, profile_node("anna", 1, 12_000, "Fitness"))
    save_profile(root, profile_node("nike", 2, 900_000))
    save_post(root, post_node("P1", "anna", 1, t0, tagged=("Nike",)))
    save_post(root, post_node("P2", "anna", 1, t0 + 86_400, sponsors=("nike",)))
    save_post(root, post_node("P3", "anna", 1, t0 + 2 * 86_400, tagged=("adidas",), sponsors=("nike",)))
    # a logged-in download: the tags in its iPhone record, a paid partnership naming no sponsor
    save_logged_in_post(root, media_item("I1", "anna", 1, t0 + 3 * 86_400, tagged=("Puma",), paid=True))
    store_corpus(settings, read_instaloader(root))
    at = [datetime.fromtimestamp(t0 + i * 86_400, UTC) for i in range(4)]
    with Store.open(settings) as store:
        assert edges(store, "anna") == {
            ("tag", "nike"): (1, 0, at[0], at[0], "nike"),
            ("sponsor", "nike"): (2, 2, at[1], at[2], "nike"),
            ("tag", "adidas"): (1, 1, at[2], at[2], None),
            ("tag", "puma"): (1, 1, at[3], at[3], None),
        }


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_columns(settings: Settings, tmp_path: Path, suffix: str) -> None:
    rows = [
        ("t1", "anna", "morning run", "2024-05-01T10:00:00Z", True, ["@Nike", "adidas"]),
        ("t2", "anna", "new shoes", "2024-05-03T10:00:00Z", False, ["NIKE"]),
        ("t3", "anna", "rest day", None, None, []),
    ]
    posts, accounts = tmp_path / f"posts{suffix}", tmp_path / f"accounts{suffix}"
    if suffix == ".csv":
        body = "".join(f"{i},{a},{c},{ts or ''},{'' if s is None else s},{';'.join(t)}\n" for i, a, c, ts, s, t in rows)
        posts.write_text("id,account_id,caption,ts,sponsored,tagged\n" + body)
        accounts.write_text("id,handle\nanna,anna\nnike,nike\n")
    else:
        cols = list(zip(*rows, strict=True))
        names = ["id", "account_id", "caption", "ts", "sponsored", "tagged"]
        ts = [datetime.fromisoformat(t) if t else None for t in cols[3]]
        data = [
            pa.array(cols[0]),
            pa.array(cols[1]),
            pa.array(cols[2]),
            pa.array(ts),
            pa.array(cols[4]),
            pa.array(cols[5]),
        ]
        pq.write_table(pa.table(data, names=names), posts)
        pq.write_table(pa.table({"id": ["anna", "nike"], "handle": ["anna", "nike"]}), accounts)
    store_corpus(settings, read_tables(posts, accounts))
    may1, may3 = datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 3, 10, tzinfo=UTC)
    with Store.open(settings) as store:
        assert edges(store, "anna") == {
            ("tag", "nike"): (2, 1, may1, may3, "nike"),
            ("tag", "adidas"): (1, 1, may1, may1, None),
        }


def test_incremental_ingest_adds_edges_and_resolves_new_and_renamed_accounts(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(jsonl(tmp_path / "c"), settings)
    more = [
        Account("puma_id", "brand", "Puma", "", None),  # anna's mention of @Puma now has an account
        Account("shop_1", "brand", "@UnknownShop", "", None),
        Account("b_adidas", "brand", "adidas_originals", "sport", None),  # renamed: 'adidas' is nobody now
    ]
    # ben's new post; anna's posts are not touched, her edges to the accounts above follow them
    report = ingest(jsonl(tmp_path / "more", more, [post("b2", "ben", 90, ("nike", "@twin"))], []), settings)
    assert (report.rejected, report.posts_new, report.accounts_new, report.accounts_updated) == ([], 1, 2, 1)
    anna = ANNA | {
        ("tag", "adidas"): (1, 1, day(0), day(0), None),
        ("tag", "unknownshop"): (1, 1, day(60), day(60), "shop_1"),
    }
    with Store.open(settings) as store:
        assert edges(store, "anna") == anna
        assert edges(store, "anna", ("mention",))[("mention", "puma")][4] == "puma_id"
        assert edges(store, "ben") == BEN | {
            ("tag", "nike"): (1, 0, day(90), day(90), "nike"),
            ("tag", "twin"): (2, 1, day(14), day(90), None),
        }


def test_reingest_of_edited_and_moved_posts_is_exact(settings: Settings, tmp_path: Path) -> None:
    root = jsonl(tmp_path / "c")
    ingest(root, settings)
    # a1 edited: '@Nike' and 'adidas' gone, 'puma' tagged
    edited = [post("a1", "anna", 0, ("puma",), True, "run with @nike. write to me@mail.com"), *POSTS[1:]]
    report = ingest(jsonl(root, ACCOUNTS, edited), settings)
    assert (report.rejected, report.posts_new, report.posts_updated) == ([], 0, 1)
    anna = {k: v for k, v in ANNA.items() if k != ("tag", "adidas")}
    anna |= {("tag", "nike"): (2, 1, day(31), day(60), "nike"), ("tag", "puma"): (1, 1, day(0), day(0), None)}
    with Store.open(settings) as store:
        assert edges(store, "anna") == anna
        assert edges(store, "ben") == BEN
    # a2 now ben's: it leaves anna's edges, alone of her posts changed
    moved = [edited[0], post("a2", "ben", 31, ("nike",)), *POSTS[2:]]
    report = ingest(jsonl(root, ACCOUNTS, moved), settings)
    assert (report.rejected, report.posts_new, report.posts_updated) == ([], 0, 1)
    with Store.open(settings) as store:
        assert edges(store, "anna") == anna | {("tag", "nike"): (1, 1, day(60), day(60), "nike")}
        assert edges(store, "ben") == BEN | {("tag", "nike"): (1, 0, day(31), day(31), "nike")}
    again = ingest(jsonl(root, ACCOUNTS, moved), settings)  # nothing changed: nothing rewritten
    assert again.posts_updated == 0


def test_delete_removes_the_accounts_edges_and_unresolves_edges_to_them(settings: Settings, tmp_path: Path) -> None:
    ingest(jsonl(tmp_path / "c"), settings)
    assert sorted(delete_accounts(settings, ["anna", "nike", "twin_a", "nobody"])) == ["anna", "nike", "twin_a"]
    with Store.open(settings) as store:
        assert edges(store, "anna", ALL) == {}
        assert store.conn.execute("SELECT count(*) FROM collaborations WHERE account_id = 'anna'").fetchone() == (0,)
        # ben's posts still name anna and nike: the edges stay, with no account; the match is gone
        # with nike; 'twin' is twin_b's alone now
        assert edges(store, "ben") == {
            ("tag", "anna"): (1, 1, day(14), day(14), None),
            ("tag", "twin"): (1, 1, day(14), day(14), "twin_b"),
            ("sponsor", "nike"): (1, 1, day(14), day(14), None),
        }


def test_posts_dropped_for_a_broken_image_leave_the_graph(settings: Settings, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (24, 24), (200, 0, 0)).save(tmp_path / "p.jpg")
    photo = Post("p", "ann", tmp_path / "p.jpg", "", ts=day(0), tagged=("nike",))
    accounts = [Account("ann", "influencer", "ann", "", None)]
    store_corpus(settings, Corpus(tmp_path, accounts, [photo, post("q", "ann", 1, ("nike",))], []))
    with Store.open(settings) as store:
        assert edges(store, "ann") == {("tag", "nike"): (2, 0, day(0), day(1), None)}
        (image_hash,) = store.conn.execute("SELECT image_hash FROM posts WHERE id = 'p'").fetchone()
        assert store.delete_posts_with_image(image_hash) == ["p"]
        assert edges(store, "ann") == {("tag", "nike"): (1, 0, day(1), day(1), None)}


def test_the_migration_builds_the_graph_of_a_store_made_before_it(settings: Settings, tmp_path: Path) -> None:
    store_corpus(settings, read_corpus(jsonl(tmp_path / "c")))
    query = "SELECT * FROM collaborations ORDER BY account_id, kind, handle"
    with Store.open(settings) as store:
        built = store.conn.execute(query).fetchall()
        assert len(built) == len(ANNA) + len(ANNA_MENTIONS) + len(BEN) - 1  # the match is read from `matches`
    with database.connect(str(settings.database_url), autocommit=True) as conn:
        try:
            with conn.transaction():
                conn.execute("DROP VIEW collaboration_edges, collab_targets, collab_counts")
                conn.execute("DROP TABLE collaborations")
                conn.execute("DROP INDEX accounts_collab_handle_idx")
                conn.execute("DROP FUNCTION collab_names, collab_handle")
                conn.execute("DROP INDEX matches_influencer_idx")
                conn.execute("DELETE FROM schema_migrations WHERE version = 7")
        finally:
            assert database.migrate(conn) == ["007_collaborations.sql"]
        assert conn.execute(query).fetchall() == built
