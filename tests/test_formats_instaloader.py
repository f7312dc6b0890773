"""`ingest --format instaloader`: real Instaloader files (written by Instaloader's own
save_structure_to_file from node data, with small JPEGs), read with its load_structure_from_file
offline; carousels, videos, profiles, brands, matches from tags; partial nodes never reach the
network; unreadable files are row errors; the CLI ingest is incremental and loses nothing."""

from __future__ import annotations

import json
import lzma
import socket
from pathlib import Path

import instaloader
import pytest
from instaloader.nodeiterator import FrozenNodeIterator

from congruence.core.settings import Settings
from congruence.indexer.formats import instaloader as reader
from congruence.indexer.formats.common import Named, SourceOptions
from congruence.indexer.formats.instaloader import read_instaloader
from congruence.store.records import Store
from congruence.store.rows import Match

from .conftest import run
from .instaloader_files import (
    CTX,
    base_name,
    media_item,
    post_node,
    profile_node,
    save_logged_in_post,
    save_logged_out_post,
    save_post,
    save_profile,
)

T0 = 1_600_000_000
DAY = 86_400


def downloads(root: Path) -> Path:
    """anna (fitness, 12,000 followers) with a picture tagging nike, a carousel (picture, video,
    picture), a video sponsored by nike with its thumbnail, a video without one; nike's profile."""
    save_profile(root, profile_node("anna", 1, 12_000, "Fitness"))
    save_profile(root, profile_node("nike", 2, 900_000))
    save_post(root, post_node("P1", "anna", 1, T0, likes=120, comments=4, tagged=("nike",)))
    save_post(
        root,
        post_node("P2", "anna", 1, T0 + DAY, likes=90, typename="GraphSidecar", slides=(False, True, False)),
        color=(30, 160, 60),
    )
    save_post(
        root,
        post_node("P3", "anna", 1, T0 + 2 * DAY, likes=300, typename="GraphVideo", sponsors=("nike",)),
        color=(40, 40, 200),
    )
    save_post(
        root,
        post_node("P4", "anna", 1, T0 + 3 * DAY, caption="a reel about running", typename="GraphVideo"),
        image=False,
    )
    save_post(root, post_node("N1", "nike", 2, T0, likes=5000, caption="new shoe"), color=(220, 220, 20))
    return root


def test_profiles_posts_carousels_and_videos(tmp_path: Path) -> None:
    root = downloads(tmp_path / "dl")
    c = read_instaloader(root, options=SourceOptions(brands=(Named("nike"),), matches_from_tags=True))
    assert c.errors == []
    assert [(a.id, a.kind, a.handle, a.category, a.followers) for a in c.accounts] == [
        ("anna", "influencer", "anna", "fitness", 12_000),
        ("nike", "brand", "nike", "", 900_000),
    ]
    assert c.accounts[0].extra["instagram_id"] == 1 and c.accounts[0].extra["full_name"] == "Anna"
    base = {i: f"anna/{base_name(T0 + i * DAY)}" for i in range(4)}
    rows = {p.id: p for p in c.posts}
    assert sorted(rows) == ["N1", "P1", "P2", "P2_2", "P2_3", "P3", "P4"]
    assert rows["P1"].image == root.resolve() / f"{base[0]}.jpg" and rows["P1"].tagged == ("nike",)
    assert (rows["P1"].likes, rows["P1"].comments, rows["P1"].ts.timestamp()) == (120, 4, T0)  # type: ignore[union-attr]
    # a carousel: the post on its first image, each further image a row of its own with no counts
    assert rows["P2"].image == root.resolve() / f"{base[1]}_1.jpg" and rows["P2"].extra["media"] == "carousel"
    assert [(rows[f"P2_{i}"].image, rows[f"P2_{i}"].likes, rows[f"P2_{i}"].extra["slide_of"]) for i in (2, 3)] == [
        (root.resolve() / f"{base[1]}_{i}.jpg", None, "P2") for i in (2, 3)
    ]
    assert rows["P3"].sponsored and rows["P3"].extra["sponsors"] == ["nike"] and rows["P3"].extra["media"] == "video"
    assert rows["P3"].image == root.resolve() / f"{base[2]}.jpg" and rows["P3"].extra["video"] == f"{base[2]}.mp4"
    assert rows["P4"].image is None and rows["P4"].caption == "a reel about running"  # a video without a thumbnail
    assert rows["P1"].source == f"{base[0]}.json.xz" and not rows["P1"].sponsored
    assert c.matches == [Match("nike", "anna")]  # tagged and sponsored: one pair


