"""The relevance-feedback flags of `match` and `similar`: --like, --dislike and their weights."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from congruence.search.feedback import Feedback


def feedback_args(p: argparse.ArgumentParser) -> None:
    """--like, --dislike and their weights."""
    from congruence.search.feedback import PARAMS

    p.add_argument(
        "--like",
        nargs="+",
        metavar="INFLUENCER",
        default=None,
        help="influencers you liked: move the search toward them (they are not suggested again)",
    )
    p.add_argument(
        "--dislike",
        nargs="+",
        metavar="INFLUENCER",
        default=None,
        help="influencers you disliked: move the search away from them (they never come back)",
    )
    p.add_argument(
        "--like-weight",
        type=float,
        default=None,
        help=f"weight of the liked (default {PARAMS.like_weight}; 0 here or in --dislike-weight also drops "
        "what tells the liked from the disliked)",
    )
    p.add_argument(
        "--dislike-weight",
        type=float,
        default=None,
        help=f"weight of the disliked: the closest, and (once something is liked) a push that grows "
        f"with every disliked one nearby (default {PARAMS.dislike_weight})",
    )


def feedback_of(args: argparse.Namespace) -> Feedback:
    from congruence.search.feedback import Feedback

    return Feedback.make(
        getattr(args, "like", None),
        getattr(args, "dislike", None),
        getattr(args, "like_weight", None),
        getattr(args, "dislike_weight", None),
    )
