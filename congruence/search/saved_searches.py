"""Saved searches (docs/saved-searches.md): a match kept under a name, rerun later, each run
compared with the one before it: who is new (ingested since, or moved into the top k), who
is gone (deleted from the store since), and what else changed (the options, the head).

The options are kept as typed (``saved_search_options.SearchSpec``) and resolved when the
search runs, as ``match`` resolves them. A new brand is kept as its encoder outputs and its
query rebuilt for the head in service at each run (``Engine.describe_encoded``), so a retrain
does not break it. Everything is checked when the search is saved (by running it once); what
a run finds changed since (a liked influencer deleted, a list deleted) it says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.core.errors import CongruenceError, InvalidInput, ModelMismatch, NotFound
from congruence.search.collab_rank import Signals
from congruence.search.engine import BrandQuery, Engine
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters
from congruence.search.hits import Hit
from congruence.search.saved_search_options import MAX_POSTS, SearchSpec
from congruence.search.snapshot import Snapshot
from congruence.store import saved_searches as stored
from congruence.store.saved_searches import Mode, NewRun, Run, SavedSearch, StoredQuery

__all__ = ["MAX_POSTS", "MOVED_IN", "NEWLY_INGESTED", "RunResult", "SearchSpec", "run_search", "save_search"]

NEWLY_INGESTED = "newly ingested"  # the account did not exist at the previous run
MOVED_IN = "moved in"  # it existed, but was not in the previous run's top k
OPTIONS_CHANGED = (
    "the options changed since the previous run (the search was updated): what is marked new compares "
    "with a run of the old options"
)
NOT_RECORDED = (
    "this run was not recorded: the previous run answered from a newer snapshot, and the next run "
    "compares with that one"
)


def head_changed(before: str, now: str) -> str:
    return (
        f"another model ranks since the previous run ({before} then, {now} now): "
        '"moved in" includes re-ranking by the new head'
    )


@dataclass(frozen=True)
class RunResult:
    """A run of a saved search. filters, feedback: as resolved for this run; marks: (new, why)
    of each hit, aligned (why: ``NEWLY_INGESTED`` or ``MOVED_IN``; nothing is new at the first
    run); gone: the previous run's influencers deleted from the store since; previous: the run
    compared with (None: the first); recorded: this run as kept (None when not recorded)."""

    search: SavedSearch
    spec: SearchSpec
    filters: Filters
    feedback: Feedback
    snap: Snapshot
    hits: list[Hit]
    marks: list[tuple[bool, str | None]]
    gone: list[str]
    previous: Run | None
    recorded: Run | None
    warnings: list[str]
    used: Signals


def query_of(engine: Engine, kept: StoredQuery | None, snap: Snapshot) -> BrandQuery | None:
    """A kept new brand's query in the space of ``snap`` (None: a brand of the corpus)."""
    if kept is None:
        return None
    images = np.zeros((0, engine.ids.d_image), np.float32) if kept.images is None else kept.images
    return engine.describe_encoded(images, kept.text, snap)


def rank(
    engine: Engine,
    spec: SearchSpec,
    filters: Filters,
    feedback: Feedback,
    query: BrandQuery | None,
    snap: Snapshot,
) -> list[Hit]:
    """The hits of ``spec`` on ``snap``: ``match_brand`` or ``match_query``, as ``match`` calls them."""
    if spec.brand_id is not None:
        return engine.match_brand(spec.brand_id, spec.k, filters, spec.posts, feedback, snap, spec.signals)
    assert query is not None
    return engine.match_query(query, spec.k, filters, spec.posts, feedback, snap, spec.signals)


def save_search(
    engine: Engine, name: str, spec: SearchSpec, query: BrandQuery | None, actor: str, mode: Mode = "create"
) -> SavedSearch:
    """Keep ``spec`` (with ``query``, a new brand's: its encoder outputs are kept) as ``name``,
    once it has run without error (an unknown brand, category or list, a feedback id of no
    influencer: refused now). mode: ``store.saved_searches.save``'s."""
    stored.check_name(name)
    if (spec.brand_id is None) == (query is None):
        raise InvalidInput("give either a brand of the corpus or a new brand's query, not both", field="brand_id")
    kept = None
    if query is not None:
        if query.images is None:
            raise InvalidInput("this new brand's encodings were not kept: describe it again", field="query_id")
        kept = StoredQuery(query.images if len(query.images) else None, query.text)
    filters, feedback = spec.resolve()
    snap = engine.current()
    rank(engine, spec, filters, feedback, query_of(engine, kept, snap), snap)
    with engine.reading() as store:
        return stored.save(store, name, spec.brand_id, spec.to_options(), kept, actor, mode)