def partial_post(shortcode: str, ts: int) -> dict:
    """A node as a feed download may save it: no like or comment counts, no sponsor edge, no
    tags, no alt text, no type, and an owner without a username."""
    node = post_node(shortcode, "anna", 1, ts, likes=None, comments=None, sponsors=None)
    for key in ("edge_media_to_tagged_user", "accessibility_caption", "__typename"):
        del node[key]
    node["owner"] = {"id": "1"}
    return node


def forbid_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The connections attempted from now on (each refused)."""
    calls: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(repr(args[:2]))
        raise OSError("the test forbids the network")

    for target, name in (
        (socket, "getaddrinfo"),
        (socket, "create_connection"),
        (socket.socket, "connect"),
        (socket.socket, "connect_ex"),
    ):
        monkeypatch.setattr(target, name, refuse)
    return calls


def test_partial_nodes_are_unknown_and_never_reach_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "dl"
    node = profile_node("anna", 1, None)
    del node["business_category_name"], node["biography"]
    save_profile(root, node)
    save_post(root, partial_post("Q1", T0), folder="anna")
    calls = forbid_network(monkeypatch)
    c = read_instaloader(root)
    assert calls == []
    assert c.errors == [] and [(a.id, a.followers, a.category) for a in c.accounts] == [("anna", None, "")]
    (post,) = c.posts
    assert (post.id, post.account_id, post.likes, post.comments, post.tagged) == ("Q1", "anna", None, None, ())
    assert not post.sponsored and post.extra["sponsored_unknown"] is True and "alt" not in post.extra
    assert post.image == root.resolve() / f"anna/{base_name(T0)}.jpg"  # the type inferred from the files


def instaloader_416_downloads(root: Path) -> Path:
    """anna's posts as a logged-in Instaloader 4.16 saves them (Post.from_iphone_struct: the
    counts, tags and sponsors only in 'comments' and 'iphone_struct'), ben's as a logged-out one
    does (Post._normalize_post_data: no sponsor edge, the raw media keys kept); the profiles of
    both and of the brands nike and puma."""
    for name, uid, followers in (("anna", 1, 10_000), ("ben", 5, 2_000), ("nike", 2, 900_000), ("puma", 6, 50_000)):
        save_profile(root, profile_node(name, uid, followers))
    save_logged_in_post(root, media_item("I1", "anna", 1, T0, likes=200, comments=7, tagged=("Nike",), paid=False))
    save_logged_in_post(
        root, media_item("I2", "anna", 1, T0 + DAY, likes=300, comments=3, paid=True, sponsors=("puma",))
    )
    save_logged_in_post(root, media_item("I3", "anna", 1, T0 + 2 * DAY, likes=100, comments=None))
    save_logged_out_post(root, media_item("L1", "ben", 5, T0, likes=50, comments=2, tagged=("nike",), paid=False))
    save_logged_out_post(
        root, media_item("L2", "ben", 5, T0 + DAY, likes=80, comments=4, paid=True, sponsors=("Puma",))
    )
    save_logged_out_post(root, media_item("L3", "ben", 5, T0 + 2 * DAY, likes=None, comments=None))
    return root


def test_instaloader_416_layouts_keep_comments_tags_and_sponsors_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = instaloader_416_downloads(tmp_path / "dl")
    saved = json.loads(lzma.decompress((root / "anna" / f"{base_name(T0)}.json.xz").read_bytes()))["node"]
    assert "edge_media_to_comment" not in saved and saved["comments"] == 7 and "iphone_struct" in saved
    saved = json.loads(lzma.decompress((root / "ben" / f"{base_name(T0 + DAY)}.json.xz").read_bytes()))["node"]
    assert "edge_media_to_sponsor_user" not in saved and saved["is_paid_partnership"] is True
    calls = forbid_network(monkeypatch)
    c = read_instaloader(root, options=SourceOptions(brands=(Named("nike"), Named("puma")), matches_from_tags=True))
    assert calls == [] and c.errors == []
    rows = {p.id: p for p in c.posts}
    assert {
        i: (p.likes, p.comments, p.tagged, p.sponsored, p.extra.get("sponsors"), p.extra.get("sponsored_unknown"))
        for i, p in rows.items()
    } == {
        "I1": (200, 7, ("nike",), False, None, None),
        "I2": (300, 3, (), True, ["puma"], None),
        "I3": (100, None, (), False, None, True),  # no comment count, no sponsor keys
        "L1": (50, 2, ("nike",), False, None, None),
        "L2": (80, 4, (), True, ["puma"], None),
        "L3": (None, None, (), False, None, True),  # absent counts are unknown, not Instaloader's 0
    }
    assert rows["I1"].caption == "a caption" and rows["I1"].ts.timestamp() == T0  # type: ignore[union-attr]
    assert rows["L1"].account_id == "ben" and rows["I1"].image == root.resolve() / f"anna/{base_name(T0)}.jpg"
    assert sorted((m.brand_id, m.influencer_id) for m in c.matches) == [
        ("nike", "anna"),
        ("nike", "ben"),
        ("puma", "anna"),
        ("puma", "ben"),
    ]


def test_cli_engagement_of_a_logged_in_download_is_known(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = instaloader_416_downloads(tmp_path / "dl")
    code, out, err = run(capsys, "ingest", "--format", "instaloader", str(root), "--json")
    assert code == 0, err
    assert json.loads(out)["rejected"] == []
    with Store.open(env) as store:
        er = store.conn.execute("SELECT engagement_rate, er_posts FROM account_metrics WHERE account_id = 'anna'")
        assert er.fetchone() == pytest.approx((255 / 10_000, 2))  # median of 207 and 303; I3 has no comment count


def write_json(path: Path, obj: object, xz: bool = False) -> None:
    data = json.dumps(obj).encode()
    path.write_bytes(lzma.compress(data) if xz else data)


def test_unreadable_files_are_row_errors_with_the_file_and_reason(tmp_path: Path) -> None:
    root = downloads(tmp_path / "dl")
    truncated = root / "anna" / f"{base_name(T0 + 5 * DAY)}.json.xz"
    instaloader.save_structure_to_file(instaloader.Post(CTX, post_node("T1", "anna", 1, T0 + 5 * DAY)), str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:40])
    save_post(root, post_node("M1", "anna", 1, T0 + 6 * DAY), image=False)  # a picture without its image
    save_post(root, post_node("C1", "anna", 1, T0 + 7 * DAY, typename="GraphSidecar", slides=(False, False, False)))
    (root / "anna" / f"{base_name(T0 + 7 * DAY)}_2.jpg").unlink()
    save_post(root, post_node("B1", "bob", 3, T0))  # bob's profile file is missing
    write_json(root / "anna" / "broken.json", "{")
    (root / "anna" / "broken.json").write_text('{"node": ')
    write_json(root / "anna" / "old.json", {"shortcode": "OLD"})  # Instaloader 3: a shortcode only
    write_json(root / "anna" / "other.json.xz", {"a": 1}, xz=True)
    (root / "anna" / "P1_comments.json").write_text("[]")  # comments: not a structure, not read
    # --resume files of interrupted downloads (posts; a post's comments, as Instaloader < 4.11 wrote
    # them, without doc_id): not structures, skipped by name
    frozen = {
        "query_hash": None,
        "query_variables": {"id": "1"},
        "query_referer": None,
        "context_username": None,
        "total_index": 12,
        "best_before": T0 + 30 * DAY,
        "remaining_data": None,
        "first_node": {"id": "9"},
    }
    instaloader.save_structure_to_file(
        FrozenNodeIterator(**frozen, doc_id="123"), str(root / "anna" / "iterator_Ab3-_x9Q.json.xz")
    )
    write_json(
        root / "anna" / f"{base_name(T0)}_iterator_Zq_8-mN2.json.xz",
        {"node": frozen, "instaloader": {"version": "4.10", "node_type": "FrozenNodeIterator"}},
        xz=True,
    )
    assert not any("iterator" in p.name for p in reader.metadata_files(root))
    brands = tmp_path / "brands.txt"
    brands.write_text("# brands\nnike\n@adidas\n")
    from congruence.indexer.formats.common import read_names

    c = read_instaloader(root, options=SourceOptions(brands=read_names(brands)))
    assert [str(e) for e in c.errors] == [
        f"anna/{base_name(T0 + 5 * DAY)}.json.xz: truncated or corrupt .json.xz "
        "(Compressed file ended before the end-of-stream marker was reached)",
        f"anna/{base_name(T0 + 6 * DAY)}.json.xz: image not found: {base_name(T0 + 6 * DAY)}.jpg "
        "(downloaded with --no-pictures?)",
        f"anna/{base_name(T0 + 7 * DAY)}.json.xz: carousel image 2 of 3 not found: {base_name(T0 + 7 * DAY)}_2.jpg",
        "anna/broken.json: malformed JSON: Expecting value at line 1 column 10",
        "anna/old.json: an Instaloader 3 file holds only a shortcode: the post would have to be downloaded",
        "anna/other.json.xz: not an Instaloader structure (no 'node' and 'instaloader' keys)",
        f"bob/{base_name(T0)}.json.xz: post 'B1' of an unknown account 'bob' (not in the accounts read, nor in "
        "the store)",
        "brands.txt:3: brand 'adidas' is not among the accounts read (nor a brand in the store)",
    ]
    assert {p.id for p in c.posts} == {"N1", "P1", "P2", "P2_2", "P2_3", "P3", "P4", "C1", "C1_3"}


def test_cli_ingest_is_incremental_and_loses_nothing(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = downloads(tmp_path / "dl")
    brands = tmp_path / "brands.txt"
    brands.write_text("nike\n")
    args = (
        "ingest",
        "--format",
        "instaloader",
        str(root),
        "--brands-file",
        str(brands),
        "--matches-from-tags",
        "--json",
    )
    code, out, err = run(capsys, *args)
    assert code == 0, err
    body = json.loads(out)
    assert (body["accounts_new"], body["posts_new"], body["matches_new"], body["rejected"]) == (2, 7, 1, [])
    assert body["metrics"]["accounts"] == 2 and body["metrics"]["flagged"] == {
        "comment_like_ratio": 0,
        "like_spike": 0,
        "er_outlier": 0,
        "growth_spike": 0,
    }
    assert body["follower_snapshots"] == 2  # anna's and nike's counts, dated by their profile files
    body = json.loads(run(capsys, *args)[1])
    assert (body["accounts_new"], body["accounts_updated"], body["posts_new"], body["posts_updated"]) == (0, 0, 0, 0)
    assert body["follower_snapshots"] == 0
    first = root / "anna" / f"{base_name(T0)}.json.xz"  # P1, stored: its file breaks
    first.write_bytes(first.read_bytes()[:30])
    save_post(root, post_node("P5", "anna", 1, T0 + 9 * DAY, likes=80))
    save_post(root, post_node("Z1", "zoe", 4, T0))
    code, out, _ = run(capsys, *args)
    body = json.loads(out)
    assert code == 2 and body["posts_new"] == 1
    assert [(r["file"], r["reason"].split(" (")[0]) for r in body["rejected"]] == [
        (f"anna/{base_name(T0)}.json.xz", "truncated or corrupt .json.xz"),
        (f"zoe/{base_name(T0)}.json.xz", "post 'Z1' of an unknown account 'zoe'"),
    ]
    with Store.open(env) as store:
        posts = dict(store.conn.execute("SELECT id, likes FROM posts").fetchall())
        er = store.conn.execute("SELECT engagement_rate, er_posts FROM account_metrics WHERE account_id = 'anna'")
        assert er.fetchone() == pytest.approx((105 / 12_000, 5))  # median of 124, 95, 305, 105, 85 over 12,000
    assert posts["P1"] == 120 and len(posts) == 8  # the stored post whose file broke is still there
    code, out, _ = run(capsys, "match", "--brand", "nike", "--json")
    (hit,) = json.loads(out)["data"]
    assert hit["influencer_id"] == "anna" and hit["metrics"]["er_posts"] == 5
