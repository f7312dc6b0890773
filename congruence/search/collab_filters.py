"""The collaboration filters (docs/collaborations.md, "Filters"): creators who worked with any
of some handles, and (exclusivity) creators who did not work with a competitor, or not since a
date. Checked once at the boundary (``Filters.make``), applied as a row mask over a snapshot's
``CollabIndex``.

To have worked with a handle is to have an edge of ``WORKED_KINDS`` to it: a tag, a sponsor
of a paid partnership, a known match. A caption @mention is no collaboration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.store.collab_index import CollabIndex
from congruence.store.collaborations import DEFAULT_KINDS, is_username, normal_handle

WORKED_KINDS = DEFAULT_KINDS  # tag, sponsor, match
MAX_HANDLES = 100  # per filter
MAX_HANDLE_CHARS = 100


def check_handles(handles: Sequence[str] | None, field: str) -> tuple[str, ...]:
    """``handles`` in normal form (``normal_handle``), without duplicates, sorted (one filter
    however they were ordered); InvalidInput naming ``field`` otherwise."""
    if handles is None:
        return ()
    if isinstance(handles, str) or not isinstance(handles, Sequence):
        raise InvalidInput(f"expects a list of handles, got {type(handles).__name__}", field=field)
    if len(handles) > MAX_HANDLES:
        raise InvalidInput(f"takes at most {MAX_HANDLES} handles, got {len(handles)}", field=field)
    out = set()
    for h in handles:
        if not isinstance(h, str):
            raise InvalidInput(f"expects handles (strings), got {h!r}", field=field)
        if len(h) > MAX_HANDLE_CHARS:
            raise InvalidInput(f"{h[:20]!r}... is longer than {MAX_HANDLE_CHARS} characters", field=field)
        key = normal_handle(h)
        if not key or "\x00" in key:
            raise InvalidInput(f"{h!r} is no handle", field=field)
        out.add(key)
    return tuple(sorted(out))


def check_since(since: str | date | None) -> str | None:
    """``since`` as an ISO date (YYYY-MM-DD), or None; InvalidInput naming ``since`` otherwise."""
    if since is None:
        return None
    if isinstance(since, datetime):  # a datetime is a date too: its day is meant
        return since.date().isoformat()
    if isinstance(since, date):
        return since.isoformat()
    if isinstance(since, str):
        try:
            return date.fromisoformat(since.strip()).isoformat()
        except ValueError:
            pass
    raise InvalidInput(f"must be a date, YYYY-MM-DD, got {since!r}", field="since")


def check_collab_filters(
    worked_with: Sequence[str] | None, not_worked_with: Sequence[str] | None, since: str | date | None
) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """(worked_with, not_worked_with, since) checked: handles in normal form, ``since`` an ISO date."""
    worked = check_handles(worked_with, "worked_with")
    excluded = check_handles(not_worked_with, "not_worked_with")
    day = check_since(since)
    if day is not None and not excluded:  # a bound nothing reads: the user meant an exclusion
        raise InvalidInput(
            f"({day}) applies only with handles not worked with (exclusivity): it leaves out those "
            "who worked with them on or after that day",
            field="since",
        )
    both = sorted(set(worked) & set(excluded))
    if both and day is None:
        raise InvalidInput(
            f"{both[0]!r} is also among the handles worked with, so no one can pass (with a since "
            "date, those who worked with it only before that day would)",
            field="not_worked_with",
        )
    return worked, excluded, day


def since_epoch(day: str) -> float:
    """The first second of ``day`` (ISO date), UTC, in epoch seconds."""
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp()


def collab_rows(
    collabs: CollabIndex | None, worked_with: Sequence[str], not_worked_with: Sequence[str], since: str | None
) -> np.ndarray:
    """(n,) bool over ``collabs``' rows: worked with any of ``worked_with`` (when given), and
    with none of ``not_worked_with`` (since ``since``: on or after that day; a known match,
    undated, always counts)."""
    if collabs is None:
        raise InvalidInput("collaboration filters need the collaboration graph, which this snapshot did not read")
    ok = np.ones(len(collabs), bool)
    if worked_with:
        ok &= collabs.with_any(worked_with, WORKED_KINDS)
    if not_worked_with:
        ok &= ~collabs.with_any(not_worked_with, WORKED_KINDS, None if since is None else since_epoch(since))
    return ok


def collab_warnings(
    collabs: CollabIndex | None, worked_with: Sequence[str], not_worked_with: Sequence[str]
) -> list[str]:
    """Why a collaboration filter reads nothing: a handle that no creator tagged, was sponsored
    by, or is a known match of (a typo, or a brand never named). Not an error: the answer is
    what the filter gives (none worked with it), and this says why."""
    if collabs is None or not (worked_with or not_worked_with):
        return []
    out = []
    for field, handles, effect in (
        ("worked_with", worked_with, "no creator worked with it"),
        ("not_worked_with", not_worked_with, "it leaves no one out"),
    ):
        for h in handles:
            if not collabs.named(h, WORKED_KINDS):
                kept = "" if is_username(h) else " (not an Instagram username: compared exactly)"
                out.append(f"{field}: nobody tagged {h!r}{kept}, was sponsored by it or is its known match: {effect}")
    return out
