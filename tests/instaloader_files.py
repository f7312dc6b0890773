"""Real Instaloader downloads, written offline with Instaloader's own ``save_structure_to_file``
from node data (as Instagram's GraphQL API gives them) and small JPEGs, in its default layout:
``<profile>/<profile>_<id>.json.xz`` and ``<profile>/<date>_UTC[_n].{json.xz,jpg,mp4}``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import instaloader
from PIL import Image

from congruence.indexer.formats.offline import OfflineContext

CTX = OfflineContext()


def jpeg(path: Path, color: tuple[int, int, int]) -> None:
    Image.new("RGB", (24, 24), color).save(path, format="JPEG")


def profile_node(username: str, uid: int, followers: int | None, category: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": str(uid),
        "username": username,
        "full_name": username.title(),
        "biography": f"hi, I am {username}",
        "is_verified": False,
        "is_private": False,
        "is_business_account": category is not None,
        "business_category_name": category,
        "edge_owner_to_timeline_media": {"count": 3},
        "external_url": None,
    }
    if followers is not None:
        node["edge_followed_by"] = {"count": followers}
    return node


def post_node(
    shortcode: str,
    owner: str,
    uid: int,
    ts: int,
    likes: int | None = 100,
    comments: int | None = 5,
    caption: str | None = "a caption",
    typename: str = "GraphImage",
    tagged: tuple[str, ...] = (),
    sponsors: tuple[str, ...] | None = (),
    slides: tuple[bool, ...] = (),
) -> dict[str, Any]:
    """A post node; None (or sponsors=None) leaves the field out, as a partial node would."""
    node: dict[str, Any] = {
        "__typename": typename,
        "id": str(abs(hash(shortcode)) % 10**12),
        "shortcode": shortcode,
        "taken_at_timestamp": ts,
        "is_video": typename == "GraphVideo",
        "display_url": f"https://example.invalid/{shortcode}.jpg",
        "owner": {"id": str(uid), "username": owner},
        "accessibility_caption": "Photo shared by someone. May be an image of 1 person.",
        "edge_media_to_tagged_user": {"edges": [{"node": {"user": {"username": t}}} for t in tagged]},
    }
    if caption is not None:
        node["edge_media_to_caption"] = {"edges": [{"node": {"text": caption}}]}
    if likes is not None:
        node["edge_media_preview_like"] = {"count": likes}
    if comments is not None:
        node["edge_media_to_comment"] = {"count": comments}
    if sponsors is not None:
        node["edge_media_to_sponsor_user"] = {
            "edges": [{"node": {"sponsor": {"id": str(len(s)), "username": s}}} for s in sponsors]
        }
    if slides:
        node["edge_sidecar_to_children"] = {
            "edges": [
                {
                    "node": {
                        "is_video": v,
                        "display_url": f"https://example.invalid/{shortcode}_{i}.jpg",
                        **({"video_url": f"https://example.invalid/{shortcode}_{i}.mp4"} if v else {}),
                    }
                }
                for i, v in enumerate(slides, start=1)
            ]
        }
    return node


def base_name(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d_%H-%M-%S") + "_UTC"


def save_profile(root: Path, node: dict[str, Any]) -> Path:
    folder = root / node["username"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{node['username']}_{node['id']}.json.xz"
    instaloader.save_structure_to_file(instaloader.Profile(CTX, node), str(path))
    return path


def save_post(
    root: Path,
    node: dict[str, Any],
    color: tuple[int, int, int] = (200, 40, 40),
    image: bool = True,
    folder: str | None = None,
) -> Path:
    """The post's .json.xz and its media as Instaloader names them (an image, a video's
    thumbnail and .mp4, or one image per carousel slide)."""
    where = root / (folder or node["owner"]["username"])
    where.mkdir(parents=True, exist_ok=True)
    base = where / base_name(node["taken_at_timestamp"])
    instaloader.save_structure_to_file(instaloader.Post(CTX, node), str(base) + ".json.xz")
    kind = node.get("__typename", "GraphImage")
    if kind == "GraphSidecar":
        for i, edge in enumerate(node["edge_sidecar_to_children"]["edges"], start=1):
            if image:
                jpeg(Path(f"{base}_{i}.jpg"), (color[0], (color[1] + 50 * i) % 256, color[2]))
            if edge["node"]["is_video"]:
                Path(f"{base}_{i}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    else:
        if image:
            jpeg(Path(str(base) + ".jpg"), color)
        if kind == "GraphVideo":
            Path(str(base) + ".mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return Path(str(base) + ".json.xz")


def media_item(
    code: str,
    owner: str,
    uid: int,
    ts: int,
    likes: int | None = 100,
    comments: int | None = 5,
    caption: str | None = "a caption",
    tagged: tuple[str, ...] = (),
    paid: bool | None = None,
    sponsors: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A media record as Instagram's web and iPhone APIs give it (what Instaloader 4.16 reads
    posts from): ``like_count``, ``comment_count``, ``usertags``, ``is_paid_partnership`` and
    ``sponsor_tags``; None leaves a field out."""
    pk = str(abs(hash(code)) % 10**12)
    media: dict[str, Any] = {
        "pk": pk,
        "id": f"{pk}_{uid}",
        "code": code,
        "media_type": 1,
        "taken_at": ts,
        "has_liked": False,
        "user": {
            "pk": str(uid),
            "username": owner,
            "full_name": owner.title(),
            "is_private": False,
            "profile_pic_url": f"https://example.invalid/{owner}.jpg",
        },
        "caption": {"text": caption} if caption is not None else None,
        "image_versions2": {"candidates": [{"url": f"https://example.invalid/{code}.jpg", "width": 24, "height": 24}]},
        "accessibility_caption": "Photo shared by someone. May be an image of 1 person.",
    }
    if likes is not None:
        media["like_count"] = likes
    if comments is not None:
        media["comment_count"] = comments
    if tagged:
        media["usertags"] = {
            "in": [{"user": {"pk": str(len(t)), "username": t}, "position": [0.5, 0.5]} for t in tagged]
        }
    if paid is not None:
        media["is_paid_partnership"] = paid
    if sponsors is not None:
        media["sponsor_tags"] = [{"sponsor": {"pk": str(len(s)), "username": s}} for s in sponsors]
    return media


