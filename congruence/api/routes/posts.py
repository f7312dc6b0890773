"""GET /v1/posts/{id}/image: a post's image, whole or as a JPEG thumbnail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from congruence.api.deps import EngineDep, KeyDep
from congruence.core.errors import NotFound
from congruence.encoders.images import read_image
from congruence.search.engine import Engine

router = APIRouter(tags=["posts"])
_CACHE = {"Cache-Control": "private, max-age=3600"}
_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def post_image_path(engine: Engine, post_id: str) -> tuple[Path, str]:
    """The image file of a post, kept inside its corpus folder; (path, content hash)."""
    with engine.reading() as store:
        post = store.post(post_id)
    if not post.image:
        raise NotFound(f"post {post_id!r} has no image")
    root = Path(post.corpus_root).resolve()
    path = (root / post.image).resolve()
    if not path.is_relative_to(root):  # checked at ingest too; a moved corpus must not open a door
        raise NotFound(f"post {post_id!r}: image is outside its corpus folder")
    if not path.is_file():
        raise NotFound(f"post {post_id!r}: image file not found (was the corpus folder moved?)")
    return path, post.image_hash or ""


def _thumbnail(path: Path, digest: str, size: int, cache: Path) -> Path:
    out = cache / f"{digest or path.stat().st_mtime_ns}-{size}.jpg"
    if not out.is_file():
        image, _ = read_image(path, draft_size=size)
        image.thumbnail((size, size))
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        image.save(tmp, "JPEG", quality=85)
        tmp.replace(out)
    return out


@router.get(
    "/v1/posts/{post_id:path}/image",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def post_image(
    post_id: str,
    engine: EngineDep,
    _key: KeyDep,
    size: Annotated[int | None, Query(ge=32, le=1024, description="longest side, px")] = None,
) -> FileResponse:
    path, digest = await run_in_threadpool(post_image_path, engine, post_id)
    if size is None:
        ctype = _TYPES.get(path.suffix.lower())
        if ctype is None:
            raise HTTPException(415, f"post {post_id!r}: image type {path.suffix!r} is not served")
        return FileResponse(path, media_type=ctype, headers=_CACHE)
    thumb = await run_in_threadpool(_thumbnail, path, digest, size, engine.settings.home / "cache" / "thumbs")
    return FileResponse(thumb, media_type="image/jpeg", headers=_CACHE)
