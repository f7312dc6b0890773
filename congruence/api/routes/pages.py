"""The web page: static files served by the same app, no build step."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


def _page(name: str) -> HTMLResponse:
    html = resources.files("congruence.api").joinpath("static", name).read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    return _page("index.html")


@router.get("/score", response_class=HTMLResponse)
def score_page() -> HTMLResponse:
    return _page("score.html")


@router.get("/account", response_class=HTMLResponse)
def account_page() -> HTMLResponse:
    return _page("account.html")
