"""What the HTTP API reads and writes, split by use: requests, items, responses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from congruence.search.engine import MAX_K

Format = Literal["csv", "jsonl", "parquet"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------------
class FilterFields(_Strict):
    category: str | None = Field(None, max_length=100, description="only influencers of this category")
    min_followers: int | None = Field(None, ge=0, le=10**12)
    max_followers: int | None = Field(None, ge=0, le=10**12)
    micro: bool = Field(False, description="micro-influencers only: 5,000-100,000 followers")


class QueryFields(FilterFields):
    k: int = Field(20, ge=1, le=MAX_K, description="number of influencers")
    posts: int = Field(3, ge=0, le=12, description="top matching posts per influencer")


class MatchRequest(QueryFields):
    """A brand in the corpus. A brand not in the corpus is sent as multipart instead."""

    brand_id: str = Field(..., min_length=1, max_length=200)


class NewBrandForm(QueryFields):
    """The text fields of a multipart match request (the images travel beside them)."""

    text: str = Field("", max_length=5000, description="what the brand is about")


class ExportRequest(FilterFields):
    brands: list[str] | Literal["all"] = Field("all", description='"all", or a list of brand ids (at most 100,000)')
    k: int = Field(100, ge=1, le=MAX_K)
    format: Format = "csv"


# -- items ----------------------------------------------------------------------------------
class PostOut(BaseModel):
    post_id: str
    score: float
    image_url: str | None
    thumbnail_url: str | None


class MatchHit(BaseModel):
    influencer_id: str
    handle: str
    category: str
    followers: int | None
    score: float
    rank: int
    top_posts: list[PostOut]
    similar_url: str
    account_url: str


class AccountPost(BaseModel):
    post_id: str
    caption: str
    likes: int | None
    image_url: str | None
    thumbnail_url: str | None


class AccountOut(BaseModel):
    id: str
    kind: Literal["brand", "influencer"]
    handle: str
    category: str
    followers: int | None
    n_posts: int
    posts: list[AccountPost]


class ImageScoreOut(BaseModel):
    index: int
    filename: str
    score: float = Field(..., ge=0, le=10)
    rank: int
    suggestions: list[str]


class ExportJobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    done_brands: int
    total_brands: int
    rows: int | None = None
    skipped: list[dict[str, str]] = []
    error: str | None = None
    format: Format
    download_url: str | None = None


# -- responses ------------------------------------------------------------------------------
class MatchResponse(BaseModel):
    data: list[MatchHit]
    count: int
    ranking: str = Field(..., description="how the scores were computed")
    query_id: str | None = Field(None, description="a new brand's search: pass as ?query= to /v1/explain (kept 1 hour)")


class ScoreResponse(BaseModel):
    data: list[ImageScoreOut]
    count: int
    model: str
    note: str = Field("", description="why scores or suggestions may say little (e.g. a text-only training corpus)")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    database: str
    index: str
    influencers: int | None = None
    head: str | None = None



class AccountSummary(BaseModel):
    id: str
    handle: str
    category: str


class AccountList(BaseModel):
    data: list[AccountSummary]
    count: int


class CategoryCount(BaseModel):
    category: str
    count: int


class CategoryList(BaseModel):
    data: list[CategoryCount]
    count: int
