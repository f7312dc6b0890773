"""The HTTP API's account metrics: filter fields, what each hit and account carries, and the
account view's plot data."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from congruence.search.metric_filters import MetricBounds
from congruence.store.account_metrics import AccountMetrics


class MetricFilterFields(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_er: float | None = Field(None, ge=0, description="minimum engagement rate, a fraction (0.02 = 2 %)")
    max_er: float | None = Field(None, ge=0, description="maximum engagement rate, a fraction")
    max_sponsored_share: float | None = Field(
        None, ge=0, le=1, description="maximum share of paid partnerships among the newest posts"
    )
    min_posts_per_week: float | None = Field(None, ge=0, description="minimum posts per week")
    no_flags: bool = Field(False, description="only accounts with no authenticity flag")
    min_growth: float | None = Field(
        None, ge=-1, description="minimum monthly follower growth, a fraction (0.02 = +2 % a month)"
    )
    max_growth: float | None = Field(None, ge=-1, description="maximum monthly follower growth, a fraction")

    def bounds(self) -> MetricBounds:
        return MetricBounds.of(self)


class MetricFlagOut(BaseModel):
    signal: Literal["comment_like_ratio", "like_spike", "er_outlier", "growth_spike"]
    value: float = Field(..., description="the figure compared: a robust z, or a post's likes over the median")
    threshold: float = Field(..., description="what the value crossed (|z| above it, or a ratio at least it)")
    text: str = Field(..., description="the flag in a sentence, with its numbers")
    post_id: str | None = Field(None, description="the post of a like spike")


class MetricsOut(BaseModel):
    last_n: int = Field(..., description="newest posts the engagement rate, posts per week and sponsored share use")
    engagement_rate: float | None = Field(
        ...,
        description="median (likes + comments) / followers over the newest last_n posts, a fraction; null when unknown",
    )
    er_posts: int = Field(..., description="posts the engagement rate is the median of")
    posts_per_week: float | None
    sponsored_share: float | None = Field(..., description="paid partnerships among the newest last_n posts")
    sponsored_ratio: float | None = Field(
        ..., description="median engagement of sponsored posts over organic ones (all posts); null without both"
    )
    sponsored_posts: int
    organic_posts: int
    follower_band: str | None
    flags: list[MetricFlagOut] = Field(
        ..., description="authenticity signals raised, each with its figure and threshold"
    )
    growth_monthly: float | None = Field(
        None,
        description="monthly follower growth, compounded, a fraction (0.05 = +5 % a month); null with no two "
        "snapshots 7 or more days apart",
    )
    follower_snapshots: int = Field(0, description="dated follower counts on record")


def metrics_out(m: AccountMetrics | None) -> MetricsOut | None:
    return None if m is None else MetricsOut.model_validate(m.to_dict())


class FollowerPointOut(BaseModel):
    followers: int
    at: datetime = Field(..., description="when this count was first seen")
    last_seen: datetime | None = Field(None, description="when the same count was last seen again (null: once)")
    source: Literal["given", "file", "posts", "ingest"] = Field(
        ...,
        description="where the date came from: a followers_at field, an Instaloader profile file's date, "
        "its newest post, or the time of the ingest",
    )


class PostPointOut(BaseModel):
    post_id: str
    ts: datetime | None
    likes: int | None
    comments: int | None
    sponsored: bool | None


class PeerPointOut(BaseModel):
    account_id: str
    followers: int
    engagement_rate: float


class AccountMetricsResponse(BaseModel):
    account_id: str
    kind: Literal["brand", "influencer"]
    category: str
    followers: int | None
    metrics: MetricsOut | None = Field(..., description="null until `congruence metrics` (or an ingest) ran")
    posts: list[PostPointOut] = Field(..., description="likes over time: the newest 500 posts, oldest first")
    peers: list[PeerPointOut] = Field(
        ...,
        description="engagement rate against followers of accounts of the same "
        "kind and category (a fixed sample of at most 2,000, "
        "this account included)",
    )
    peers_total: int
