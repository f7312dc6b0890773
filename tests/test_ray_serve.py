"""Sharded serving on a real local Ray cluster: 4 shards on Ray Serve answer as one process
does (through the HTTP API too); a Ray export ranks against them, shipping its actors no
account, and writes the single process's rows; shards built on Ray equal shards built here;
a replica killed under load with 2 replicas fails no request; with 1 replica a request in
the gap gets a 503 naming the shard, never a shorter list."""

from __future__ import annotations

import contextlib
import csv
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from congruence.api.services import Services
from congruence.core.errors import CongruenceError
from congruence.core.settings import Settings
from congruence.indexer.publish import read_publication
from congruence.indexer.ray_shards import build_on_ray
from congruence.ray.actors import Actors
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters
from congruence.search.shards import ShardedEngine, ShardUnavailable
from congruence.store.records import STORE_ID_KEY, Store
from congruence.training.deploy import active_spaces

from .conftest import run
from .server import serving
from .test_ray import needs_ray, ray_cluster  # noqa: F401 (the module's cluster)
from .test_shards import BRANDS, N, same, sharded_store  # noqa: F401 (the 4-shard store)

pytestmark = needs_ray


@pytest.fixture(scope="module")
def on_serve(ray_cluster: None, sharded_store: Settings) -> Iterator[list]:  # noqa: F811
    from congruence.search.ray_serve import deploy_shards

    clients = deploy_shards("local", sharded_store, N, 1, options=lambda _: {"health_check_period_s": 1})
    yield clients
    from ray import serve

    serve.shutdown()


def test_four_shards_on_serve_answer_as_one_process(sharded_store: Settings, on_serve: list) -> None:  # noqa: F811
    top = None
    with Engine(sharded_store) as single, ShardedEngine(sharded_store, on_serve) as sharded:
        for brand in BRANDS:
            for filters in (Filters(), Filters.make(micro=True), Filters.make(brand_safe=True)):
                same(sharded.match_brand(brand, 10, filters, posts=1), single.match_brand(brand, 10, filters, posts=1))
        top = [h.influencer_id for h in single.match_brand("brand_peakfit", 10)]
        feedback = Feedback.make(like=[top[3]], dislike=[top[0]])
        same(
            sharded.similar("travel_creator_01", 7, feedback=feedback),
            single.similar("travel_creator_01", 7, feedback=feedback),
        )
        health = sharded.shard_health()
        assert [h.shard for h in health] == list(range(N))  # type: ignore[union-attr]
        assert {h.generation for h in health} == {sharded.snapshot.generation}  # type: ignore[union-attr]
        assert sum(h.accounts for h in health) == single.snapshot.index.n_alive  # type: ignore[union-attr]
    services = Services(sharded_store, auth=False, read_only=True, shards=on_serve)
    with serving(sharded_store, auth=False, services=services) as url:
        r = httpx.post(f"{url}/v1/match", json={"brand_id": "brand_peakfit", "k": 10}, timeout=60)
        assert r.status_code == 200, r.text
        assert [h["influencer_id"] for h in r.json()["data"]] == top
        ready = httpx.get(f"{url}/readyz", timeout=60).json()
        assert ready["ready"] and ready["influencers"] == 18 and len(ready["shards"]) == N, ready
        assert {s["generation"] for s in ready["shards"]} == {ready["generation"]}


def test_a_5_mb_batch_is_answered_as_its_queries_one_by_one(
    sharded_store: Settings,  # noqa: F811
    on_serve: list,
) -> None:
    client = on_serve[0]
    with ShardedEngine(sharded_store, on_serve) as sharded:
        snap = sharded.current()
        xq = np.random.default_rng(0).standard_normal((5000, snap.index.dim)).astype(np.float32)  # 5 MB at 256-d
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
        assert xq.nbytes > 4 << 20  # past gRPC's cap: an actor call takes it through Ray's object store
        lists, _ = client.search(snap.generation, xq, [3] * len(xq), Filters())
        for q in (0, 4999):
            alone, _ = client.search(snap.generation, xq[q : q + 1], [3], Filters())  # one query: inline
            assert np.array_equal(lists[q][0], alone[0][0])


