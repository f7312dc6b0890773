"""The system of record: accounts, posts, matches and models in PostgreSQL.

All SQL about rows lives here; vectors live in ``store.vectors``. Writes are idempotent
upserts keyed by id and guarded by a row hash, so re-running an ingest changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg

from congruence.core.errors import ModelMismatch, NotFound
from congruence.core.hashes import sha256_text
from congruence.core.settings import Settings
from congruence.store import collaborations as graph
from congruence.store import database
from congruence.store.columns import CodeColumn, StrColumnBuilder
from congruence.store.rows import Account, AccountRow, AccountTable, Counts, Match, PostBrief, PostRow, StoredPost

logger = logging.getLogger(__name__)


def _a(noun: str) -> str:
    """The noun with its indefinite article: "an influencer", "a brand"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


Shard = tuple[int, int]  # (i, n): shard i of n, by a stable hash of the account id
# an account's shard among n, as ``core.hashes.shard_of`` computes it in Python
SHARD_SQL = "(((('x' || substr(md5(a.id), 1, 8))::bit(32)::int %% %s) + %s) %% %s)"
STORE_ID_KEY = "store_id"  # store_meta: the store's identity (migration 011)


def in_shard(shard: Shard | None) -> tuple[str, list[int]]:
    """A WHERE clause (" AND ...", its arguments) keeping the accounts ``a`` of ``shard``."""
    if shard is None:
        return "", []
    i, n = shard
    return f" AND {SHARD_SQL} = %s", [n, n, n, i]


def row_hash(obj: Any) -> str:
    return sha256_text(json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False))


