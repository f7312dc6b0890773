"""What the routes share in reading a request: its filters and feedback, and the ranking text
that says how the list was scored."""

from __future__ import annotations

from congruence.api.schemas import FeedbackFields, FilterFields
from congruence.search.collab_rank import Signals
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters


def filters_of(f: FilterFields) -> Filters:
    """The request's filters, checked (``Filters.make``)."""
    return Filters.make(
        f.category,
        f.min_followers,
        f.max_followers,
        micro=f.micro,
        brand_safe=f.brand_safe,
        exclude_categories=f.exclude_categories,
        safe_last=f.safe_last,
        metrics=f.bounds(),
        worked_with=f.worked_with,
        not_worked_with=f.not_worked_with,
        since=f.since,
        exclude_list=f.exclude_list,
        exclude_status=f.exclude_status,
    )


def feedback_of(f: FeedbackFields) -> Feedback:
    """The request's feedback, checked (``Feedback.make``)."""
    return Feedback.make(f.like, f.dislike, f.like_weight, f.dislike_weight)


def signals_text(used: Signals) -> str:
    """The signals that served a list, as ``ranking`` ends."""
    return f"; signals: {used.describe()}"


def ranking_text(base: str, feedback: Feedback, head: bool) -> str:
    """How a list was scored, in words: ``base``, and the feedback terms when there was feedback
    (``FeedbackParams.describe``; ``head``: a head was in service)."""
    return base + feedback.params.describe(head) if feedback.active else base
