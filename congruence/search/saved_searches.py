"""Saved searches (docs/saved-searches.md): a match kept under a name, rerun later, each run
compared with the one before it: who is new (ingested since, or moved into the top k), who
is gone (deleted from the store since).

The options are kept as the search's own values (``SearchSpec.to_options``): the ``Filters``
and ``Feedback`` that ``match`` builds from the same command line or request, written as JSON
and read back into equal objects, so a rerun ranks exactly as ``match`` with those options
does. Everything is checked when the search is saved (by running it once), not when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from congruence.core.errors import InvalidInput, ModelMismatch, NotFound
from congruence.search.collab_rank import Signals, check_signals
from congruence.search.engine import BrandQuery, Engine
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters
from congruence.search.hits import Hit
from congruence.search.retrieve import check_k
from congruence.search.snapshot import Snapshot
from congruence.store import saved_searches as stored
from congruence.store.saved_searches import Run, SavedSearch, StoredQuery

NEWLY_INGESTED = "newly ingested"  # the account did not exist at the previous run
MOVED_IN = "moved in"  # it existed, but was not in the previous run's top k
MAX_POSTS = 12  # best posts per hit, as the API's ``posts``


@dataclass(frozen=True)
class SearchSpec:
    """What a saved search asks: the brand (None: a new brand, whose query is kept beside), k,
    the filters, the feedback, the signals and the best posts per hit (``posts``)."""

    brand_id: str | None
    k: int
    filters: Filters = Filters()
    feedback: Feedback = Feedback()
    signals: str = "all"
    posts: int = 0

    def __post_init__(self) -> None:
        check_k(self.k)
        check_signals(self.signals)
        if isinstance(self.posts, bool) or not isinstance(self.posts, int) or not 0 <= self.posts <= MAX_POSTS:
            raise InvalidInput(f"must be a whole number from 0 to {MAX_POSTS}, got {self.posts!r}", field="posts")

    def to_options(self) -> dict[str, Any]:
        """The options as JSON takes them (``from_options`` reads them back)."""
        filters = self.filters.to_json()
        filters.pop("listed")  # read when the search runs, never kept
        fb = self.feedback
        feedback = {
            "like": list(fb.like),
            "dislike": list(fb.dislike),
            "like_weight": fb.params.like_weight,
            "dislike_weight": fb.params.dislike_weight,
        }
        return {"k": self.k, "posts": self.posts, "signals": self.signals, "filters": filters, "feedback": feedback}

    @classmethod
    def from_options(cls, brand_id: str | None, options: dict[str, Any]) -> SearchSpec:
        fb = options["feedback"]
        return cls(
            brand_id,
            options["k"],
            Filters(**options["filters"]),
            Feedback.make(fb["like"], fb["dislike"], fb["like_weight"], fb["dislike_weight"]),
            options["signals"],
            options["posts"],
        )


@dataclass(frozen=True)
class RunResult:
    """A run of a saved search. marks: (new, why) of each hit, aligned (why: ``NEWLY_INGESTED``
    or ``MOVED_IN``; nothing is new at the first run); gone: the previous run's influencers
    deleted from the store since; previous: the run compared with (None: the first);
    recorded: this run as kept (None when not recorded: a read-only server)."""

    search: SavedSearch
    spec: SearchSpec
    snap: Snapshot
    hits: list[Hit]
    marks: list[tuple[bool, str | None]]
    gone: list[str]
    previous: Run | None
    recorded: Run | None
    warnings: list[str]
    used: Signals


def query_of(search: SavedSearch) -> BrandQuery | None:
    q = search.query
    return None if q is None else BrandQuery(q.vector, q.posts, q.space)


def rank(engine: Engine, spec: SearchSpec, query: BrandQuery | None, snap: Snapshot) -> list[Hit]:
    """The hits of ``spec`` on ``snap``: ``match_brand`` or ``match_query``, as ``match`` calls them."""
    if spec.brand_id is not None:
        return engine.match_brand(spec.brand_id, spec.k, spec.filters, spec.posts, spec.feedback, snap, spec.signals)
    assert query is not None
    return engine.match_query(query, spec.k, spec.filters, spec.posts, spec.feedback, snap, spec.signals)


def save_search(
    engine: Engine, name: str, spec: SearchSpec, query: BrandQuery | None, actor: str, replace: bool = False
) -> SavedSearch:
    """Keep ``spec`` (with ``query``, a new brand's) as ``name``, once it has run without error
    (an unknown brand, category or list, a feedback id of no influencer: refused now)."""
    stored.check_name(name)
    if (spec.brand_id is None) == (query is None):
        raise InvalidInput("give either a brand of the corpus or a new brand's query, not both", field="brand_id")
    rank(engine, spec, query, engine.current())
    kept = None if query is None else StoredQuery(query.space, query.vector, query.posts)
    with engine.reading() as store:
        return stored.save(store, name, spec.brand_id, spec.to_options(), kept, actor, replace)


def what_is_new(ids: Sequence[str], seqs: Sequence[int], previous: Run | None) -> list[tuple[bool, str | None]]:
    """(new, why) of each id (``seqs``: their account seqs, aligned) against ``previous``."""
    if previous is None:
        return [(False, None)] * len(ids)
    before = set(previous.influencer_ids)
    return [
        (False, None) if a in before else (True, NEWLY_INGESTED if s > previous.max_seq else MOVED_IN)
        for a, s in zip(ids, seqs, strict=True)
    ]


def run_search(engine: Engine, name: str, record: bool = True) -> RunResult:
    """Run the saved search ``name`` on the snapshot in service, compare it with its previous
    run and (``record``) keep this run for the next one."""
    with engine.reading() as store:
        search = stored.get(store, name)
        previous = stored.last_run(store, search.id)
    spec = SearchSpec.from_options(search.brand_id, search.options)
    snap = engine.current()
    query = query_of(search)
    if query is not None and query.space != snap.space:
        raise ModelMismatch(
            f"saved search {name!r} describes its brand in {query.space!r}, but {snap.space!r} is in service now: "
            "save it again from the brand's images and text (--replace)"
        )
    try:
        hits = rank(engine, spec, query, snap)
    except NotFound as e:  # its brand, or the list it leaves out, was deleted since it was saved
        raise NotFound(f"saved search {name!r}: {e}") from e
    used = engine.signals(snap, spec.signals, brand_id=spec.brand_id, feedback=spec.feedback)
    ids = [h.influencer_id for h in hits]
    max_seq = int(snap.table.seq.max()) if len(snap.table.seq) else 0
    with engine.reading() as store:
        seqs = store.seqs_of(ids)
        before = list(previous.influencer_ids) if previous else []
        gone = [a for a, s in zip(before, store.seqs_of(before), strict=True) if s < 0]
        recorded = (
            stored.record_run(store, search.id, ids, [h.score for h in hits], max_seq, snap.generation)
            if record
            else None
        )
    return RunResult(
        search,
        spec,
        snap,
        hits,
        what_is_new(ids, seqs, previous),
        gone,
        previous,
        recorded,
        spec.filters.warnings(snap.collabs),
        used,
    )
