"""The collaboration graph as search reads it: every edge of a snapshot's influencers, aligned
with its table (rows in CSR order), for the collaboration filters and the collaboration signal.

An edge is keyed by its handle in normal form (``collab_handle``); a known match is keyed by
its brand's handle, so a brand's tags and its matches meet on one key. Read once per snapshot,
like the metrics and the safety screen (``loader``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.store.collaborations import DEFAULT_KINDS, KINDS
from congruence.store.records import Store
from congruence.store.rows import AccountTable

KIND_CODE = {k: i for i, k in enumerate(KINDS)}


@dataclass(frozen=True, eq=False)  # hashed by identity: a signal is cached per graph
class CollabIndex:
    """Edges of the table's rows, grouped by row: row i's edges are ``indptr[i]:indptr[i+1]``.

    handle: (E,) int32 code of the edge's handle in ``handles``; kind: (E,) int8 code in
    ``store.collaborations.KINDS``; posts, sponsored: (E,) int32 counts (0 for a match);
    last_at: (E,) float64 epoch seconds of the newest post naming the handle (NaN: undated, as
    a known match is). ``version`` changes whenever any edge does.
    """

    indptr: np.ndarray
    handle: np.ndarray
    kind: np.ndarray
    posts: np.ndarray
    sponsored: np.ndarray
    last_at: np.ndarray
    handles: Sequence[str]
    version: str

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @functools.cached_property
    def code(self) -> dict[str, int]:
        """handle (normal form) -> its code."""
        return {h: i for i, h in enumerate(self.handles)}

    @functools.cached_property
    def rows(self) -> np.ndarray:
        """(E,) int64 the table row of each edge."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.indptr))

    @functools.cached_property
    def worked_with_counts(self) -> np.ndarray:
        """(n,) int32: how many distinct handles each row has an edge of ``DEFAULT_KINDS`` to
        (a tag, a sponsor, a known match; a handle tagged and matched counts once)."""
        ok = self.edge_mask(DEFAULT_KINDS)
        pairs = np.unique(self.rows[ok] * max(len(self.handles), 1) + self.handle[ok])
        return np.bincount(pairs // max(len(self.handles), 1), minlength=len(self)).astype(np.int32)

    def tag_counts(self, rows: np.ndarray, own: Sequence[str] = ()) -> np.ndarray:
        """(len(rows),) float64: how many distinct handles each of ``rows`` tagged or was sponsored
        by, but the handles ``own`` (a brand itself): a creator's propensity to work with brands,
        from its posts alone (a known match is a label, not a post)."""
        rows = np.asarray(rows, np.int64)
        out = self._tagged[rows].astype(np.float64)
        codes = self.codes(own)
        if len(codes):
            ok = self.edge_mask(("tag", "sponsor")) & np.isin(self.handle, codes)
            pairs = np.unique(self.rows[ok] * max(len(self.handles), 1) + self.handle[ok])
            touched = np.bincount(pairs // max(len(self.handles), 1), minlength=len(self))
            out -= touched[rows]
        return out

    @functools.cached_property
    def _tagged(self) -> np.ndarray:
        ok = self.edge_mask(("tag", "sponsor"))
        pairs = np.unique(self.rows[ok] * max(len(self.handles), 1) + self.handle[ok])
        return np.bincount(pairs // max(len(self.handles), 1), minlength=len(self)).astype(np.int32)

    @functools.cached_property
    def handle_kinds(self) -> np.ndarray:
        """(H,) uint8: per handle, the kinds some edge to it has (bit ``KIND_CODE[k]`` for kind k)."""
        out = np.zeros(len(self.handles), np.uint8)
        np.bitwise_or.at(out, self.handle, np.left_shift(1, self.kind).astype(np.uint8))
        return out

    def named(self, handle: str, kinds: Sequence[str]) -> bool:
        """Whether some edge of ``kinds`` names ``handle`` (normal form); no pass over the edges."""
        code = self.code.get(handle)
        bits = sum(1 << KIND_CODE[k] for k in kinds)
        return code is not None and bool(self.handle_kinds[code] & bits)

    def codes(self, handles: Sequence[str]) -> np.ndarray:
        """Codes of those of ``handles`` (normal form) some edge names; the others are dropped."""
        return np.asarray([c for h in handles if (c := self.code.get(h)) is not None], np.int32)

    def edge_mask(self, kinds: Sequence[str]) -> np.ndarray:
        """(E,) bool: the edges of ``kinds``."""
        return np.isin(self.kind, [KIND_CODE[k] for k in kinds])

    def with_any(self, handles: Sequence[str], kinds: Sequence[str], since: float | None = None) -> np.ndarray:
        """(n,) bool: the rows with an edge of ``kinds`` to any of ``handles`` (normal form);
        ``since`` (epoch seconds): only an edge whose newest post is that recent, or undated."""
        ok = np.isin(self.handle, self.codes(handles)) & self.edge_mask(kinds)
        if since is not None:
            with np.errstate(invalid="ignore"):
                ok &= ~(self.last_at < since)  # NaN (undated) stays: a match may be current
        out = np.zeros(len(self), bool)
        out[self.rows[ok]] = True
        return out


def empty_collabs(n: int) -> CollabIndex:
    z = np.zeros(0)
    return CollabIndex(
        np.zeros(n + 1, np.int64),
        z.astype(np.int32),
        z.astype(np.int8),
        z.astype(np.int32),
        z.astype(np.int32),
        z,
        (),
        "0",
    )


def load_collabs(store: Store, table: AccountTable) -> CollabIndex:
    """Every edge (``collaboration_edges``, every kind) of ``table``'s accounts."""
    n = len(table.seq)
    rows = store.conn.execute(
        "SELECT a.seq, e.kind, e.handle, e.posts, e.sponsored_posts, extract(epoch FROM e.last_at)"
        " FROM collaboration_edges e JOIN accounts a ON a.id = e.account_id WHERE a.kind = 'influencer'"
        " ORDER BY a.seq, e.kind, e.handle"
    ).fetchall()
    if not n or not rows:
        return dataclasses.replace(empty_collabs(n), version=_version(empty_collabs(n)))
    row_of = np.full(int(table.seq.max()) + 1, -1, np.int64)
    row_of[table.seq] = np.arange(n)
    seq = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
    at = np.where(seq < len(row_of), row_of[np.minimum(seq, len(row_of) - 1)], -1)
    keep = np.flatnonzero(at >= 0)
    names: dict[str, int] = {}
    handle = np.fromiter((names.setdefault(rows[i][2], len(names)) for i in keep), np.int32, count=len(keep))
    kind = np.fromiter((KIND_CODE[rows[i][1]] for i in keep), np.int8, count=len(keep))
    posts = np.fromiter((rows[i][3] for i in keep), np.int32, count=len(keep))
    sponsored = np.fromiter((rows[i][4] for i in keep), np.int32, count=len(keep))
    last = np.fromiter((np.nan if rows[i][5] is None else float(rows[i][5]) for i in keep), np.float64, count=len(keep))
    row = at[keep]
    order = np.argsort(row, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
    out = CollabIndex(indptr, handle[order], kind[order], posts[order], sponsored[order], last[order], list(names), "")
    return dataclasses.replace(out, version=_version(out))


def _version(ci: CollabIndex) -> str:
    """A digest of every edge: changes whenever any edge, count or date does."""
    h = hashlib.blake2b(digest_size=12)
    for a in (ci.indptr, ci.handle, ci.kind, ci.posts, ci.sponsored, ci.last_at):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update("\n".join(ci.handles).encode())
    return h.hexdigest()