def test_a_ray_export_ranks_against_the_shards_on_serve(
    sharded_store: Settings,  # noqa: F811
    on_serve: list,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shipped: list[dict] = []
    real = Actors.map
    monkeypatch.setattr(Actors, "map", lambda self, *a, **kw: shipped.append(kw["put"]) or real(self, *a, **kw))
    monkeypatch.setenv("CONGRUENCE_HOME", str(sharded_store.home))  # the CLI's settings: the store's
    monkeypatch.setenv("DATABASE_URL", str(sharded_store.database_url))
    monkeypatch.setenv("CONGRUENCE_DEVICE", "cpu")
    with Engine(sharded_store) as single:
        spec = ExportSpec(None, 7, "csv", Filters.make(micro=True))
        run_export(single, spec, tmp_path / "single.csv", batch_brands=4)
    args = ("export", "-k", "7", "--micro", "--batch-brands", "4", "--out", str(tmp_path / "ray.csv"))
    code, _, err = run(capsys, *args, "--ray-address", "local", "--shards", "3")
    assert (code, err) == (
        1,
        "error: the store is published in 4 shards, not 3: run `congruence shards build --shards 3`\n",
    )
    code, out, err = run(capsys, *args, "--ray-address", "local", "--shards", str(N))  # the shards running: attached
    assert code == 0, err
    assert "no GPU, against 4 shards on Ray Serve" in out
    a, b = (list(csv.DictReader((tmp_path / f).open())) for f in ("ray.csv", "single.csv"))
    assert len(a) == len(b) == 6 * 7
    for x, y in zip(a, b, strict=True):  # scores to 1e-5: the head's batches are made up differently
        assert {**x, "score": None} == {**y, "score": None}
        assert float(x["score"]) == pytest.approx(float(y["score"]), abs=1e-5)
    [put] = shipped
    assert put["snapshot"].index.n_alive == 0 and put["snapshot"].shards is None  # no account went to the actors
    assert len(put["snapshot"].table.ids) == 18 and put["shards"].n == N


def test_an_ingress_never_answers_from_the_shards_of_another_store(
    sharded_store: Settings,  # noqa: F811
    on_serve: list,
) -> None:
    from congruence.search.ray_export import shards_on_serve
    from congruence.search.ray_serve import RayShard, running_shards
    from congruence.search.ray_shard import store_id

    mine = store_id(sharded_store)
    assert running_shards() == {(N, mine)}
    # a client of another store finds none of these workers: a 503 naming the shard, not their rows
    with pytest.raises(ShardUnavailable, match="shard 0 of 4 is unavailable"):
        RayShard(0, N, "another-store", timeout_s=0.5).health()
    # an export from a store that is not the running shards' is refused, saying whose they are
    with Store.open(sharded_store) as store:
        store.set_meta(STORE_ID_KEY, "another-store")
    try:
        refused = pytest.raises(CongruenceError, match=f"serve 4 shards of store {mine}, not 4 shards of this store")
        with refused, shards_on_serve("local", sharded_store, N):
            pass
    finally:
        with Store.open(sharded_store) as store:
            store.set_meta(STORE_ID_KEY, mine)


def test_shards_built_on_ray_are_the_shards_built_here(sharded_store: Settings, on_serve: list) -> None:  # noqa: F811
    with Store.open(sharded_store) as store:
        _, before = read_publication(store)
    assert before is not None
    pub, ran = build_on_ray(sharded_store, "local", N, active_spaces(sharded_store))
    assert sorted((r["space"], r["shard"]) for r in ran) == sorted((s, i) for s in pub.shards for i in range(N))
    assert all(r["reason"] == "up to date" for r in ran)  # the store did not change: no shard written again
    assert {s: [p.count for p in ps] for s, ps in pub.shards.items()} == {
        s: [p.count for p in ps] for s, ps in before.shards.items()
    }


def _kill_one_replica(shard: int) -> None:
    import ray

    names = [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"congruence-shard-{shard}" in a["name"]
    ]
    replica = next(n for n in names if "SERVE_REPLICA" in n)
    ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)


