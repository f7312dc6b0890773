"""What a query returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class PostRef:
    post_id: str
    score: float


@dataclass(frozen=True)
class Hit:
    influencer_id: str
    handle: str
    category: str
    followers: int | None
    score: float
    rank: int
    top_posts: tuple[PostRef, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["top_posts"] = [asdict(p) for p in self.top_posts]
        return d
