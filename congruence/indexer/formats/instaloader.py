"""Reading a folder of Instaloader downloads: ``congruence ingest --format instaloader DIR``.

Instaloader writes a folder per profile: ``<profile>_<id>.json.xz`` (the profile's node:
followers, name, biography, business category), and per post ``<base>.json.xz`` (likes,
comments, time, caption, tagged users, sponsors, alt text) beside ``<base>.jpg`` (an image,
or a video's thumbnail, with ``<base>.mp4``) or ``<base>_1.jpg``, ``<base>_2.jpg``, ... (a
carousel, "sidecar"). ``<base>`` follows ``--filename-pattern`` (``{date_utc}_UTC`` by default).

Files are loaded with Instaloader's own ``load_structure_from_file`` on an offline context
(``offline``): what a saved node lacks is unknown, never fetched. Where a property would fetch,
the counts, tags and sponsors are read from what Instaloader 4.16 really saves (``_Saved``: a
logged-in download's ``comments`` and ``iphone_struct``, a logged-out one's raw media keys).
Resume files (``iterator_*.json.xz``) are skipped by name. Each row goes through the
JSONL reader's checks (``corpus.parse_post``/``parse_account``). A carousel is one post (the
first image, with the likes, comments, caption and time) plus one row per further image
(``<shortcode>_<n>``, ``extra.slide_of``), so every image is embedded and metrics count the
post once. A file that cannot be read, or a post without its image, is a ``RowError`` naming
the file (line 0: the file is the row). The profile's follower count is dated by the profile
file's date, or by its newest post when that date cannot be right (``store.follower_history``).
"""

from __future__ import annotations

import json
import lzma
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import instaloader
from instaloader.exceptions import InvalidArgumentException

from congruence.indexer.corpus import Corpus, Post, RowError, RowInvalid, parse_account, parse_post
from congruence.indexer.formats.common import KnownAccounts, Sourced, SourceOptions, assemble
from congruence.indexer.formats.offline import NetworkRefused, OfflineContext, known
from congruence.store.follower_history import FOLLOWERS_AT, FOLLOWERS_AT_SOURCE

INSTAGRAM_LAUNCH = datetime(2010, 10, 6, tzinfo=UTC)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
MAX_FILE_BYTES = 20 << 20  # a post's or profile's .json.xz is a few kB
# Instaloader's resume files (--resume-prefix, "iterator" by default): ``iterator_<magic>.json.xz``
# beside a profile's posts, ``<base>_iterator_<magic>.json.xz`` beside a post's comments.
RESUME_FILE = re.compile(r"(?:^|_)iterator_[A-Za-z0-9_-]+\.json\.xz$")


