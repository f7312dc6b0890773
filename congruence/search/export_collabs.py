"""The export's collaboration columns, read from the snapshot's ``CollabIndex`` (never one query
per row): ``collaborations``, how many distinct handles the influencer worked with (a tag, a
sponsor, a known match: ``collab_filters.WORKED_KINDS``), and ``collaborated_with``, its edges
with the handles the export's filters name (``worked_with``, ``not_worked_with``), written
``handle:kind:posts:last`` and ';'-separated (``nike:tag:3:2024-05-01;adidas:match:0:``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from congruence.search.collab_filters import WORKED_KINDS
from congruence.search.filters import Filters
from congruence.store.collab_index import CollabIndex
from congruence.store.collaborations import KINDS


@dataclass(frozen=True)
class CollabColumns:
    """The two columns for rows of one snapshot's table. collabs: its graph (None: not read,
    both columns null); named: the handles (normal form) ``collaborated_with`` lists the edges
    to, in the order it lists them (none: that column is null)."""

    collabs: CollabIndex | None
    named: tuple[str, ...] = ()

    @classmethod
    def of(cls, collabs: CollabIndex | None, filters: Filters) -> CollabColumns:
        """The columns of an export with ``filters``: the handles both collaboration filters name."""
        return cls(collabs, tuple(dict.fromkeys((*filters.worked_with, *filters.not_worked_with))))

    @functools.cached_property
    def texts(self) -> dict[int, str]:
        """Row -> its ``collaborated_with`` text, for the rows with an edge to a named handle:
        the handles in ``named``'s order, each one's edges in ``KINDS``' order."""
        c = self.collabs
        if c is None or not self.named:
            return {}
        rank = {int(code): i for i, code in enumerate(c.codes(self.named))}
        edges = np.flatnonzero(np.isin(c.handle, list(rank)) & c.edge_mask(WORKED_KINDS))
        parts: dict[int, list[tuple[int, int, str]]] = {}
        for e in edges.tolist():
            h, k, last = int(c.handle[e]), int(c.kind[e]), float(c.last_at[e])
            day = "" if np.isnan(last) else datetime.fromtimestamp(last, UTC).date().isoformat()
            text = f"{c.handles[h]}:{KINDS[k]}:{int(c.posts[e])}:{day}"
            parts.setdefault(int(c.rows[e]), []).append((rank[h], k, text))
        return {r: ";".join(t for _, _, t in sorted(p)) for r, p in parts.items()}

    def arrays(self, rows: np.ndarray) -> list[pa.Array]:
        """collaborations (int32), collaborated_with (string) of ``rows`` (positions in the table)."""
        if self.collabs is None:
            return [pa.nulls(len(rows), pa.int32()), pa.nulls(len(rows), pa.string())]
        counts = pa.array(self.collabs.worked_with_counts[rows], pa.int32())
        if not self.named:
            return [counts, pa.nulls(len(rows), pa.string())]
        texts = self.texts
        return [counts, pa.array([texts.get(r, "") for r in rows.tolist()], pa.string())]