class Store:
    def __init__(self, conn: psycopg.Connection, url: str):
        self.conn = conn
        self.url = url

    @classmethod
    def open(cls, settings: Settings) -> Store:
        url = database.database_url(settings)
        # autocommit: every write below is an explicit `transaction()` block, and plain
        # reads must not open a transaction that would turn those blocks into savepoints
        conn = database.connect(url, autocommit=True)
        database.migrate(conn)
        return cls(conn, url)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- models -------------------------------------------------------------------
    def model_id(self, role: str, name: str, dim: int, version: str = "", meta: dict | None = None) -> int:
        with self.conn.transaction():
            row = self.conn.execute(
                "INSERT INTO models (role, name, dim, version, meta) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (role, name, version) DO UPDATE SET role = EXCLUDED.role"
                " RETURNING id, dim",
                (role, name, dim, version, json.dumps(meta or {})),
            ).fetchone()
        assert row is not None
        if row[1] != dim:
            raise ModelMismatch(f"{role} model {name!r} was stored with {row[1]} dimensions, now {dim}")
        return int(row[0])

    def find_model(self, role: str, name: str, version: str = "") -> tuple[int, int] | None:
        """(id, dim) of a registered model, or None (a read: ``model_id`` registers)."""
        row = self.conn.execute(
            "SELECT id, dim FROM models WHERE role = %s AND name = %s AND version = %s", (role, name, version)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def pin_encoders(self, image: str, text: str) -> None:
        """Record the encoders of this store on first use; refuse different ones later."""
        with self.conn.transaction():
            for key, value in (("image_encoder", image), ("text_encoder", text)):
                self.conn.execute(
                    "INSERT INTO store_meta (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING", (key, value)
                )
                stored = self.conn.execute("SELECT value FROM store_meta WHERE key = %s", (key,)).fetchone()
                if stored and stored[0] != value:
                    raise ModelMismatch(
                        f"this store's vectors were made by {key.replace('_', ' ')} {stored[0]!r}, not {value!r}:"
                        " use the same encoder, or a new CONGRUENCE_HOME / DATABASE_URL"
                    )

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM store_meta").fetchall())

    def meta_values(self, keys: Sequence[str]) -> dict[str, str]:
        """The values of ``keys`` that are set, read together (one statement: one consistent view)."""
        return dict(self.conn.execute("SELECT key, value FROM store_meta WHERE key = ANY(%s)", (list(keys),)))

    def store_id(self) -> str:
        """This store's identity, drawn once: by migration 011, or here when store_meta was
        emptied since. A PostgreSQL replica shares its primary's."""
        read = "SELECT value FROM store_meta WHERE key = %s"
        row = self.conn.execute(read, (STORE_ID_KEY,)).fetchone()
        if row is None:
            with self.conn.transaction():
                self.conn.execute(
                    "INSERT INTO store_meta (key, value) VALUES (%s, gen_random_uuid()::text) ON CONFLICT DO NOTHING",
                    (STORE_ID_KEY,),
                )
            row = self.conn.execute(read, (STORE_ID_KEY,)).fetchone()
        assert row is not None
        return str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO store_meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (key, value),
            )

    def generation(self) -> int:
        """A counter bumped by every committed change that queries can see (ingest, delete,
        a new head): a serving process compares it to decide whether to reload."""
        row = self.conn.execute("SELECT value FROM store_meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def bump_generation(self) -> int:
        """Move the generation (serving engines reload before their next answer); the new value."""
        row = self.conn.execute(
            "INSERT INTO store_meta (key, value) VALUES ('generation', '1') ON CONFLICT (key)"
            " DO UPDATE SET value = (store_meta.value::bigint + 1)::text RETURNING value"
        ).fetchone()
        assert row is not None
        return int(row[0])

    # -- accounts -----------------------------------------------------------------
    def account_kinds(self, ids: Iterable[str]) -> dict[str, str]:
        rows = self.conn.execute("SELECT id, kind FROM accounts WHERE id = ANY(%s)", (list(ids),))
        return {r[0]: r[1] for r in rows}

    def account(self, account_id: str) -> AccountRow:
        row = self.conn.execute(
            "SELECT id, kind, handle, category, followers, extra,"
            " (SELECT count(*) FROM posts p WHERE p.account_id = a.id) FROM accounts a WHERE id = %s",
            (account_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"unknown account {account_id!r}")
        aid, kind, handle, category, followers, extra, posts = row
        return AccountRow(aid, kind, handle, category, followers, extra or {}, int(posts))

    def require_kind(self, account_id: str, kind: str) -> None:
        self.check_kind(account_id, self.account_kinds([account_id]).get(account_id), kind)

    @staticmethod
    def check_kind(account_id: str, found: str | None, kind: str) -> None:
        """NotFound unless the account exists (``found`` is its kind, None if unknown) and is a ``kind``."""
        if found is None:
            raise NotFound(f"unknown {kind} {account_id!r}")
        if found != kind:
            raise NotFound(f"{account_id!r} is {_a(found)}, not {_a(kind)}")

    def upsert_accounts(self, accounts: Sequence[Account]) -> tuple[int, int]:
        """Insert new and update changed accounts; returns (inserted, updated). The edges of the
        collaboration graph to their ids and handles, old and new, are resolved again."""
        if not accounts:
            return 0, 0
        rows = []
        for a in accounts:
            extra = json.dumps(a.extra, ensure_ascii=False, default=str)
            h = row_hash([a.kind, a.handle, a.category, a.followers, extra])
            rows.append((a.id, a.kind, a.handle, a.category, a.followers, extra, h))
        with self.conn.transaction():
            graph.lock(self.conn)
            before: dict[str, str] = dict(
                self.conn.execute("SELECT id, handle FROM accounts WHERE id = ANY(%s)", ([r[0] for r in rows],))
            )
            out = self.conn.execute(
                "INSERT INTO accounts (id, kind, handle, category, followers, extra, row_hash)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[],"
                " %s::jsonb[], %s::text[])"
                " ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, handle = EXCLUDED.handle,"
                " category = EXCLUDED.category, followers = EXCLUDED.followers, extra = EXCLUDED.extra,"
                " row_hash = EXCLUDED.row_hash, updated_at = now()"
                " WHERE accounts.row_hash <> EXCLUDED.row_hash RETURNING id, handle, (xmax = 0)",
                [list(c) for c in zip(*rows, strict=True)],
            ).fetchall()
            renamed = {i: before[i] for i, h, _ in out if before.get(i, h) != h}  # id -> old handle
            graph.refresh(self.conn, list(renamed))  # its own handle is no edge of its own
            graph.resolve(self.conn, [*(r[0] for r in out), *(r[1] for r in out), *renamed.values()])
        inserted = sum(1 for *_, new in out if new)
        return inserted, len(out) - inserted

    def upsert_posts(self, posts: Sequence[StoredPost]) -> tuple[int, int]:
        """Insert new and update changed posts, marking their accounts for re-pooling and
        rebuilding their edges of the collaboration graph."""
        if not posts:
            return 0, 0
        cols = [
            [p.id for p in posts],
            [p.account_id for p in posts],
            [p.image for p in posts],
            [p.image_hash for p in posts],
            [p.caption for p in posts],
            [p.caption_hash for p in posts],
            [p.likes for p in posts],
            [p.comments for p in posts],
            [p.ts for p in posts],
            [p.sponsored for p in posts],
            [json.dumps(list(p.tagged)) for p in posts],
            [json.dumps(p.extra, ensure_ascii=False, default=str) for p in posts],
            [p.row_hash for p in posts],
            [p.corpus_root for p in posts],
        ]
        with self.conn.transaction():
            graph.lock(self.conn)
            # the same corpus read from another folder: follow it, nothing to re-encode
            self.conn.execute(
                "UPDATE posts SET corpus_root = t.root FROM unnest(%s::text[], %s::text[], %s::text[])"
                " AS t(id, h, root) WHERE posts.id = t.id AND posts.row_hash = t.h AND posts.corpus_root <> t.root",
                (cols[0], cols[12], cols[13]),
            )
            # a post that moves to another account leaves the old one to re-pool too
            left = self.conn.execute(
                "UPDATE accounts SET pool_dirty = true WHERE id IN (SELECT p.account_id FROM posts p"
                " JOIN unnest(%s::text[], %s::text[]) AS t(id, h) ON t.id = p.id WHERE p.row_hash <> t.h)"
                " RETURNING id",
                (cols[0], cols[12]),
            ).fetchall()
            out = self.conn.execute(
                "INSERT INTO posts (id, account_id, image, image_hash, caption, caption_hash, likes,"
                " comments, ts, sponsored, tagged, extra, row_hash, corpus_root)"
                " SELECT id, account_id, image, image_hash, caption, caption_hash, likes, comments, ts,"
                " sponsored, ARRAY(SELECT jsonb_array_elements_text(tagged)), extra, row_hash, corpus_root"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::bigint[], %s::bigint[], %s::timestamptz[], %s::boolean[], %s::jsonb[], %s::jsonb[],"
                " %s::text[], %s::text[]) AS t(id, account_id, image, image_hash, caption, caption_hash,"
                " likes, comments, ts, sponsored, tagged, extra, row_hash, corpus_root)"
                " ON CONFLICT (id) DO UPDATE SET account_id = EXCLUDED.account_id, image = EXCLUDED.image,"
                " image_hash = EXCLUDED.image_hash, caption = EXCLUDED.caption,"
                " caption_hash = EXCLUDED.caption_hash, likes = EXCLUDED.likes,"
                " comments = EXCLUDED.comments, ts = EXCLUDED.ts, sponsored = EXCLUDED.sponsored,"
                " tagged = EXCLUDED.tagged, extra = EXCLUDED.extra, row_hash = EXCLUDED.row_hash,"
                " corpus_root = EXCLUDED.corpus_root, updated_at = now()"
                " WHERE posts.row_hash <> EXCLUDED.row_hash RETURNING account_id, (xmax = 0)",
                cols,
            ).fetchall()
            changed = sorted({r[0] for r in out})
            self.conn.execute("UPDATE accounts SET pool_dirty = true WHERE id = ANY(%s)", (changed,))
            graph.refresh(self.conn, [*changed, *(r[0] for r in left)])
        inserted = sum(1 for r in out if r[1])
        return inserted, len(out) - inserted

    def post_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """row_hash of the stored posts among ``ids``."""
        rows = self.conn.execute("SELECT id, row_hash FROM posts WHERE id = ANY(%s)", (list(ids),))
        return {r[0]: r[1] for r in rows}

    def upsert_matches(self, matches: Sequence[Match]) -> int:
        if not matches:
            return 0
        with self.conn.transaction():
            out = self.conn.execute(
                "INSERT INTO matches (brand_id, influencer_id) SELECT * FROM unnest(%s::text[], %s::text[])"
                " ON CONFLICT DO NOTHING RETURNING 1",
                ([m.brand_id for m in matches], [m.influencer_id for m in matches]),
            ).fetchall()
        return len(out)

    def matches(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.conn.execute("SELECT brand_id, influencer_id FROM matches ORDER BY 1, 2")]

    def delete_accounts(self, ids: Sequence[str]) -> list[str]:
        """Delete accounts with their posts, matches, vectors and edges; returns the ids that
        existed. Edges to them lose their account, or find the one that now has the handle."""
        with self.conn.transaction():
            graph.lock(self.conn)
            out = self.conn.execute("DELETE FROM accounts WHERE id = ANY(%s) RETURNING id, handle", (list(ids),))
            gone = out.fetchall()
            graph.resolve(self.conn, [n for row in gone for n in row])
        return [r[0] for r in gone]

    def delete_posts_with_image(self, image_hash: str) -> list[str]:
        """Delete the posts of one image (it broke after it was checked); their ids. Their
        accounts' edges are rebuilt."""
        with self.conn.transaction():
            graph.lock(self.conn)
            rows = self.conn.execute(
                "DELETE FROM posts WHERE image_hash = %s RETURNING id, account_id", (image_hash,)
            ).fetchall()
            graph.refresh(self.conn, [a for _, a in rows])
        return [i for i, _ in rows]

    def account_table(self, kind: str, chunk: int = 100_000, shard: Shard | None = None) -> AccountTable:
        """Every account of ``kind`` (of one shard) in seq order, read ``chunk`` rows at a time
        into compact columns (a handle equal to its id is not stored twice)."""
        where, args = in_shard(shard)
        seqs, fols, codes = [], [], []
        names: dict[str, int] = {}
        ids, handles = StrColumnBuilder(), StrColumnBuilder()
        same = True
        after = -1
        while True:
            rows = self.conn.execute(
                "SELECT seq, id, handle, category, coalesce(followers, -1) FROM accounts a"
                f" WHERE kind = %s AND seq > %s{where} ORDER BY seq LIMIT %s",
                (kind, after, *args, chunk),
            ).fetchall()
            if not rows:
                break
            seqs.append(np.fromiter((r[0] for r in rows), np.int64, count=len(rows)))
            fols.append(np.fromiter((r[4] for r in rows), np.int64, count=len(rows)))
            codes.append(np.fromiter((names.setdefault(r[3], len(names)) for r in rows), np.int32, count=len(rows)))
            ids.extend(r[1] for r in rows)
            handles.extend(r[2] for r in rows)
            same = same and all(r[1] == r[2] for r in rows)
            after = int(rows[-1][0])
            del rows
        id_col = ids.build()
        return AccountTable(
            seq=np.concatenate(seqs) if seqs else np.zeros(0, np.int64),
            ids=id_col,
            handles=id_col if same else handles.build(),
            categories=CodeColumn(np.concatenate(codes) if codes else np.zeros(0, np.int32), list(names)),
            followers=np.concatenate(fols) if fols else np.zeros(0, np.int64),
        )

    def post(self, post_id: str) -> PostRow:
        row = self.conn.execute(
            "SELECT id, account_id, image, image_hash, caption, corpus_root, likes, sponsored FROM posts WHERE id = %s",
            (post_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"unknown post {post_id!r}")
        return PostRow(*row)

    def find_accounts(self, kind: str, q: str, limit: int) -> list[tuple[str, str, str]]:
        """(id, handle, category) of accounts of ``kind`` whose id or handle contains ``q``."""
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.conn.execute(
            "SELECT id, handle, category FROM accounts WHERE kind = %s AND (id ILIKE %s OR handle ILIKE %s)"
            " ORDER BY handle, id LIMIT %s",
            (kind, like, like, limit),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def category_counts(self, kind: str) -> list[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT category, count(*) FROM accounts WHERE kind = %s AND category <> ''"
            " GROUP BY category ORDER BY category",
            (kind,),
        )
        return [(r[0], int(r[1])) for r in rows]

    def posts_with_images(self, post_ids: Sequence[str]) -> set[str]:
        rows = self.conn.execute("SELECT id FROM posts WHERE id = ANY(%s) AND image IS NOT NULL", (list(post_ids),))
        return {r[0] for r in rows}

    def account_posts(self, account_id: str, limit: int) -> list[PostBrief]:
        """The account's first ``limit`` posts in PostSet order."""
        rows = self.conn.execute(
            "SELECT id, caption, likes, image IS NOT NULL FROM posts WHERE account_id = %s"
            " ORDER BY ts NULLS LAST, id LIMIT %s",
            (account_id, limit),
        )
        return [PostBrief(*r) for r in rows]

    def seqs_of(self, account_ids: Sequence[str]) -> list[int]:
        """The seq of each account, aligned (-1 for an unknown id)."""
        got: dict[str, int] = dict(
            self.conn.execute("SELECT id, seq FROM accounts WHERE id = ANY(%s)", (list(account_ids),)).fetchall()
        )
        return [int(got.get(a, -1)) for a in account_ids]

    def post_ids_by_account(self, account_ids: Sequence[str]) -> dict[str, list[str]]:
        """Post ids of each account in the order PostSets use: (ts, id)."""
        out: dict[str, list[str]] = {}
        for aid, pid in self.conn.execute(
            "SELECT account_id, id FROM posts WHERE account_id = ANY(%s) ORDER BY account_id, ts NULLS LAST, id",
            (list(account_ids),),
        ):
            out.setdefault(aid, []).append(pid)
        return out

    def counts(self) -> Counts:
        kinds: dict[str, int] = dict(self.conn.execute("SELECT kind, count(*) FROM accounts GROUP BY kind").fetchall())
        posts = self.conn.execute("SELECT count(*) FROM posts").fetchone()
        matches = self.conn.execute("SELECT count(*) FROM matches").fetchone()
        return Counts(
            int(kinds.get("brand", 0)),
            int(kinds.get("influencer", 0)),
            int(posts[0]) if posts else 0,
            int(matches[0]) if matches else 0,
        )
