"""Vectors in PostgreSQL: pooled account vectors and the derived spaces (each head's), with
the post-embedding cache of its base (``store.post_cache``).

Every vector written here has passed ``as_matrix`` (finite, right width) first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from pgvector import Vector

from congruence.core.errors import ModelMismatch
from congruence.core.vectors import as_matrix
from congruence.store.post_cache import PostVectors
from congruence.store.postsets import PostSets
from congruence.store.records import Shard, Store, in_shard


@dataclass(frozen=True)
class AccountChunk:
    """seq (n,) int64; vectors (n, d) float32; posts: n per-post (n_posts, d') float16 arrays or None each."""

    seq: np.ndarray
    vectors: np.ndarray
    posts: list[np.ndarray | None] | None


@dataclass(frozen=True)
class AccountEntry:
    """vector: (d,) in the space asked for, None if it has none; posts: (n_posts, d) or None."""

    seq: int
    kind: str
    vector: np.ndarray | None
    posts: np.ndarray | None


class VectorStore(PostVectors):
    def __init__(self, store: Store):
        self.store = store
        self.conn = store.conn

    # -- pooled account vectors ----------------------------------------------------------
    def dirty_accounts(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM accounts WHERE pool_dirty ORDER BY seq")]

    def put_account_vectors(
        self,
        space: str,
        ids: Sequence[str],
        vecs: np.ndarray,
        n_posts: Sequence[int],
        dim: int,
        clear_dirty: bool = True,
    ) -> None:
        """Upsert pooled vectors of ``space``; a changed vector gets a new version."""
        mat = as_matrix(vecs, dim, name="account embeddings") if len(ids) else np.zeros((0, dim), np.float32)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO account_vectors (account_id, space, embedding, n_posts) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (account_id, space) DO UPDATE SET embedding = EXCLUDED.embedding,"
                " n_posts = EXCLUDED.n_posts, version = nextval('vector_version')"
                " WHERE account_vectors.embedding IS DISTINCT FROM EXCLUDED.embedding",
                [(i, space, Vector(v), int(n)) for i, v, n in zip(ids, mat, n_posts, strict=True)],
            )
            if clear_dirty:
                cur.execute("UPDATE accounts SET pool_dirty = false WHERE id = ANY(%s)", (list(ids),))

    def clear_dirty(self, ids: Sequence[str], space: str) -> None:
        """Accounts left with no posts: drop their vector and mark them clean."""
        with self.conn.transaction():
            self.conn.execute(
                "DELETE FROM account_vectors WHERE account_id = ANY(%s) AND space = %s", (list(ids), space)
            )
            self.conn.execute("UPDATE accounts SET pool_dirty = false WHERE id = ANY(%s)", (list(ids),))

    def vector_state(self, space: str, kind: str, shard: Shard | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(seq, version) of every account of ``kind`` with a vector in ``space`` (of one shard)."""
        where, args = in_shard(shard)
        rows = self.conn.execute(
            "SELECT a.seq, v.version FROM account_vectors v JOIN accounts a ON a.id = v.account_id"
            f" WHERE v.space = %s AND a.kind = %s{where} ORDER BY a.seq",
            (space, kind, *args),
        ).fetchall()
        seq = np.array([r[0] for r in rows], dtype=np.int64)
        ver = np.array([r[1] for r in rows], dtype=np.int64)
        return seq, ver

    def account_vectors(
        self,
        space: str,
        seqs: Sequence[int] | np.ndarray | None = None,
        kind: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(seq, ids, (n, d) vectors) in ``space``, chosen by seq, by id, or by kind."""
        where: list[str] = ["v.space = %s"]
        args: list[object] = [space]
        if seqs is not None:
            where.append("a.seq = ANY(%s)")
            args.append([int(s) for s in seqs])
        if ids is not None:
            where.append("a.id = ANY(%s)")
            args.append(list(ids))
        if kind is not None:
            where.append("a.kind = %s")
            args.append(kind)
        with self.conn.cursor(binary=True) as cur:
            rows = cur.execute(
                "SELECT a.seq, a.id, v.embedding FROM account_vectors v JOIN accounts a ON a.id = v.account_id"
                " WHERE " + " AND ".join(where) + " ORDER BY a.seq",
                args,
            ).fetchall()
        if not rows:
            return np.zeros(0, np.int64), [], np.zeros((0, 0), np.float32)
        vecs = np.stack([np.asarray(r[2].to_numpy(), dtype=np.float32) for r in rows])
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows], vecs

    def account_vector_chunks(
        self,
        space: str,
        kind: str,
        seqs: Sequence[int] | np.ndarray | None = None,
        with_posts: bool = False,
        chunk: int = 0,
        shard: Shard | None = None,
    ) -> Iterator[AccountChunk]:
        """``account_vectors`` of ``kind`` (all, or those ``seqs``) in seq order, ``chunk`` accounts at
        a time (keyset-paginated: memory stays bounded at millions of accounts; default 50k, or
        10k with posts), with each account's per-post vectors (float16, as stored) when
        ``with_posts`` (None where the space has none)."""
        chunk = chunk or (10_000 if with_posts else 50_000)
        cols = "a.seq, v.embedding" + (", v.n_posts, v.post_vectors" if with_posts else "")
        of_shard, shard_args = in_shard(shard)
        where, args = f"v.space = %s AND a.kind = %s{of_shard} AND a.seq > %s", [space, kind, *shard_args]
        if seqs is not None:
            where += " AND a.seq = ANY(%s)"
        after = -1
        with self.conn.cursor(binary=True) as cur:
            while True:
                extra: list[object] = [[int(s) for s in seqs]] if seqs is not None else []
                rows = cur.execute(
                    f"SELECT {cols} FROM account_vectors v JOIN accounts a ON a.id = v.account_id"
                    f" WHERE {where} ORDER BY a.seq LIMIT %s",
                    [*args, after, *extra, chunk],
                ).fetchall()
                if not rows:
                    return
                seq = np.array([r[0] for r in rows], np.int64)
                vecs = np.stack([np.asarray(r[1].to_numpy(), np.float32) for r in rows])
                posts = (
                    [None if r[3] is None else _post_rows(r[3], r[2], np.float16) for r in rows] if with_posts else None
                )
                yield AccountChunk(seq, vecs, posts)
                after = int(seq[-1])
                if len(rows) < chunk:
                    return

    def post_count(self, space: str, kind: str, shard: Shard | None = None) -> int:
        """How many per-post vectors the accounts of ``kind`` have in ``space`` (in one shard)."""
        where, args = in_shard(shard)
        row = self.conn.execute(
            "SELECT coalesce(sum(v.n_posts), 0) FROM account_vectors v JOIN accounts a ON a.id = v.account_id"
            f" WHERE v.space = %s AND a.kind = %s AND v.post_vectors IS NOT NULL{where}",
            (space, kind, *args),
        ).fetchone()
        return int(row[0]) if row else 0

    def account_entry(self, space: str, account_id: str) -> AccountEntry | None:
        """One account's seq, kind, vector and per-post vectors in ``space``, in one query
        (a match's only PostgreSQL round trip besides the generation check); None if unknown."""
        with self.conn.cursor(binary=True) as cur:
            row = cur.execute(
                "SELECT a.seq, a.kind, v.embedding, v.n_posts, v.post_vectors FROM accounts a"
                " LEFT JOIN account_vectors v ON v.account_id = a.id AND v.space = %s WHERE a.id = %s",
                (space, account_id),
            ).fetchone()
        if row is None:
            return None
        vec = None if row[2] is None else np.asarray(row[2].to_numpy(), np.float32)
        posts = None if row[4] is None else _post_rows(row[4], row[3])
        return AccountEntry(int(row[0]), row[1], vec, posts)

    # -- derived spaces (see indexer.derived) -------------------------------------------
    def stale_derived(self, space: str, base: str) -> list[tuple[str, int]]:
        """(account id, base version) of accounts whose ``space`` vector is missing or was
        computed from another version of their ``base`` vector, in seq order."""
        rows = self.conn.execute(
            "SELECT a.id, b.version FROM account_vectors b JOIN accounts a ON a.id = b.account_id"
            " LEFT JOIN account_vectors d ON d.account_id = b.account_id AND d.space = %s"
            " WHERE b.space = %s AND d.source_version IS DISTINCT FROM b.version ORDER BY a.seq",
            (space, base),
        ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def drop_orphans(self, space: str, base: str) -> int:
        """Delete ``space`` vectors of accounts that no longer have a ``base`` vector."""
        with self.conn.transaction():
            cur = self.conn.execute(
                "DELETE FROM account_vectors d WHERE d.space = %s AND NOT EXISTS (SELECT 1 FROM account_vectors b"
                " WHERE b.account_id = d.account_id AND b.space = %s)",
                (space, base),
            )
        return cur.rowcount

    def put_derived_vectors(
        self, space: str, sets: PostSets, vecs: np.ndarray, post_vecs: np.ndarray, source_versions: Sequence[int]
    ) -> None:
        """Upsert one vector per account of ``sets`` plus its per-post vectors (stored float16)."""
        dim = np.shape(vecs)[1] if np.ndim(vecs) == 2 else 0
        self.check_dim(space, dim)
        mat = as_matrix(vecs, dim, name="account embeddings")
        posts = as_matrix(post_vecs, dim, name="post vectors").astype(np.float16)
        if posts.shape != (sets.features.shape[0], dim):
            raise ValueError(f"post vectors: expected shape ({sets.features.shape[0]}, {dim}), got {posts.shape}")
        rows = [
            (
                a,
                space,
                Vector(mat[j]),
                int(sets.offsets[j + 1] - sets.offsets[j]),
                int(src),
                posts[sets.offsets[j] : sets.offsets[j + 1]].tobytes(),
            )
            for j, (a, src) in enumerate(zip(sets.account_ids, source_versions, strict=True))
        ]
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO account_vectors (account_id, space, embedding, n_posts, source_version, post_vectors)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (account_id, space) DO UPDATE SET"
                " embedding = EXCLUDED.embedding, n_posts = EXCLUDED.n_posts, source_version ="
                " EXCLUDED.source_version, post_vectors = EXCLUDED.post_vectors, version = nextval('vector_version')",
                rows,
            )

    def post_vectors(self, space: str, seqs: Sequence[int] = (), ids: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Account id -> (n_posts, dim) float32 per-post vectors in ``space``, by seq and/or id."""
        # one condition per kind of key given: "seq = ANY OR id = ANY" would stop the planner
        # from using either index (a scan of every account per query)
        conds: list[str] = []
        args: list[object] = []
        if len(seqs):
            conds.append("a.seq = ANY(%s)")
            args.append([int(s) for s in seqs])
        if len(ids):
            conds.append("a.id = ANY(%s)")
            args.append(list(ids))
        if not conds:
            return {}
        with self.conn.cursor(binary=True) as cur:
            rows = cur.execute(
                "SELECT a.id, v.n_posts, v.post_vectors FROM account_vectors v JOIN accounts a ON a.id = v.account_id"
                f" WHERE v.space = %s AND v.post_vectors IS NOT NULL AND ({' OR '.join(conds)})",
                (space, *args),
            ).fetchall()
        return {r[0]: _post_rows(r[2], r[1]) for r in rows}

    def vector_versions(self, space: str, ids: Sequence[str]) -> dict[str, int]:
        """Account id -> version of its vector in ``space`` (changes whenever the vector does)."""
        rows = self.conn.execute(
            "SELECT account_id, version FROM account_vectors WHERE space = %s AND account_id = ANY(%s)",
            (space, list(ids)),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def drop_space(self, space: str) -> None:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM account_vectors WHERE space = %s", (space,))

    def spaces(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT space FROM account_vectors ORDER BY space")]

    def space_dim(self, space: str) -> int | None:
        row = self.conn.execute(
            "SELECT vector_dims(embedding) FROM account_vectors WHERE space = %s LIMIT 1", (space,)
        ).fetchone()
        return int(row[0]) if row else None

    def check_dim(self, space: str, dim: int) -> None:
        stored = self.space_dim(space)
        if stored is not None and stored != dim:
            raise ModelMismatch(f"space {space!r} holds {stored}-d vectors, got {dim}-d")


def _post_rows(blob: bytes, n_posts: int, dtype: type = np.float32) -> np.ndarray:
    """(n_posts, d) per-post vectors from their stored float16 bytes."""
    return np.frombuffer(blob, dtype=np.float16).reshape(n_posts, -1).astype(dtype, copy=dtype is not np.float16)
