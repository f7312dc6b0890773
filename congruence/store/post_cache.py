"""Post vectors in PostgreSQL: the content-addressed cache of post embeddings (one vector a
model and image or caption hash, whoever posted it) and each account's posts as ``PostSets``.
A base of ``store.vectors.VectorStore``, which gives it ``conn``.

Every vector written here has passed ``as_matrix`` (finite, right width) first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
from pgvector import Vector

from congruence.core.vectors import as_matrix
from congruence.store.postsets import PostSets


class PostVectors:
    conn: psycopg.Connection

    # -- post embedding cache -------------------------------------------------------
    def pending_images(self, model_id: int) -> list[tuple[str, str, str]]:
        """(image_hash, corpus_root, image) of stored images without a vector, one per hash."""
        return self.conn.execute(
            "SELECT DISTINCT ON (p.image_hash) p.image_hash, p.corpus_root, p.image FROM posts p"
            " WHERE p.image_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM vectors v"
            " WHERE v.model_id = %s AND v.content_hash = p.image_hash) ORDER BY p.image_hash, p.id",
            (model_id,),
        ).fetchall()

    def pending_texts(self, model_id: int) -> list[tuple[str, str]]:
        """(caption_hash, caption) of stored captions without a vector, one per hash."""
        return self.conn.execute(
            "SELECT DISTINCT ON (p.caption_hash) p.caption_hash, p.caption FROM posts p"
            " WHERE p.caption_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM vectors v"
            " WHERE v.model_id = %s AND v.content_hash = p.caption_hash) ORDER BY p.caption_hash",
            (model_id,),
        ).fetchall()

    def put_vectors(self, model_id: int, hashes: Sequence[str], vecs: np.ndarray, dim: int) -> None:
        """Store one committed batch of post vectors (idempotent)."""
        mat = as_matrix(vecs, dim, name="post embeddings")
        if len(hashes) != len(mat):
            raise ValueError(f"expected {len(hashes)} vectors, got {len(mat)}")
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO vectors (model_id, content_hash, embedding) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(model_id, h, Vector(v)) for h, v in zip(hashes, mat, strict=True)],
            )

    def count_embedded_posts(self, image_model: int, text_model: int) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM posts p WHERE"
            " (p.image_hash IS NULL OR EXISTS"
            "  (SELECT 1 FROM vectors v WHERE v.model_id = %s AND v.content_hash = p.image_hash))"
            " AND (p.caption_hash IS NULL OR EXISTS"
            "  (SELECT 1 FROM vectors v WHERE v.model_id = %s AND v.content_hash = p.caption_hash))",
            (image_model, text_model),
        ).fetchone()
        return int(row[0]) if row else 0

    # -- per-account post features ----------------------------------------------------
    def post_sets(
        self,
        image_model: int,
        text_model: int,
        d_image: int,
        d_text: int,
        account_ids: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> PostSets:
        """PostSets for the given accounts (or all, or all of ``kind``), posts in (ts, id) order.

        Accounts with no posts are left out. Posts whose vectors are missing get zeros there.
        """
        where: list[str] = []
        args: list[object] = [image_model, text_model]
        if account_ids is not None:
            where.append("a.id = ANY(%s)")
            args.append(list(account_ids))
        if kind is not None:
            where.append("a.kind = %s")
            args.append(kind)
        sql = (
            "SELECT a.id, a.kind, a.category, coalesce(a.followers, -1), p.id, vi.embedding, vt.embedding"
            " FROM posts p JOIN accounts a ON a.id = p.account_id"
            " LEFT JOIN vectors vi ON vi.model_id = %s AND vi.content_hash = p.image_hash"
            " LEFT JOIN vectors vt ON vt.model_id = %s AND vt.content_hash = p.caption_hash"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY a.seq, p.ts NULLS LAST, p.id"
        )
        with self.conn.cursor(binary=True) as cur:
            rows = cur.execute(sql, args).fetchall()
        return _rows_to_postsets(rows, d_image, d_text)


def _rows_to_postsets(rows: list[tuple], d_image: int, d_text: int) -> PostSets:
    n = len(rows)
    feats = np.zeros((n, d_image + d_text), np.float32)
    acc_ids: list[str] = []
    kinds: list[str] = []
    cats: list[str] = []
    fol: list[int] = []
    offsets = [0]
    post_ids: list[str] = []
    for i, (aid, kind, cat, followers, pid, vi, vt) in enumerate(rows):
        if not acc_ids or acc_ids[-1] != aid:
            if acc_ids:
                offsets.append(i)
            acc_ids.append(aid)
            kinds.append(kind)
            cats.append(cat)
            fol.append(followers)
        post_ids.append(pid)
        if vi is not None:
            feats[i, :d_image] = vi.to_numpy()
        if vt is not None:
            feats[i, d_image:] = vt.to_numpy()
    offsets.append(n)
    if not acc_ids:
        offsets = [0]
    return PostSets(
        account_ids=acc_ids,
        features=feats,
        offsets=np.asarray(offsets, np.int64),
        post_ids=post_ids,
        kinds=kinds,
        categories=cats,
        followers=np.asarray(fol, np.int64),
        d_image=d_image,
        d_text=d_text,
    )
