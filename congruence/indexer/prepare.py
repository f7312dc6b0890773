"""Preparing posts for the store: hashes, relative paths, and a decode check of new images."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from congruence.core.errors import InvalidInput
from congruence.core.hashes import sha256_bytes, sha256_text
from congruence.encoders.images import decode_image
from congruence.indexer.corpus import Post, RowError
from congruence.store.records import row_hash
from congruence.store.rows import StoredPost


def _check(post: Post, root: Path) -> tuple[StoredPost | None, str | None, bytes | None]:
    image_rel = image_hash = None
    data = None
    if post.image is not None:
        try:
            data = post.image.read_bytes()
        except OSError as e:
            return None, f"image cannot be read: {e.strerror}", None
        image_rel = str(post.image.relative_to(root))
        image_hash = sha256_bytes(data)
    caption_hash = sha256_text(post.caption) if post.caption.strip() else None
    fields = [
        post.account_id,
        image_rel,
        image_hash,
        post.caption,
        post.likes,
        post.comments,
        post.ts.isoformat() if post.ts else None,
        post.sponsored,
        list(post.tagged),
        post.extra,
    ]
    stored = StoredPost(
        id=post.id,
        account_id=post.account_id,
        image=image_rel,
        image_hash=image_hash,
        caption=post.caption,
        caption_hash=caption_hash,
        likes=post.likes,
        comments=post.comments,
        ts=post.ts,
        sponsored=post.sponsored,
        tagged=post.tagged,
        extra=post.extra,
        row_hash=row_hash(fields),
        corpus_root=str(root),
    )
    return stored, None, data


def _decodes(data: bytes, name: str) -> str | None:
    try:
        decode_image(data, name=name, draft_size=256)
        return None
    except InvalidInput as e:
        return str(e)


def prepare_posts(
    posts: Sequence[Post], root: Path, known_hashes: set[str], workers: int = 2
) -> tuple[list[StoredPost], list[RowError]]:
    """StoredPost for every post that can be stored; a RowError for every one that cannot.

    Images whose hash is in ``known_hashes`` (already encoded) are not decoded again.
    """
    errors: list[RowError] = []
    out: list[StoredPost] = []
    checks = []
    where = {p.id: (p.source, p.line) for p in posts}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for post in posts:
            stored, err, data = _check(post, root)
            if err or stored is None:
                errors.append(RowError(post.source, post.line, err or "unreadable"))
                continue
            if data is not None and stored.image_hash not in known_hashes:
                checks.append((stored, pool.submit(_decodes, data, stored.image or "image")))
            else:
                out.append(stored)
        for stored, fut in checks:
            err = fut.result()
            if err:
                errors.append(RowError(*where[stored.id], err))
            else:
                out.append(stored)
    return out, errors