def _save_media_post(root: Path, post: instaloader.Post, ts: int, owner: str, color: tuple[int, int, int]) -> Path:
    where = root / owner
    where.mkdir(parents=True, exist_ok=True)
    base = where / base_name(ts)
    instaloader.save_structure_to_file(post, str(base) + ".json.xz")
    jpeg(Path(str(base) + ".jpg"), color)
    return Path(str(base) + ".json.xz")


def save_logged_in_post(root: Path, media: dict[str, Any], color: tuple[int, int, int] = (90, 20, 160)) -> Path:
    """A post as a logged-in Instaloader 4.16 saves it: ``Profile.get_posts`` builds it with
    ``Post.from_iphone_struct`` (the comment count under ``comments``, the record under
    ``iphone_struct``), then ``save_structure_to_file``."""
    post = instaloader.Post.from_iphone_struct(CTX, media)
    return _save_media_post(root, post, media["taken_at"], media["user"]["username"], color)


def save_logged_out_post(root: Path, media: dict[str, Any], color: tuple[int, int, int] = (20, 160, 90)) -> Path:
    """A post as a logged-out Instaloader 4.16 saves it: ``Post.from_shortcode`` takes the node
    from ``Post._normalize_post_data`` of the web API's media record (no sponsor edge; raw keys
    kept), then ``save_structure_to_file``."""
    post = instaloader.Post(CTX, instaloader.Post._normalize_post_data(media))
    return _save_media_post(root, post, media["taken_at"], media["user"]["username"], color)
