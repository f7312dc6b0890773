"""Ray for work past one machine: a Ray ingest and a Ray export give the local rows.

A real local Ray cluster (2 CPUs) is started once for the module; its workers reach the
test's PostgreSQL (embedded, or CONGRUENCE_TEST_DATABASE_URL) as remote nodes would reach
a shared one. Skipped when Ray is not installed, except the checks that need no Ray.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from congruence.core.errors import StoreUnavailable
from congruence.core.settings import Settings
from congruence.indexer import ingest as ingest_module
from congruence.indexer.ingest import ingest
from congruence.ray.cluster import Cluster, worker_settings
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.store import database
from congruence.store.records import Store
from congruence.training.deploy import deploy

from .conftest import TABLES, run
from .test_export import BRANDS
from .test_head_product import trained_head

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'congruence[ray]')"
)
RAY_MISSING = "error: Ray is not installed: pip install 'congruence[ray]'\n"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A fresh local Ray cluster: 2 CPUs, a small object store, its files under /tmp."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths are length-limited
    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=0,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        _temp_dir=temp,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )  # workers' output stays off capsys
    yield
    ray.shutdown()
    # removed when the test process ends, not now: Ray Data configures its log file once per
    # process, under the first cluster's folder, and a later module's cluster still writes there
    atexit.register(shutil.rmtree, temp, True)


def dump(settings: Settings) -> dict[str, list[tuple]]:
    """Every row ingest writes, sorted, without timestamps and vector versions."""
    with Store.open(settings) as store:

        def q(sql: str) -> list[tuple]:
            return [tuple(r) for r in store.conn.execute(sql).fetchall()]

        return {
            "accounts": q(
                "SELECT id, seq, kind, handle, category, followers, extra, row_hash, pool_dirty"
                " FROM accounts ORDER BY id"
            ),
            "posts": q(
                "SELECT id, account_id, image, image_hash, caption, caption_hash, likes, comments, ts,"
                " sponsored, tagged, extra, row_hash, corpus_root FROM posts ORDER BY id"
            ),
            "vectors": q(
                "SELECT m.role, m.name, v.content_hash, v.embedding::real[] FROM vectors v"
                " JOIN models m ON m.id = v.model_id ORDER BY 1, 2, 3"
            ),
            "account_vectors": q(
                "SELECT account_id, space, n_posts, embedding::real[] FROM account_vectors ORDER BY 1, 2"
            ),
        }


def assert_same_rows(got: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> None:
    assert got["accounts"] == expected["accounts"] and got["posts"] == expected["posts"]
    for table in ("vectors", "account_vectors"):
        assert [r[:-1] for r in got[table]] == [r[:-1] for r in expected[table]]
        for g, e in zip(got[table], expected[table], strict=True):
            np.testing.assert_allclose(g[-1], e[-1], atol=1e-5, err_msg=str(g[:-1]))


def hits(settings: Settings) -> list[tuple[str, str, float, int]]:
    with Engine(settings) as engine:
        return [(b, h.influencer_id, h.score, h.rank) for b in BRANDS for h in engine.match_brand(b, 18)]


def empty_store(settings: Settings, home: Path) -> Settings:
    with database.connect(str(settings.database_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return settings.with_(home=home)


@needs_ray
def test_a_ray_ingest_stores_what_a_local_one_does(
    ray_cluster: None, settings: Settings, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    broken = sorted((corpus / "images").rglob("*.jpg"))[3]
    good = broken.read_bytes()
    store_rows = ingest_module._store_rows

    def store_then_break(*args: object) -> None:
        # an image that breaks between its check and its encoding: the post is dropped, reported
        store_rows(*args)  # type: ignore[arg-type]
        broken.write_bytes(b"not an image")

    monkeypatch.setattr(ingest_module, "_store_rows", store_then_break)
    local = ingest(corpus, settings)
    expected, expected_hits = dump(settings), hits(settings)
    broken.write_bytes(good)

    on_ray = empty_store(settings, tmp_path / "home2")
    report = ingest(corpus, on_ray, ray_address="local")  # connected already: the fixture's cluster
    assert_same_rows(dump(on_ray), expected)
    got_hits = hits(on_ray)
    assert [h[:2] + h[3:] for h in got_hits] == [h[:2] + h[3:] for h in expected_hits]
    np.testing.assert_allclose([h[2] for h in got_hits], [h[2] for h in expected_hits], atol=1e-5)
    assert (report.images_encoded, report.texts_encoded, report.accounts_pooled) == (
        local.images_encoded,
        local.texts_encoded,
        local.accounts_pooled,
    )
    assert report.images_encoded > 0 and report.texts_encoded > 0
    assert [str(e) for e in report.rejected] == [str(e) for e in local.rejected] and len(report.rejected) == 1

    # interrupted after some batches: the rerun encodes only what has no vector
    monkeypatch.setattr(ingest_module, "_store_rows", store_rows)
    with Store.open(on_ray) as store:
        store.conn.execute(
            "DELETE FROM vectors WHERE content_hash IN (SELECT content_hash FROM vectors ORDER BY content_hash LIMIT 7)"
        )
    again = ingest(corpus, on_ray, ray_address="local")
    assert again.images_encoded + again.texts_encoded == 7 and again.posts_new == 0
    assert_same_rows(dump(on_ray), expected)


def export_both(settings: Settings, tmp_path: Path, spec: ExportSpec, batch_brands: int = 2) -> None:
    with Engine(settings) as engine:
        local = run_export(engine, spec, tmp_path / "local.out", batch_brands=batch_brands)
        on_ray = run_export(engine, spec, tmp_path / "ray.out", batch_brands=batch_brands, ray_address="local")
    assert (tmp_path / "ray.out").read_bytes() == (tmp_path / "local.out").read_bytes()  # same rows, same scores
    assert (on_ray.rows, on_ray.brands, on_ray.skipped) == (local.rows, local.brands, local.skipped)
    assert local.ray is None and on_ray.ray is not None  # a cluster without GPUs: CPU actors
    assert on_ray.ray["gpus_per_actor"] == 0 and on_ray.ray["placements"]
    assert all(p["gpu_ids"] == [] and p["device"] == "cpu" for p in on_ray.ray["placements"])


@needs_ray
def test_a_ray_export_from_the_cli_writes_the_local_rows(
    ray_cluster: None, env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(small_corpus, env)
    args = ("export", "-k", "7", "--micro", "--format", "jsonl", "--batch-brands", "2", "--json", "--out")
    assert run(capsys, *args, str(tmp_path / "local.jsonl"))[0] == 0
    code, out, err = run(capsys, *args, str(tmp_path / "ray.jsonl"), "--ray-address", "local")
    assert code == 0, err
    assert json.loads(out)["rows"] > 0
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


@needs_ray
def test_a_ray_export_writes_the_local_rows_with_the_head_reranking(
    ray_cluster: None, settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    ingest(small_corpus, settings)
    head = trained_head(settings)
    with torch.no_grad():
        head.mix.copy_(torch.tensor([1.0, -5.0]))  # reverses the set-to-set term: rerank reorders
    deploy(settings, head)
    headed = settings.with_(candidates=8)
    with Engine(headed) as engine:
        assert engine.snapshot.head is not None
    export_both(headed, tmp_path, ExportSpec(BRANDS[::-1], 5, "jsonl"), batch_brands=4)


@needs_ray
def test_an_interrupted_ray_export_resumes(
    ray_cluster: None, settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    ingest(small_corpus, settings)
    out, whole = tmp_path / "s.csv", tmp_path / "whole.csv"
    spec = ExportSpec(None, 5, "csv")

    def stop_after_first_chunk(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with Engine(settings) as engine:
        with pytest.raises(KeyboardInterrupt):
            run_export(engine, spec, out, progress=stop_after_first_chunk, batch_brands=2, ray_address="local")
        assert not out.exists() and len(list(out.with_name("s.csv.parts").glob("chunk-*.json"))) == 1
        report = run_export(engine, spec, out, batch_brands=2, ray_address="local")
        run_export(engine, spec, whole, batch_brands=2)
    assert report.resumed_brands == 2 and out.read_bytes() == whole.read_bytes()


def test_ray_address_without_ray_installed_is_a_clear_error(
    env: Settings,
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert run(capsys, "ingest", str(small_corpus), "--ray-address", "auto") == (1, "", RAY_MISSING)
    with Store.open(env) as store:  # refused before anything was stored
        assert store.conn.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
    out = tmp_path / "out" / "s.csv"
    assert run(capsys, "export", "--out", str(out), "--ray-address", "ray://head:10001") == (1, "", RAY_MISSING)
    assert not out.parent.exists()  # refused before any file was written


def test_the_embedded_store_is_refused_for_a_cluster_of_many_machines(tmp_path: Path) -> None:
    embedded = Settings(home=tmp_path / "home")
    for cluster in (Cluster("ray://10.0.0.5:10001", 8, 0, 1), Cluster("auto", 16, 2, 3)):
        assert cluster.spans_machines
        with pytest.raises(StoreUnavailable) as e:
            worker_settings(embedded, cluster)
        assert str(e.value) == (
            f"the embedded PostgreSQL under {tmp_path / 'home'} is reachable from this machine only, not from the "
            f"Ray cluster at {cluster.address!r}: set DATABASE_URL to a PostgreSQL with pgvector that every node "
            "can reach (see docs/scale-out.md)"
        )
    shared = embedded.with_(database_url="postgresql://db.internal/congruence")
    assert worker_settings(shared, Cluster("ray://10.0.0.5:10001", 8, 0, 1)) == shared
    assert not Cluster("ray://localhost:10001", 2, 0, 1).spans_machines and not Cluster("auto", 2, 0, 1).spans_machines
    gpus, cpus = Cluster("auto", 16, 2, 3), Cluster("auto", 16, 0, 3)
    assert (gpus.gpus_per_actor("auto"), gpus.gpus_per_actor("cpu"), cpus.gpus_per_actor("cuda")) == (1, 0, 0)
    assert (gpus.default_actors(1), gpus.default_actors(0), cpus.default_actors(0)) == (2, 16, 16)


class FakeRay:
    """Stands in for the ``ray`` module in ``connect``: ``init`` raises the given errors in
    turn, then connects."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors, self.calls, self.up = list(errors), 0, False

    def is_initialized(self) -> bool:
        return self.up

    def init(self, **_: object) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.up = True

    def shutdown(self) -> None:
        self.up = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 2.0}

    def nodes(self) -> list[dict[str, object]]:
        return [{"Alive": True}]


