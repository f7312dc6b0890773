"""SIGKILL an ingest at random points, rerun it: the store equals an uninterrupted ingest's."""

from __future__ import annotations

import json
import os
import random
import signal
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
from congruence.indexer import database
from congruence.indexer.demo import build_demo
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine

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
            "accounts": conn.execute("SELECT id, kind, handle, category, followers, row_hash, pool_dirty"
                                     " FROM accounts ORDER BY id").fetchall(),
            "posts": conn.execute("SELECT id, account_id, image_hash, caption_hash, likes, row_hash FROM posts"
                                  " ORDER BY id").fetchall(),
            "vectors": conn.execute("SELECT m.role, m.name, v.content_hash, v.embedding FROM vectors v"
                                    " JOIN models m ON m.id = v.model_id ORDER BY 1, 2, 3").fetchall(),
            "account_vectors": conn.execute("SELECT account_id, space, n_posts, embedding FROM account_vectors"
                                            " ORDER BY 1, 2").fetchall(),
            "matches": conn.execute("SELECT brand_id, influencer_id FROM matches ORDER BY 1, 2").fetchall(),
        }


def _same(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> None:
    for table in a:
        assert len(a[table]) == len(b[table]), table
        for ra, rb in zip(a[table], b[table], strict=True):
            plain_a = [v for v in ra if not isinstance(v, np.ndarray)]
            plain_b = [v for v in rb if not isinstance(v, np.ndarray)]
            assert plain_a == plain_b, (table, ra[:3], rb[:3])
            for va, vb in zip(ra, rb, strict=True):
                if isinstance(va, np.ndarray):
                    np.testing.assert_allclose(va, vb, atol=1e-5)


def test_killed_ingest_resumes_to_the_same_store(two_databases: tuple[str, str], tmp_path: Path) -> None:
    corpus = build_demo(tmp_path / "corpus", influencers_per_category=6, posts_per_influencer=5, posts_per_brand=3)
    ref_url, killed_url = two_databases
    ref = Settings(home=tmp_path / "ref", database_url=ref_url, batch_size=8)
    assert ingest(corpus, ref).exit_code == 0

    env = {**os.environ, "CONGRUENCE_HOME": str(tmp_path / "killed"), "DATABASE_URL": killed_url,
           "CONGRUENCE_BATCH_SIZE": "8"}
    cmd = [sys.executable, "-m", "congruence", "ingest", str(corpus), "--json"]
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 9.0))  # model loading takes a few seconds; then rows, then encoding
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the ingest finished before it could be killed: make the corpus larger"
    with database.connect(killed_url) as conn:
        have = conn.execute("SELECT count(*) FROM vectors").fetchone()[0]  # type: ignore[index]
    final = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    report = json.loads(final.stdout)
    total = len(_dump(ref_url)["vectors"])
    assert report["images_encoded"] + report["texts_encoded"] == total - have  # only what was missing

    _same(_dump(ref_url), _dump(killed_url))
    killed = Settings(home=tmp_path / "killed", database_url=killed_url, batch_size=8)
    with Engine(ref) as a, Engine(killed) as b:
        for brand in ("brand_peakfit", "brand_happy_paws"):
            ha, hb = a.match_brand(brand, 10), b.match_brand(brand, 10)
            assert [h.influencer_id for h in ha] == [h.influencer_id for h in hb]
            np.testing.assert_allclose([h.score for h in ha], [h.score for h in hb], atol=1e-5)
