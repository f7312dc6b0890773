"""Uploaded images and form fields: limits checked before any model runs.

Answers: 413 for too many or too large (bytes or pixels), 415 for what is not a
supported image, 422 for an image that cannot be decoded or a bad field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from congruence.core.errors import InvalidInput, TooLarge, UnsupportedMedia
from congruence.encoders.images import decode_image

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024  # 20 images near the per-image limit would not fit: by design
MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_TEXT_CHARS = 5_000
MAX_FORM_FIELDS = 30


@dataclass(frozen=True)
class Upload:
    filename: str
    image: Image.Image


async def read_form(request: Request, max_files: int) -> FormData:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise HTTPException(415, f"expected multipart/form-data, got {ctype.split(';')[0] or 'no content type'}")
    try:
        # one past the limit, so "too many" is answered with the count, not a parser error
        return await request.form(max_files=max_files + 1, max_fields=MAX_FORM_FIELDS)
    except HTTPException:  # ours: BodyLimit's 413
        raise
    except StarletteHTTPException as e:  # the multipart parser's refusals, all 400 there
        raise _form_refusal(str(e.detail), max_files) from None
    except Exception as e:  # noqa: BLE001 -- the multipart parser raises several kinds of its own
        raise HTTPException(400 if "boundary" in str(e).lower() else 422, f"malformed multipart body: {e}") from None


def _form_refusal(detail: str, max_files: int) -> HTTPException:
    """The parser's own limits are limits of this API too: 413 with ours named, not a 400."""
    if detail.startswith("Too many files"):
        return HTTPException(413, f"images: at most {max_files} images per request, got {max_files + 2} or more")
    if detail.startswith("Too many fields"):
        return HTTPException(413, f"at most {MAX_FORM_FIELDS} form fields per request")
    if "exceeded maximum size" in detail:
        return HTTPException(
            413, f"a form field is larger than 1 MB (text fields hold at most {MAX_TEXT_CHARS} characters)"
        )
    return HTTPException(400 if "boundary" in detail.lower() else 422, f"malformed multipart body: {detail}")


async def read_images(form: FormData, field: str, max_count: int) -> list[Upload]:
    files = [v for v in form.getlist(field) if isinstance(v, UploadFile)]
    strays = [v for v in form.getlist(field) if not isinstance(v, UploadFile)]
    if strays:
        raise HTTPException(422, f"{field}: expected files, got a text field")
    if len(files) > max_count:
        raise HTTPException(413, f"{field}: at most {max_count} images per request, got {len(files)} or more")
    out = []
    for i, f in enumerate(files):
        name = f"{field}[{i}] ({f.filename or 'unnamed'})"
        ctype = (f.content_type or "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
            raise HTTPException(415, f"{name}: expected an image, got {ctype}")
        data = await f.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise HTTPException(413, f"{name}: larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
        if not data:
            raise HTTPException(422, f"{name}: empty file")
        try:
            image = decode_image(data, name=name)
        except TooLarge as e:
            raise HTTPException(413, str(e)) from None
        except UnsupportedMedia as e:
            raise HTTPException(415, str(e)) from None
        except InvalidInput as e:
            raise HTTPException(422, str(e)) from None
        out.append(Upload(f.filename or f"image {i + 1}", image))
    return out


def text_fields(form: FormData, skip: tuple[str, ...]) -> dict[str, str]:
    """Plain fields as a dict; a repeated field is refused (which value was meant?)."""
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        if key in skip:
            continue
        if isinstance(value, UploadFile):
            raise HTTPException(422, f"{key}: expected a text field, got a file")
        if key in out:
            raise HTTPException(422, f"{key}: given more than once")
        if len(value) > MAX_TEXT_CHARS:
            raise HTTPException(413, f"{key}: longer than {MAX_TEXT_CHARS} characters")
        out[key] = value
    return out


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over a limit with 413, whether or not Content-Length is sent,
    before they are buffered: multipart bodies up to MAX_BODY_BYTES, others MAX_JSON_BYTES."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = MAX_BODY_BYTES if multipart else MAX_JSON_BYTES
        what = f"request body larger than {limit // (1024 * 1024)} MB"
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, what)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, what)
            return message

        await self.app(scope, limited, send)


async def _send_json(send: Send, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
