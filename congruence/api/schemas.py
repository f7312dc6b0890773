"""What the HTTP API reads and writes, split by use: requests, items, responses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from congruence.api.schemas_account_metrics import FollowerPointOut, MetricFilterFields, MetricsOut
from congruence.api.schemas_collab_filters import CollabFilterFields
from congruence.api.schemas_collaborations import CollaborationOut
from congruence.api.schemas_list_filters import ListFilterFields
from congruence.api.schemas_lists import OtherListOut
from congruence.search.engine import MAX_K
from congruence.search.feedback import MAX_FEEDBACK, PARAMS

Format = Literal["csv", "jsonl", "parquet"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------------
class FilterFields(MetricFilterFields, CollabFilterFields, ListFilterFields):
    category: str | None = Field(None, max_length=100, description="only influencers of this category")
    min_followers: int | None = Field(None, ge=0, le=10**12)
    max_followers: int | None = Field(None, ge=0, le=10**12)
    micro: bool = Field(False, description="micro-influencers only: 5,000-100,000 followers")
    brand_safe: bool = Field(
        False,
        description="only influencers with no post flagged by the brand-safety screen "
        "among their newest safe_last posts",
    )
    exclude_categories: list[str] = Field(
        [],
        max_length=10,
        description="only influencers with no post flagged in "
        "these categories among their newest safe_last posts (a list, or names "
        "separated by commas): adult, arms, drugs, hate_profanity, violence",
    )
    safe_last: int | None = Field(None, ge=1, le=10_000, description="newest posts the two above look at (20)")

    @field_validator("exclude_categories", mode="before")
    @classmethod
    def _comma_separated(cls, v: object) -> object:  # a form field carries one string
        return [p for p in v.split(",") if p.strip()] if isinstance(v, str) else v


class QueryFields(FilterFields):
    k: int = Field(20, ge=1, le=MAX_K, description="number of influencers")
    posts: int = Field(3, ge=0, le=12, description="top matching posts per influencer")
    signals: Literal["all", "content"] = Field(
        "all",
        description="all: content and, for a brand with known partners, their collaborations (a learned fusion); "
        "content: what the posts look and read like alone (the answer's ranking says which served)",
    )


class FeedbackFields(_Strict):
    like: list[str] = Field(
        [],
        max_length=MAX_FEEDBACK,
        description="influencer ids liked: the search moves toward them and does not suggest them again",
    )
    dislike: list[str] = Field(
        [],
        max_length=MAX_FEEDBACK,
        description="influencer ids disliked: the search moves away from them, and they never come back",
    )
    like_weight: float | None = Field(
        None,
        ge=0,
        le=10,
        description=f"weight of the closest liked ({PARAMS.like_weight:g}); 0 here or in "
        "dislike_weight also drops what tells the liked from the disliked",
    )
    dislike_weight: float | None = Field(
        None,
        ge=0,
        le=10,
        description=f"weight of the closest disliked, and (once something is liked) "
        f"of the push that grows with every disliked one nearby "
        f"({PARAMS.dislike_weight:g})",
    )


class MatchRequest(QueryFields, FeedbackFields):
    """A brand in the corpus (brand_id), or a new brand searched before (query_id, from its
    multipart search: re-run with feedback without uploading again). A brand not in the
    corpus is first sent as multipart."""

    brand_id: str | None = Field(None, min_length=1, max_length=200)
    query_id: str | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_brand(self) -> MatchRequest:
        if self.brand_id is None and self.query_id is None:
            raise ValueError("Field required: brand_id (a brand in the corpus) or query_id (a new brand's search)")
        if self.brand_id is not None and self.query_id is not None:
            raise ValueError(
                "give either brand_id (a brand in the corpus) or query_id (a new brand's search), not both"
            )
        return self


class SimilarRequest(QueryFields, FeedbackFields):
    """Look-alikes of one or several influencers (ranked by the set; the seeds are excluded)."""

    influencers: list[str] = Field(..., min_length=1, max_length=100)


class NewBrandForm(QueryFields):
    """The text fields of a multipart match request (the images travel beside them)."""

    text: str = Field("", max_length=5000, description="what the brand is about")


class ExportRequest(FilterFields):
    brands: list[str] | Literal["all"] = Field("all", description='"all", or a list of brand ids (at most 100,000)')
    k: int = Field(100, ge=1, le=MAX_K)
    format: Format = "csv"
    signals: Literal["all", "content"] = Field(
        "all",
        description="all: content and, for a brand with known partners, their collaborations (a learned fusion); "
        "content: what the posts look and read like alone (the answer's ranking says which served)",
    )


# -- items ----------------------------------------------------------------------------------
class PostOut(BaseModel):
    post_id: str
    score: float
    image_url: str | None
    thumbnail_url: str | None


class FlagOut(BaseModel):
    post_id: str
    category: str = Field(..., description="adult, arms, drugs, hate_profanity or violence")
    source: Literal["words", "caption", "image"]
    evidence: str = Field(
        ..., description="the word, the category description the caption is close to, or the ImageNet class"
    )
    score: float = Field(..., description="1 for a word, the caption's cosine, or the class probability")


class SafetyOut(BaseModel):
    screened_posts: int
    flagged_posts: int
    flagged_share: float
    flags: list[FlagOut] = Field(..., description="the newest flags (at most 5)")


class MatchHit(BaseModel):
    influencer_id: str
    handle: str
    category: str
    followers: int | None
    score: float
    rank: int
    top_posts: list[PostOut]
    similar_url: str = Field(
        ...,
        description="this influencer's look-alikes, with no filter or feedback: add the query "
        "parameters (brand_safe, dislike, ...) to carry them over",
    )
    account_url: str
    safety: SafetyOut | None = Field(None, description="the brand-safety screen of the account (None: not screened)")
    metrics: MetricsOut | None = Field(None, description="the account's metrics (None: not computed yet)")
    in_lists: list[OtherListOut] = Field(
        [], description="the campaign lists of the brand matched holding this influencer, with its status there"
    )


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
    metrics: MetricsOut | None = Field(
        None,
        description="engagement rate, posts per week, sponsored share and "
        "ratio, authenticity flags (None: not computed yet)",
    )
    follower_history: list[FollowerPointOut] = Field(
        [], description="its dated follower counts, oldest first (one stored each time an ingest saw it change)"
    )
    collaborations: int = Field(..., description="distinct handles it worked with: tags, sponsors, known matches")
    worked_with: list[CollaborationOut] = Field(
        ..., description="its edges (tags, sponsors, known matches), most posts first, at most `edges`"
    )
    worked_with_total: int = Field(..., description="all its edges, listed or not")
    tagged_by: list[CollaborationOut] = Field(
        ...,
        description="the other accounts' tags and sponsor names of it (for a brand: the creators who tagged it "
        "or were sponsored by it), most posts first, at most `edges`",
    )
    tagged_by_total: int = Field(..., description="all of those, listed or not")
    partners: list[CollaborationOut] = Field(
        ..., description="the known matches naming it (for a brand: its known partners), at most `edges`"
    )
    partners_total: int = Field(..., description="all of those, listed or not")


class SuggestionOut(BaseModel):
    concept: str
    label: str = Field(..., description="what to add: the concept, or 'a brighter picture'")
    kind: Literal["image", "property", "alt"] = Field(..., description="an ImageNet concept, brightness, alt text")
    lift: float = Field(..., description="held-out within-account effect, robust z of log-likes (the account's scale)")
    ci95: list[float] = Field(..., description="95 % simultaneous interval of the lift, above 0")
    posts: int = Field(..., description="held-out posts showing it, in accounts that also have posts without it")
    accounts: int = Field(..., description="held-out accounts comparing posts with and without it")
    reason: str = Field(..., description="why it fits this image")
    text: str


class ImageScoreOut(BaseModel):
    index: int
    filename: str
    score: float = Field(..., ge=0, le=10)
    rank: int
    suggestions: list[SuggestionOut]
    suggestion_note: str = Field("", description="why there are no suggestions (a sentence), '' when there are")


class EvidenceOut(BaseModel):
    name: str
    kind: str
    lift: float | None
    ci95: list[float | None]
    posts: int
    accounts: int
    qualified: bool


class ScoreBasisOut(BaseModel):
    corpus: str = Field(..., description="the folder(s) the training posts were ingested from")
    accounts: int
    posts: int
    held_out_accounts: int
    pairwise_accuracy: float | None = Field(..., description="held-out pairwise accuracy within accounts")
    pairs: int
    reference: dict[str, float] = Field(..., description="for scale: Imagion's model, an expert, an average person")
    concepts_screened: int = Field(..., description="candidate concepts looked at on the training accounts")
    concepts_tested: int = Field(..., description="those strong enough there to be tested on held-out accounts")
    concepts_qualified: list[str]
    sentence: str


class ExportJobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    done_brands: int
    total_brands: int
    rows: int | None = None
    skipped: list[dict[str, str]] = []
    error: str | None = None
    warnings: list[str] = Field(
        default_factory=list, description="why the filters may give less than they seem to ask for"
    )
    format: Format
    download_url: str | None = None


# -- responses ------------------------------------------------------------------------------
class MatchResponse(BaseModel):
    data: list[MatchHit]
    count: int
    ranking: str = Field(..., description="how the scores were computed")
    query_id: str | None = Field(None, description="a new brand's search: pass as ?query= to /v1/explain (kept 1 hour)")
    generation: int | None = Field(default=None, description="the published generation that answered")
    head: str | None = Field(default=None, description="the congruence head that answered (None: pooled cosine)")
    warnings: list[str] = Field(
        default_factory=list,
        description="why the filters may give less than they seem to ask for (e.g. a handle nobody tagged)",
    )


class ScoreResponse(BaseModel):
    data: list[ImageScoreOut]
    count: int
    model: str
    note: str = Field("", description="why scores or suggestions may say little (e.g. a text-only training corpus)")
    basis: ScoreBasisOut


class ScoreModelResponse(BaseModel):
    model: str
    basis: ScoreBasisOut
    evidence: list[EvidenceOut] = Field(..., description="every concept tested on held-out accounts, qualified first")
    method: str
    note: str = ""


class Health(BaseModel):
    status: Literal["ok"]


class ShardReadiness(BaseModel):
    shard: int | None = None
    ready: bool
    generation: int | None = None
    influencers: int | None = None
    head: str | None = None
    error: str | None = None  # why it is not ready


class Readiness(BaseModel):
    ready: bool
    database: str
    index: str
    influencers: int | None = None
    head: str | None = None
    generation: int | None = None  # the published generation answering
    load_error: str | None = None  # why a newer generation could not be loaded (the one before answers meanwhile)
    shards: list[ShardReadiness] | None = None  # sharded serving: each shard's readiness


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
