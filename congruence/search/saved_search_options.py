"""The options of a saved search (docs/saved-searches.md): what the user typed, kept as
versioned JSON and resolved when the search runs by the code ``match`` resolves them with
(``Filters.make``, ``Feedback.make``), so that a rerun stays equal to ``match`` with the same
options even after a default changes. ``micro`` stays a flag, an unset weight stays null.

The JSON (version 1)::

    {"version": 1, "k": 20, "posts": 0, "signals": "all",
     "filters": {Filters.make's arguments, "metrics": {MetricBounds' fields}},
     "feedback": {"like": [...], "dislike": [...], "like_weight": null, "dislike_weight": null}}

Read tolerantly: an absent key takes its default. A key this version does not know, or a newer
version, is refused with the search and the key named: it was saved by a newer congruence.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from congruence.core.errors import Conflict, CongruenceError, InvalidInput
from congruence.search.collab_rank import check_signals
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters
from congruence.search.metric_filters import MetricBounds
from congruence.search.retrieve import check_k

OPTIONS_VERSION = 1
DEFAULT_K = 20  # match's
MAX_POSTS = 12  # best posts per hit, as the API's ``posts``
_MAKE = inspect.signature(Filters.make).parameters
FILTER_ARGS = tuple(n for n in _MAKE if n not in ("cls", "metrics"))
METRIC_ARGS = tuple(f.name for f in dataclasses.fields(MetricBounds))
FEEDBACK_ARGS = ("like", "dislike", "like_weight", "dislike_weight")
_KEYS = ("version", "k", "posts", "signals", "filters", "feedback")


def _json(v: Any) -> Any:
    """A typed value as JSON keeps it (a date as ISO 8601, a tuple as a list)."""
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return [_json(x) for x in v]
    return v


@dataclass(frozen=True)
class SearchSpec:
    """What a saved search asks: the brand (None: a new brand, whose query is kept beside), k,
    the filters and the feedback as typed (``filters``: ``Filters.make``'s keyword arguments,
    ``metrics`` a dict of ``MetricBounds``' fields; ``feedback``: ``Feedback.make``'s), the
    signals and the best posts per hit (``posts``). JSON values; ``resolve`` checks them."""

    brand_id: str | None
    k: int = DEFAULT_K
    filters: Mapping[str, Any] = field(default_factory=dict)
    feedback: Mapping[str, Any] = field(default_factory=dict)
    signals: str = "all"
    posts: int = 0

    def __post_init__(self) -> None:
        check_k(self.k)
        check_signals(self.signals)
        if isinstance(self.posts, bool) or not isinstance(self.posts, int) or not 0 <= self.posts <= MAX_POSTS:
            raise InvalidInput(f"must be a whole number from 0 to {MAX_POSTS}, got {self.posts!r}", field="posts")

    @classmethod
    def typed(cls, brand_id: str | None, source: object, k: int, signals: str, posts: int = 0) -> SearchSpec:
        """The options as ``source`` holds them: a parsed command line or a request, whose
        attributes are named as the arguments of ``Filters.make``, ``MetricBounds`` and
        ``Feedback.make`` (an absent one: that argument's default)."""
        filters = {n: _json(getattr(source, n, _MAKE[n].default)) for n in FILTER_ARGS}
        metrics = {f.name: _json(getattr(source, f.name, f.default)) for f in dataclasses.fields(MetricBounds)}
        feedback = {n: _json(getattr(source, n, None)) for n in FEEDBACK_ARGS}
        return cls(brand_id, k, filters | {"metrics": metrics}, feedback, signals, posts)

    def resolve(self) -> tuple[Filters, Feedback]:
        """The ``Filters`` and ``Feedback`` these options ask for today, checked as ``match``
        checks them (InvalidInput naming the bad one)."""
        args = dict(self.filters)
        metrics = MetricBounds(**(args.pop("metrics", None) or {}))
        return Filters.make(**args, metrics=metrics), Feedback.make(**self.feedback)

    def same_as(self, filters: Filters, feedback: Feedback) -> SearchSpec:
        """This spec, once it is sure to resolve to what ``match`` built from the same input
        (``filters``, ``feedback``): a face that reads an option ``typed`` misses fails here."""
        if self.resolve() != (filters, feedback):
            raise RuntimeError(f"saved options {self.to_options()} resolve otherwise than match's {filters}")
        return self

    def to_options(self) -> dict[str, Any]:
        """The options as JSON takes them (``from_options`` reads them back)."""
        return {
            "version": OPTIONS_VERSION,
            "k": self.k,
            "posts": self.posts,
            "signals": self.signals,
            "filters": dict(self.filters),
            "feedback": dict(self.feedback),
        }

    @classmethod
    def from_options(cls, name: str, brand_id: str | None, options: Mapping[str, Any]) -> SearchSpec:
        """The spec kept as ``options`` by the saved search ``name``: absent keys take their
        defaults; an unknown key or a newer version is a Conflict naming the search and the key."""
        version = options.get("version", OPTIONS_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise Conflict(f"saved search {name!r} has an options version this congruence cannot read: {version!r}")
        if version > OPTIONS_VERSION:
            raise Conflict(
                f"saved search {name!r} was saved by a newer congruence (options version {version}; "
                f"this one reads version {OPTIONS_VERSION})"
            )
        _known(name, options, _KEYS, "")
        filters = dict(_section(name, options, "filters"))
        _known(name, filters, (*FILTER_ARGS, "metrics"), "filters.")
        if "metrics" in filters:
            filters["metrics"] = _section(name, filters, "metrics", "filters.")
            _known(name, filters["metrics"], METRIC_ARGS, "filters.metrics.")
        feedback = _section(name, options, "feedback")
        _known(name, feedback, FEEDBACK_ARGS, "feedback.")
        try:
            return cls(
                brand_id,
                options.get("k", DEFAULT_K),
                filters,
                feedback,
                options.get("signals", "all"),
                options.get("posts", 0),
            )
        except CongruenceError as e:
            raise InvalidInput(f"saved search {name!r}: {e}") from None


def _section(name: str, options: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = options.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Conflict(f"saved search {name!r}: option {where + key!r} is not an object: {value!r}")
    return value


def _known(name: str, options: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    unknown = sorted(set(options) - set(keys))
    if unknown:
        raise Conflict(
            f"saved search {name!r} has an option this congruence does not know, {where + unknown[0]!r}: "
            "it was saved by a newer congruence"
        )