def test_a_ray_client_connection_is_retried_when_the_heads_server_for_it_dies_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ray-project/ray#63202: the proxier's fork for a client can die at birth; a new
    connection gets a new one. Other errors, and other addresses, are not retried."""
    from congruence.core.errors import CongruenceError
    from congruence.ray import cluster as ray_cluster

    died = ConnectionAbortedError(
        "Initialization failure from server:\nRuntimeError: Starting Ray client server failed"
    )
    monkeypatch.setattr(ray_cluster, "CLIENT_RETRY_S", 0.0)
    fake = FakeRay([died])
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: fake)
    with caplog.at_level(logging.WARNING, logger="congruence.ray.cluster"):
        cluster = ray_cluster.connect("ray://10.0.0.5:10001")
    assert fake.calls == 2 and cluster.cpus == 2 and "connection 1 of 3" in caplog.text
    for address, errors, calls in (
        ("ray://10.0.0.5:10001", [died] * 3, 3),
        ("ray://10.0.0.5:10001", [ValueError("bad token")], 1),
        ("10.0.0.5:6379", [died], 1),
    ):
        fake = FakeRay(errors)
        monkeypatch.setattr(ray_cluster, "import_ray", lambda fake=fake: fake)
        with pytest.raises(CongruenceError, match=f"^cannot connect to the Ray cluster at '{address}'"):
            ray_cluster.connect(address)
        assert fake.calls == calls