def _workers(shard: int) -> list[str]:
    import ray

    from congruence.search.ray_shard import NAMESPACE, WORKER

    prefix = WORKER.format(i=shard, n=N, store="")[:-1]  # the workers of shard i of N, of any store
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a.get("namespace") == NAMESPACE and a["name"].startswith(prefix)
    )


def test_a_worker_that_dies_alone_fails_its_replicas_check_and_is_replaced(
    sharded_store: Settings,
    on_serve: list,  # noqa: F811
) -> None:
    import ray

    from congruence.search.ray_shard import NAMESPACE

    with Engine(sharded_store) as single, ShardedEngine(sharded_store, on_serve) as sharded:
        reference = single.match_brand("brand_peakfit", 10)
        same(sharded.match_brand("brand_peakfit", 10), reference)
        old = _workers(3)
        assert len(old) == 1, old  # one replica, one worker
        ray.kill(ray.get_actor(old[0], namespace=NAMESPACE), no_restart=True)
        # Serve's next health check (every second here) fails, and it replaces the replica; the
        # request waits for the new worker to load, then answers in full
        same(sharded.match_brand("brand_peakfit", 10), reference)
        new = _workers(3)
        assert len(new) == 1 and new != old, (old, new)


def test_a_killed_replica_fails_no_request_with_two_and_names_its_shard_with_one(
    sharded_store: Settings,
    on_serve: list,  # noqa: F811
) -> None:
    from congruence.search.ray_serve import deploy_shards

    two = deploy_shards("local", sharded_store, N, 2, options=lambda _: {"health_check_period_s": 1})
    with Engine(sharded_store) as single, ShardedEngine(sharded_store, two) as sharded:
        reference = single.match_brand("brand_wanderly", 10)
        results: list[object] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    results.append(sharded.match_brand("brand_wanderly", 10))
                except Exception as e:  # noqa: BLE001 (counted: none may fail)
                    results.append(e)

        t = threading.Thread(target=load)
        t.start()
        while len(results) < 3:
            pass
        _kill_one_replica(2)
        seen = len(results)
        while len(results) < seen + 20:  # requests through the gap and after
            pass
        stop.set()
        t.join()
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    for hits in results:
        same(hits, reference)  # type: ignore[arg-type]

    one = deploy_shards("local", sharded_store, N, 1, timeout_s=2.0)
    with ShardedEngine(sharded_store, one) as sharded:
        assert len(sharded.match_brand("brand_wanderly", 10)) == 10
        _kill_one_replica(1)
        # Serve replaces a dead replica within seconds, as fast as the ingress retries on a quiet
        # machine: so that the request lands in the gap, every replica shard 1 starts, and every
        # worker, is killed (a worker is named before it has loaded) until the request has answered
        answered = threading.Event()

        def keep_killing() -> None:
            import ray

            from congruence.search.ray_shard import NAMESPACE

            while True:
                with contextlib.suppress(Exception):  # none up right now, or it died first
                    _kill_one_replica(1)
                for name in _workers(1):
                    with contextlib.suppress(Exception):
                        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                swept.set()
                if answered.wait(0.02):
                    return

        # the request starts once the first sweep is done: the worker of the replica killed
        # above dies with it, but not at once, and on a busy machine it could still answer
        swept = threading.Event()
        killer = threading.Thread(target=keep_killing)
        killer.start()
        swept.wait()
        try:
            with pytest.raises(ShardUnavailable, match="shard 1 of 4 is unavailable"):
                sharded.match_brand("brand_wanderly", 10)
        finally:
            answered.set()
            killer.join()
