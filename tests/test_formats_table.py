"""`ingest --format table`: CSV and Parquet tables of posts and accounts, columns mapped with
--map, every row held to the JSONL rules, a bad row an error with its row number and column."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from congruence.core.settings import Settings
from congruence.indexer.formats.common import Named, SourceOptions
from congruence.indexer.formats.tables import ColumnMap, read_tables
from congruence.store.records import Store
from congruence.store.rows import Match

from .conftest import run

MAP = (
    "posts.id=shortcode",
    "account_id=username",
    "likes=like_count",
    "comments=comment_count",
    "ts=taken_at",
    "sponsored=is_paid",
    "tagged=tagged_users",
    "image=file",
    "accounts.id=username",
    "followers=followers_count",
)
POSTS_CSV = """shortcode,username,like_count,comment_count,taken_at,is_paid,tagged_users,caption,file,location
p1,anna,120,4,2024-05-01T10:00:00Z,false,@nike,"morning run, 10k",img/p1.jpg,Berlin
p2,anna,90,3,2024-05-03T10:00:00Z,yes,nike;adidas,"new shoes",img/p2.jpg,
p3,anna,many,3,2024-05-04T10:00:00Z,no,,"a caption",,
p4,bob,10,1,2024-05-04T10:00:00Z,no,,"who is bob",,
p5,anna,30,2,not a date,no,,"a caption",,
p6,anna,40,,2024-05-06T10:00:00Z,,,"comments hidden; sponsorship unknown",,
p1,anna,1,1,2024-05-07T10:00:00Z,no,,"again",,
p7,anna,5,-2,2024-05-07T10:00:00Z,maybe,,"x",,
"""
ACCOUNTS_CSV = """username,followers_count,category
anna,12000,Fitness
nike,900000,
anna,1,x
"""


def tables(root: Path) -> tuple[Path, Path]:
    (root / "img").mkdir(parents=True)
    for name, color in (("p1", (200, 0, 0)), ("p2", (0, 200, 0))):
        Image.new("RGB", (24, 24), color).save(root / "img" / f"{name}.jpg")
    (root / "posts.csv").write_text(POSTS_CSV)
    (root / "accounts.csv").write_text(ACCOUNTS_CSV)
    return root / "posts.csv", root / "accounts.csv"


def test_csv_rows_mapped_checked_and_errors_name_row_and_column(tmp_path: Path) -> None:
    posts, accounts = tables(tmp_path)
    c = read_tables(
        posts,
        accounts,
        cmap=ColumnMap.parse(MAP),
        options=SourceOptions(brands=(Named("nike"),), matches_from_tags=True),
    )
    assert [str(e) for e in c.errors] == [
        "accounts.csv:4: duplicate account 'anna' (first in accounts.csv:2)",
        "posts.csv:4: column 'like_count' (likes) must be a whole number, got 'many'",
        "posts.csv:5: post 'p4' of an unknown account 'bob' (not in the accounts read, nor in the store)",
        "posts.csv:6: column 'taken_at' (ts) is not a timestamp (ISO 8601 or epoch seconds): 'not a date'",
        "posts.csv:8: duplicate post id 'p1' (first in posts.csv:2)",
        "posts.csv:9: column 'is_paid' (sponsored) must be true or false, got 'maybe'",
    ]
    assert [(a.id, a.kind, a.category, a.followers) for a in c.accounts] == [
        ("anna", "influencer", "fitness", 12_000),
        ("nike", "brand", "", 900_000),
    ]
    rows = {p.id: p for p in c.posts}
    assert sorted(rows) == ["p1", "p2", "p6"]
    p1, p2, p6 = rows["p1"], rows["p2"], rows["p6"]
    assert (p1.likes, p1.comments, p1.sponsored, p1.tagged, p1.line, p1.source) == (
        120,
        4,
        False,
        ("nike",),
        2,
        "posts.csv",
    )
    assert p1.ts == datetime(2024, 5, 1, 10, tzinfo=UTC) and p1.image == (tmp_path / "img/p1.jpg").resolve()
    assert p1.extra == {"location": "Berlin"} and p1.caption == "morning run, 10k"
    assert p2.sponsored and p2.tagged == ("nike", "adidas")
    assert p6.comments is None and p6.extra["sponsored_unknown"] is True  # empty cells are unknown
    assert c.matches == [Match("nike", "anna")]


def test_parquet_typed_columns_and_rows_numbered_from_one(tmp_path: Path) -> None:
    posts, accounts = tables(tmp_path)
    pq.write_table(
        pa.table(
            {
                "shortcode": ["q1", "q2", "q3"],
                "username": ["anna", "anna", "anna"],
                "like_count": pa.array([10, None, 12], pa.int64()),
                "comment_count": [1.0, float("nan"), 2.5],
                "taken_at": pa.array([datetime(2024, 1, 1), datetime(2024, 1, 8), None], pa.timestamp("s")),
                "is_paid": [True, None, False],
                "tagged_users": [["nike"], [], None],
                "caption": ["one", "two", "three"],
            }
        ),
        tmp_path / "posts.parquet",
    )
    pq.write_table(
        pa.table({"username": ["anna"], "followers_count": [5000], "category": ["food"]}), tmp_path / "accounts.parquet"
    )
    no_image = [m for m in MAP if m != "image=file"]  # a mapped column must be there
    c = read_tables(tmp_path / "posts.parquet", tmp_path / "accounts.parquet", cmap=ColumnMap.parse(no_image))
    assert [str(e) for e in c.errors] == [
        "posts.parquet:3: column 'comment_count' (comments) must be a whole number, got 2.5"
    ]
    q1, q2 = c.posts
    assert (q1.likes, q1.comments, q1.sponsored, q1.tagged, q1.line) == (10, 1, True, ("nike",), 1)
    assert q1.ts == datetime(2024, 1, 1, tzinfo=UTC)
    assert (q2.likes, q2.comments, q2.extra.get("sponsored_unknown"), q2.line) == (None, None, True, 2)


def test_hidden_follower_counts_and_absent_sponsorship_are_unknown_not_errors(tmp_path: Path) -> None:
    """A scraper's -1 followers keeps the account and its posts (followers unknown, the figure
    kept); a table without a sponsorship column says nothing about sponsorship."""
    (tmp_path / "posts.csv").write_text("id,account_id,likes,comments,caption\nq1,anna,10,1,hello\n")
    (tmp_path / "accounts.csv").write_text("id,followers\nanna,-1\n")
    c = read_tables(tmp_path / "posts.csv", tmp_path / "accounts.csv")
    assert c.errors == []
    (anna,), (q1,) = c.accounts, c.posts
    assert anna.followers is None and anna.extra["followers_reported"] == -1
    assert q1.sponsored is False and q1.extra["sponsored_unknown"] is True


def test_missing_columns_and_bad_maps_are_refused_before_any_row(tmp_path: Path) -> None:
    posts, accounts = tables(tmp_path)
    with pytest.raises(ValueError, match=r"^posts.csv has no column 'id', 'account_id'; its columns: shortcode"):
        read_tables(posts, accounts)
    with pytest.raises(ValueError, match=r"^posts.csv has no column 'likes_n' \(for likes\)"):
        read_tables(posts, accounts, cmap=ColumnMap.parse([*MAP, "likes=likes_n"]))
    with pytest.raises(ValueError, match=r"^--map: unknown field 'like'"):
        ColumnMap.parse(["like=like_count"])
    with pytest.raises(ValueError, match=r"^--map: both tables have 'id': write posts.id=x or accounts.id=x"):
        ColumnMap.parse(["id=x"])
    with pytest.raises(ValueError, match=r"^posts.txt: expected a .csv or .parquet file"):
        (tmp_path / "posts.txt").write_text("id\n")
        read_tables(tmp_path / "posts.txt")


def test_cli_ingest_tables_with_metrics_and_per_row_errors(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    posts, accounts = tables(tmp_path)
    args = (
        "ingest",
        "--format",
        "table",
        str(posts),
        "--accounts",
        str(accounts),
        "--brands",
        "nike",
        "--map",
        *MAP,
        "--matches-from-tags",
        "--json",
    )
    code, out, err = run(capsys, *args)
    body = json.loads(out)
    assert code == 2, err
    assert (body["accounts_new"], body["posts_new"], body["matches_new"]) == (2, 3, 1)
    assert {(r["file"], r["line"]) for r in body["rejected"]} == {
        ("accounts.csv", 4),
        ("posts.csv", 4),
        ("posts.csv", 5),
        ("posts.csv", 6),
        ("posts.csv", 8),
        ("posts.csv", 9),
    }
    assert body["metrics"]["accounts"] == 2 and body["metrics"]["with_er"] == 1  # nike: no posts
    with Store.open(env) as store:
        er = dict(store.conn.execute("SELECT account_id, engagement_rate FROM account_metrics").fetchall())
        extra = store.conn.execute("SELECT extra FROM posts WHERE id = 'p1'").fetchone()
    # anna's posts with likes and comments known: p1 (124) and p2 (93): the median is 108.5 / 12,000
    assert er["anna"] == pytest.approx(108.5 / 12_000) and extra[0]["location"] == "Berlin"
    code, out, _ = run(capsys, *args)
    assert code == 2 and json.loads(out)["posts_new"] == 0  # incremental: nothing new, nothing lost
    code, _, err = run(capsys, "ingest", "--format", "table", str(posts), "--map", "nope=x")
    assert code == 1 and "--map: unknown field 'nope'" in err
