"""The campaign-list filters (docs/lists.md, "Searches leave out listed creators"): leave out the
influencers of a list (``exclude_list``), or only those with some statuses (``exclude_status``).
Checked once at the boundary (``Filters.make``); the list is read when the search runs
(``resolve``: lists change between snapshots, so its members travel in the filter, as seqs, and a
changed list is another filter with its own selection); applied as a row mask of the selection,
so that k hits come back whenever k influencers pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.store.list_views import listed_seqs
from congruence.store.lists import check_name, check_statuses
from congruence.store.records import Store

if TYPE_CHECKING:
    from congruence.search.filters import Filters


def check_list_filters(
    exclude_list: str | None, exclude_status: Sequence[str] | str | None
) -> tuple[str | None, tuple[str, ...]]:
    """(list name, statuses) checked; ``exclude_status`` may be one string of statuses separated
    by commas (contacted,declined)."""
    name = None
    if exclude_list is not None:
        try:
            name = check_name(exclude_list)
        except InvalidInput as e:
            raise InvalidInput(e.message, field="exclude_list") from None
    if isinstance(exclude_status, str):
        exclude_status = [s for s in exclude_status.split(",") if s.strip()]
    statuses = check_statuses(list(exclude_status or ()), "exclude_status")
    if statuses and name is None:
        raise InvalidInput(
            f"({','.join(statuses)}) applies only with a list to exclude (exclude_list): it narrows which of "
            "its influencers are left out",
            field="exclude_status",
        )
    return name, statuses


def resolve(store: Store, filters: Filters) -> Filters:
    """``filters`` with the members of its list to exclude read now (``Filters.listed``); as it is
    when it excludes no list or was resolved already. NotFound for an unknown list."""
    if filters.exclude_list is None or filters.listed is not None:
        return filters
    seqs = listed_seqs(store, filters.exclude_list, filters.exclude_status)
    return dataclasses.replace(filters, listed=tuple(seqs))


def unlisted_rows(seq: np.ndarray, listed: tuple[int, ...] | None) -> np.ndarray:
    """(n,) bool over a table's rows (``seq``: their seqs): not among the ``listed`` seqs."""
    if listed is None:
        raise ValueError("a list filter must be resolved (list_filters.resolve) before it selects")
    return ~np.isin(seq, np.asarray(listed, np.int64))
