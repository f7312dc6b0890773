"""SIGKILL an ingest at random points while it encodes, rerun it: the store equals an
uninterrupted ingest's."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from congruence.core.settings import Settings
from congruence.datasets.demo import build_demo
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.status import status
from congruence.store import database

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_databases(pg_url: str) -> Iterator[tuple[str, str]]:
    names = ("crash_reference", "crash_killed")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for n in names:
            conn.execute(f"DROP DATABASE IF EXISTS {n}")
            conn.execute(f"CREATE DATABASE {n}")
    yield tuple(make_conninfo(pg_url, dbname=n) for n in names)  # type: ignore[misc]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for n in names:
            conn.execute(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")


def _dump(url: str) -> dict[str, list[tuple]]:
    """Every stored row that an ingest writes, in a canonical order (vectors as arrays)."""
    with database.connect(url) as conn:
        return {
            "accounts": conn.execute(
                "SELECT id, kind, handle, category, followers, row_hash, pool_dirty FROM accounts ORDER BY id"
            ).fetchall(),
            "posts": conn.execute(
                "SELECT id, account_id, image_hash, caption_hash, likes, row_hash FROM posts ORDER BY id"
            ).fetchall(),
            "vectors": conn.execute(
                "SELECT m.role, m.name, v.content_hash, v.embedding FROM vectors v"
                " JOIN models m ON m.id = v.model_id ORDER BY 1, 2, 3"
            ).fetchall(),
            "account_vectors": conn.execute(
                "SELECT account_id, space, n_posts, embedding FROM account_vectors ORDER BY 1, 2"
            ).fetchall(),
            "matches": conn.execute("SELECT brand_id, influencer_id FROM matches ORDER BY 1, 2").fetchall(),
            "collaborations": conn.execute("SELECT * FROM collaborations ORDER BY 1, 2, 3").fetchall(),
        }


def _arrays(row: tuple) -> tuple:
    return tuple(v.to_numpy() if hasattr(v, "to_numpy") else v for v in row)


def _same(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> None:
    a = {t: [_arrays(r) for r in rows] for t, rows in a.items()}
    b = {t: [_arrays(r) for r in rows] for t, rows in b.items()}
    for table in a:
        assert len(a[table]) == len(b[table]), table
        for ra, rb in zip(a[table], b[table], strict=True):
            plain_a = [v for v in ra if not isinstance(v, np.ndarray)]
            plain_b = [v for v in rb if not isinstance(v, np.ndarray)]
            assert plain_a == plain_b, (table, ra[:3], rb[:3])
            for va, vb in zip(ra, rb, strict=True):
                if isinstance(va, np.ndarray):
                    np.testing.assert_allclose(va, vb, atol=1e-5)


def _count(conn: psycopg.Connection) -> int:
    """Post vectors stored (0 before the first run has created the tables)."""
    try:
        return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])  # type: ignore[index]
    except psycopg.errors.UndefinedTable:
        return 0


def _kill_mid_encoding(
    cmd: list[str], env: dict[str, str], conn: psycopg.Connection, at_least: int, timeout: float = 900
) -> int:
    """Start the ingest, SIGKILL it once PostgreSQL holds ``at_least`` post vectors (evidence
    that this run is encoding, not loading models or writing rows); the vectors left."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout  # a busy 2-core machine loads the models slowly
    try:
        while (n := _count(conn)) < at_least:
            if proc.poll() is not None:
                pytest.fail(
                    f"the ingest exited ({proc.returncode}) with {n} vectors stored, before reaching "
                    f"{at_least}: it must be killed while encoding"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"the ingest stored only {n} of {at_least} vectors in {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no handler runs, nothing is flushed
        proc.wait()
    return _count(conn)


def test_killed_ingest_resumes_to_the_same_store(two_databases: tuple[str, str], tmp_path: Path) -> None:
    corpus = build_demo(tmp_path / "corpus", influencers_per_category=6, posts_per_influencer=5, posts_per_brand=3)
    ref_url, killed_url = two_databases
    ref = Settings(home=tmp_path / "ref", database_url=ref_url, batch_size=8, device="cpu")
    assert ingest(corpus, ref).exit_code == 0
    with database.connect(ref_url) as conn:
        total = _count(conn)
        images = int(
            conn.execute(
                "SELECT count(*) FROM vectors v JOIN models m ON m.id = v.model_id WHERE m.role = 'image'"
            ).fetchone()[0]
        )  # type: ignore[index]
    assert images >= 20 * 8, "too few image batches to kill between: make the corpus larger"

    env = {
        **os.environ,
        "CONGRUENCE_HOME": str(tmp_path / "killed"),
        "DATABASE_URL": killed_url,
        "CONGRUENCE_BATCH_SIZE": "8",
    }
    cmd = [sys.executable, "-m", "congruence", "ingest", str(corpus), "--json"]
    rng = random.Random(7)
    have = 0
    with database.connect(killed_url, autocommit=True) as conn:
        # four kills at random points while images are encoded (8 a batch, one commit each),
        # each after this run committed at least one batch of its own
        for lo, hi in ((0.02, 0.2), (0.3, 0.45), (0.55, 0.7), (0.75, 0.85)):
            at_least = max(int(images * rng.uniform(lo, hi)), have + 1)
            before, have = have, _kill_mid_encoding(cmd, env, conn, at_least)
            # the kill landed while encoding: this run added vectors, and the images are not all done
            assert before < have < images, (before, have, images, total)
    final = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    report = json.loads(final.stdout)
    assert report["images_encoded"] + report["texts_encoded"] == total - have  # only what was missing

    _same(_dump(ref_url), _dump(killed_url))
    killed = Settings(home=tmp_path / "killed", database_url=killed_url, batch_size=8, device="cpu")
    with Engine(ref) as a, Engine(killed) as b:
        for brand in ("brand_peakfit", "brand_happy_paws"):
            ha, hb = a.match_brand(brand, 10), b.match_brand(brand, 10)
            assert [h.influencer_id for h in ha] == [h.influencer_id for h in hb]
            np.testing.assert_allclose([h.score for h in ha], [h.score for h in hb], atol=1e-5)


def test_two_overlapping_ingests_at_once_equal_one_after_the_other(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    full = build_demo(tmp_path / "full", influencers_per_category=4, posts_per_influencer=3, posts_per_brand=2)
    # two corpora sharing half their accounts (and so the same rows and image files)
    halves = []
    for name, keep in (("a", lambda i: i % 4 != 3), ("b", lambda i: i % 4 != 0)):
        folder = tmp_path / name
        shutil.copytree(full / "images", folder / "images")
        accounts = [json.loads(line) for line in (full / "accounts.jsonl").read_text().splitlines()]
        kept = {a["id"] for i, a in enumerate(accounts) if keep(i)}
        for table, key in (("accounts", "id"), ("posts", "account_id"), ("matches", "influencer_id")):
            rows = [json.loads(line) for line in (full / f"{table}.jsonl").read_text().splitlines()]
            rows = [r for r in rows if r[key] in kept and r.get("brand_id", next(iter(kept))) in kept]
            for r in rows if table == "posts" else []:  # edges of the collaboration graph, the same in both
                r["tagged"] = [f"@Partner_{len(r['id']) % 3}", accounts[len(r["id"]) % len(accounts)]["id"]]
            (folder / f"{table}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        halves.append(folder)
    sequential_url, concurrent_url = two_databases
    seq = Settings(home=tmp_path / "seq", database_url=sequential_url, batch_size=8, device="cpu")
    for folder in halves:
        assert ingest(folder, seq).exit_code == 0

    env = {
        **os.environ,
        "CONGRUENCE_HOME": str(tmp_path / "conc"),
        "DATABASE_URL": concurrent_url,
        "CONGRUENCE_BATCH_SIZE": "8",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "congruence", "ingest", str(f), "--json"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in halves
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]

    assert _dump(sequential_url)["collaborations"]
    _same(_dump(sequential_url), _dump(concurrent_url))
    conc = Settings(home=tmp_path / "conc", database_url=concurrent_url, batch_size=8, device="cpu")
    with Engine(seq) as a, Engine(conc) as b:
        influencers = [row for row in _dump(sequential_url)["accounts"] if row[1] == "influencer"]
        assert status(a).index.size == status(b).index.size == len(influencers) == 24
        for brand in ("brand_peakfit", "brand_happy_paws"):
            assert [h.influencer_id for h in a.match_brand(brand, 10)] == [
                h.influencer_id for h in b.match_brand(brand, 10)
            ]