def metadata_files(root: Path) -> list[Path]:
    """Instaloader structure files under ``root`` (not comments, not hidden), sorted."""
    out = []
    for p in root.rglob("*.json*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if RESUME_FILE.search(p.name):  # --resume state of an interrupted download, not a structure
            continue
        if p.name.endswith((".json.xz", ".json")) and not p.name.endswith("_comments.json"):
            out.append(p)
    return sorted(out)


def _load(ctx: OfflineContext, path: Path) -> Any:
    """The structure in ``path``, or RowInvalid saying why it cannot be read."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RowInvalid(f"file larger than {MAX_FILE_BYTES >> 20} MB: not an Instaloader structure")
        return instaloader.load_structure_from_file(ctx, str(path))
    except (lzma.LZMAError, EOFError) as e:
        raise RowInvalid(f"truncated or corrupt .json.xz ({e})") from None
    except UnicodeDecodeError:
        raise RowInvalid("not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise RowInvalid(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except InvalidArgumentException:
        raise RowInvalid("not an Instaloader structure (no 'node' and 'instaloader' keys)") from None
    except NetworkRefused:
        raise RowInvalid("an Instaloader 3 file holds only a shortcode: the post would have to be downloaded") from None
    except AssertionError:
        raise RowInvalid("a profile node without a username") from None
    except (OSError, RecursionError, KeyError, TypeError, AttributeError) as e:
        raise RowInvalid(f"cannot be read as an Instaloader structure ({type(e).__name__})") from None


def _base(path: Path) -> str:
    return path.name.removesuffix(".xz").removesuffix(".json")


class _Folder:
    """The files beside a structure file, listed once per folder."""

    def __init__(self, root: Path):
        self.root = root
        self._names: dict[Path, set[str]] = {}

    def find(self, folder: Path, stem: str, exts: tuple[str, ...] = IMAGE_EXTS) -> str | None:
        """The corpus-relative path of ``folder/stem + ext`` for the first ext present, or None."""
        names = self._names.get(folder)
        if names is None:
            names = self._names[folder] = {p.name for p in folder.iterdir() if p.is_file()}
        for ext in exts:
            for name in (stem + ext, stem + ext.upper()):
                if name in names:
                    return (folder / name).relative_to(self.root).as_posix()
        return None


def _file_date(path: Path) -> datetime | None:
    """When the profile file was saved (its modification time), or None when that date cannot be
    right: before Instagram existed (an archive that dropped dates), or in the future."""
    at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return at if INSTAGRAM_LAUNCH <= at <= datetime.now(UTC) + timedelta(days=1) else None


def _dated(accounts: list[Sourced], posts: list[Post]) -> list[Sourced]:
    """The accounts whose profile file has no usable date, dated by their newest post instead
    (the count was seen no earlier); those without a dated post stay undated (the ingest's time)."""
    newest: dict[str, datetime] = {}
    for p in posts:
        if p.ts is not None and (p.account_id not in newest or p.ts > newest[p.account_id]):
            newest[p.account_id] = p.ts
    out = []
    for s in accounts:
        a = s.account
        if a.followers is not None and FOLLOWERS_AT not in a.extra and a.id in newest:
            extra = a.extra | {FOLLOWERS_AT: newest[a.id].isoformat(), FOLLOWERS_AT_SOURCE: "posts"}
            s = replace(s, account=replace(a, extra=extra))
        out.append(s)
    return out


def _account(profile: instaloader.Profile, saved: datetime | None) -> dict[str, Any]:
    """The account row (a dict for ``parse_account``) of a profile saved at ``saved``; unknown
    fields are null."""
    username = known(lambda: profile.username)
    if not username:
        raise RowInvalid("a profile node without a username")
    category = known(lambda: profile.business_category_name)
    row = {
        "id": username,
        "kind": "influencer",
        "handle": username,
        "category": category if isinstance(category, str) else "",
        "followers": known(lambda: profile.followers),
    }
    extra = {
        "instagram_id": known(lambda: profile.userid),
        "full_name": known(lambda: profile.full_name),
        "biography": known(lambda: profile.biography),
        "is_verified": known(lambda: profile.is_verified),
        "is_business_account": known(lambda: profile.is_business_account),
        "posts_total": known(lambda: profile.mediacount),
        "external_url": known(lambda: profile.external_url),
    }
    if saved is not None:
        extra[FOLLOWERS_AT] = saved.isoformat()
    return row | {k: v for k, v in extra.items() if v is not None}


def _owner(post: instaloader.Post, path: Path, root: Path) -> str | None:
    """The post's owner: its node's username, else the profile folder it was saved in."""
    name = known(lambda: post.owner_username)
    if name:
        return str(name)
    return path.parent.name if path.parent != root else None


class _Saved:
    """Counts, tags and sponsorship of a saved post: Instaloader's property where it answers
    offline, else what the saved node holds in Instaloader 4.16's layouts, never the network.

    A logged-in download (``Post.from_iphone_struct``) saves the comment count as ``comments``
    and the whole iPhone media record as ``iphone_struct`` (``comment_count``, ``like_count``,
    ``usertags``, ``is_paid_partnership``, ``sponsor_tags``), none of them under the GraphQL names
    the properties read. A logged-out one (``Post._normalize_post_data``) keeps the raw media
    keys beside the GraphQL ones, but writes no sponsor edge and a count of 0 for an absent
    count. A field absent everywhere is unknown (None)."""

    def __init__(self, post: instaloader.Post):
        self.post = post
        node = getattr(post, "_node", None)
        self.node: Mapping[str, Any] = node if isinstance(node, dict) else {}
        iphone = self.node.get("iphone_struct")
        self.iphone: Mapping[str, Any] = iphone if isinstance(iphone, dict) else {}
        # a Polaris media item normalized by _normalize_post_data: its raw keys are the truth
        self.polaris = "media_type" in self.node and "code" in self.node

    def raw(self, key: str) -> Any:
        """The raw media record's ``key`` (the node's own, else its iphone_struct's), or None."""
        for where in (self.node, self.iphone):
            if where.get(key) is not None:
                return where[key]
        return None

    def likes(self) -> int | None:
        if self.polaris:  # edge_media_preview_like is 0 when like_count was absent
            return _count(self.node.get("like_count"))
        likes = _count(known(lambda: self.post.likes))
        return likes if likes is not None else _count(self.iphone.get("like_count"))

    def comments(self) -> int | None:
        if self.polaris:  # edge_media_to_parent_comment is 0 when comment_count was absent
            return _count(self.node.get("comment_count"))
        for count in (known(lambda: self.post.comments), self.node.get("comments"), self.iphone.get("comment_count")):
            if _count(count) is not None:
                return _count(count)
        return None

    def tagged(self) -> list[str]:
        tagged = known(lambda: self.post.tagged_users)
        if tagged:
            return tagged
        usertags = self.raw("usertags")
        tags = usertags.get("in") if isinstance(usertags, dict) else None
        return _usernames(tags, "user")

    def sponsorship(self) -> tuple[bool | None, list[str]]:
        """(sponsored, or None when unknown; the sponsors' usernames)."""
        sponsored = known(lambda: self.post.is_sponsored)
        if sponsored is not None:
            return sponsored, known(lambda: [p.username for p in self.post.sponsor_users]) or []
        tags, paid = self.raw("sponsor_tags"), self.raw("is_paid_partnership")
        sponsors = _usernames(tags, "sponsor")
        if isinstance(paid, bool):
            return paid or bool(sponsors), sponsors
        return (bool(sponsors), sponsors) if isinstance(tags, list) else (None, [])


def _usernames(entries: object, key: str) -> list[str]:
    """The lowercased ``entry[key]["username"]`` of each entry of a raw media list."""
    if not isinstance(entries, list):
        return []
    out = []
    for entry in entries:
        who = entry.get(key) if isinstance(entry, dict) else None
        name = who.get("username") if isinstance(who, dict) else None
        if isinstance(name, str) and name:
            out.append(name.lower())
    return out


def _images(
    post: instaloader.Post, path: Path, files: _Folder, errors: list[RowError], rel: str
) -> tuple[list[tuple[int, str]], str | None]:
    """((slide number, image path) of each image found, in order; the video's path or None)
    of a post; a missing image of a picture is an error."""
    base, folder = _base(path), path.parent
    kind = known(lambda: post.typename)
    video = files.find(folder, base, (".mp4",))
    if kind == "GraphSidecar" or (kind is None and files.find(folder, base + "_1") is not None):
        is_videos = known(post.get_is_videos) or []
        n = len(is_videos) or sum(1 for i in range(1, 21) if files.find(folder, f"{base}_{i}") is not None)
        images = []
        for i in range(1, n + 1):
            found = files.find(folder, f"{base}_{i}")
            if found is not None:
                images.append((i, found))
            elif not (i <= len(is_videos) and is_videos[i - 1]):  # a video without its thumbnail: nothing to show
                errors.append(RowError(rel, 0, f"carousel image {i} of {n} not found: {base}_{i}.jpg"))
        return images, video
    image = files.find(folder, base)
    if image is None and kind != "GraphVideo" and video is None:
        raise RowInvalid(f"image not found: {base}.jpg (downloaded with --no-pictures?)")
    return ([(1, image)] if image else []), video


def _post_rows(
    post: instaloader.Post, path: Path, root: Path, files: _Folder, errors: list[RowError]
) -> list[dict[str, Any]]:
    """The rows (dicts for ``parse_post``) of one post: the post, then its further carousel images."""
    rel = path.relative_to(root).as_posix()
    shortcode, owner = known(lambda: post.shortcode), _owner(post, path, root)
    if not shortcode:
        raise RowInvalid("a post node without a shortcode")
    if not owner:
        raise RowInvalid("a post of an unknown profile: its node names no owner and it is not in a profile folder")
    images, video = _images(post, path, files, errors, rel)
    saved = _Saved(post)
    date, (sponsored, sponsors) = known(lambda: post.date_utc), saved.sponsorship()
    row: dict[str, Any] = {
        "id": shortcode,
        "account_id": owner,
        "image": images[0][1] if images else None,
        "caption": known(lambda: post.caption) or "",
        "likes": saved.likes(),
        "comments": saved.comments(),
        "ts": date.replace(tzinfo=UTC).isoformat() if isinstance(date, datetime) else None,
        "sponsored": bool(sponsored),
        "tagged": saved.tagged(),
    }
    extra = {
        "sponsored_unknown": True if sponsored is None else None,
        "sponsors": sponsors or None,
        "alt": known(lambda: post.accessibility_caption),
        "video": video,
        "media": {"GraphVideo": "video", "GraphSidecar": "carousel"}.get(str(known(lambda: post.typename))),
    }
    row |= {k: v for k, v in extra.items() if v is not None}
    slides = [
        {
            "id": f"{shortcode}_{i}",
            "account_id": owner,
            "image": img,
            "caption": "",
            "ts": row["ts"],
            "slide_of": shortcode,
            "slide": i,
        }
        for i, img in images[1:]
    ]
    return [row, *slides]


def _parsed(rows: list[dict[str, Any]], root: Path, rel: str, errors: list[RowError]) -> list[Post]:
    """``parse_post`` of each row (a further carousel image that fails costs only itself)."""
    out = []
    for r in rows:
        try:
            out.append(replace(parse_post(r, root), source=rel))
        except RowInvalid as e:
            if "slide_of" not in r:
                raise
            errors.append(RowError(rel, 0, f"carousel image {r['slide']}: {e}"))
    return out


def _count(v: object) -> int | None:
    """A like or comment count as Instagram gave it; a negative one (hidden) is unknown."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def read_instaloader(
    root: Path, known_accounts: KnownAccounts = lambda _id: None, options: SourceOptions = SourceOptions()
) -> Corpus:
    """Read and check a folder of Instaloader profile downloads (see the module doc).

    Raises FileNotFoundError when ``root`` is not a folder or holds no Instaloader metadata.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Instaloader folder not found: {root}")
    paths = metadata_files(root)
    if not paths:
        raise FileNotFoundError(
            f"{root} holds no Instaloader metadata (.json.xz): download with Instaloader's default --save-metadata"
        )
    ctx, files = OfflineContext(), _Folder(root.resolve())
    errors: list[RowError] = []
    accounts: list[Sourced] = []
    posts: list[Post] = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        try:
            structure = _load(ctx, path)
            if isinstance(structure, instaloader.Profile):
                saved = _file_date(path)
                acc = parse_account(_account(structure, saved))
                if saved is not None:
                    acc = replace(acc, extra=acc.extra | {FOLLOWERS_AT_SOURCE: "file"})
                accounts.append(Sourced(acc, rel))
            elif isinstance(structure, instaloader.Post):
                rows = _post_rows(structure, files.root / path.relative_to(root), files.root, files, errors)
                posts += _parsed(rows, root, rel, errors)
            # stories and hashtags are not posts of a profile: not read
        except RowInvalid as e:
            errors.append(RowError(rel, 0, str(e)))
    return assemble(root, _dated(accounts, posts), posts, options, known_accounts, errors)