def options_hash(search: SavedSearch) -> str:
    """What a run ran with, hashed: the brand (or the new brand's encodings) and the options."""
    h = hashlib.sha256(json.dumps([search.brand_id, search.options], sort_keys=True).encode())
    if search.query is not None:
        for a in (search.query.images, search.query.text):
            h.update(b"-" if a is None else np.ascontiguousarray(a, np.float32).tobytes())
    return h.hexdigest()[:16]


def what_is_new(ids: Sequence[str], seqs: Sequence[int], previous: Run | None) -> list[tuple[bool, str | None]]:
    """(new, why) of each id (``seqs``: their account seqs, aligned) against ``previous``."""
    if previous is None:
        return [(False, None)] * len(ids)
    before = set(previous.influencer_ids)
    return [
        (False, None) if a in before else (True, NEWLY_INGESTED if s > previous.max_seq else MOVED_IN)
        for a, s in zip(ids, seqs, strict=True)
    ]


def _resolved(engine: Engine, name: str, spec: SearchSpec) -> tuple[Filters, Feedback, list[str]]:
    """The options resolved for this run (the excluded list read now), less the liked and
    disliked influencers deleted since, with a warning for each."""
    try:
        filters, feedback = spec.resolve()
    except CongruenceError as e:
        raise InvalidInput(f"saved search {name!r}: {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise InvalidInput(f"saved search {name!r} has options this congruence cannot read: {e}") from None
    try:
        filters = engine.with_lists(filters)
    except NotFound as e:
        raise NotFound(
            f"saved search {name!r} leaves out the campaign list {filters.exclude_list!r}, which no longer "
            "exists: update the search (its runs stay) to leave out another list, or none"
        ) from e
    kinds = engine.account_kinds(feedback.ids) if feedback.active else {}
    warnings = [
        f"{what} influencer {a!r} no longer exists (deleted since the search was saved): left out of the feedback"
        for what, ids in (("liked", feedback.like), ("disliked", feedback.dislike))
        for a in ids
        if a not in kinds
    ]
    if warnings:
        like, dislike = (tuple(a for a in ids if a in kinds) for ids in (feedback.like, feedback.dislike))
        feedback = dataclasses.replace(feedback, like=like, dislike=dislike)
    return filters, feedback, warnings


def _snapshot_seqs(snap: Snapshot, ids: Sequence[str]) -> list[int]:
    """The seqs of ``ids`` in the snapshot that ranked them (not the live store's)."""
    wanted = set(ids)
    t = snap.table
    seq_of = {a: int(s) for a, s in zip(t.ids, t.seq, strict=True) if a in wanted}
    return [seq_of[a] for a in ids]


def _changes(previous: Run | None, new: NewRun, record: bool, recorded: Run | None) -> list[str]:
    """What a run says changed since the previous one, besides who is new."""
    if previous is None:
        return []
    out = []
    if previous.options_hash != new.options_hash:
        out.append(OPTIONS_CHANGED)
    if previous.space != new.space:
        out.append(head_changed(previous.space, new.space))
    if record and recorded is None:
        out.append(NOT_RECORDED)
    return out


def run_search(engine: Engine, name: str, record: bool = True) -> RunResult:
    """Run the saved search ``name`` on the snapshot in service, then (in one transaction
    holding the search's row) read its previous run, compare, and (``record``) keep this run."""
    with engine.reading() as store:
        search = stored.get(store, name)
    spec = SearchSpec.from_options(name, search.brand_id, search.options)
    filters, feedback, warnings = _resolved(engine, name, spec)
    snap = engine.current()
    try:
        hits = rank(engine, spec, filters, feedback, query_of(engine, search.query, snap), snap)
    except (NotFound, ModelMismatch) as e:  # its brand was deleted since it was saved; another encoder
        raise type(e)(f"saved search {name!r}: {e}") from e
    used = engine.signals(snap, spec.signals, brand_id=spec.brand_id, feedback=feedback)
    ids = [h.influencer_id for h in hits]
    max_seq = int(snap.table.seq.max()) if len(snap.table.seq) else 0
    new = NewRun(ids, [h.score for h in hits], max_seq, snap.generation, snap.space, options_hash(search))
    with engine.reading() as store:
        previous, recorded = stored.record_run(store, search.id, new, record)
        before = list(previous.influencer_ids) if previous else []
        gone = [a for a, s in zip(before, store.seqs_of(before), strict=True) if s < 0]
    return RunResult(
        search,
        spec,
        filters,
        feedback,
        snap,
        hits,
        what_is_new(ids, _snapshot_seqs(snap, ids), previous),
        gone,
        previous,
        recorded,
        filters.warnings(snap.collabs) + warnings + _changes(previous, new, record, recorded),
        used,
    )
