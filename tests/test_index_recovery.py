"""The FAISS index deleted, corrupted or stale while the service is down: the next start-up
notices (manifest checksums, counts, version sums, model), rebuilds or updates it from
PostgreSQL before the first answer, and answers as from a freshly built index."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.indexer.index import VectorIndex
from congruence.indexer.index_sync import is_stale, space_dir
from congruence.search.engine import Engine
from congruence.store import database
from congruence.store.records import Store
from congruence.store.vectors import VectorStore

from .server import corpus_with_head, serving

BRANDS = ("brand_peakfit", "brand_wanderly")
INFLUENCERS = ("fitness_creator_00", "travel_creator_01")


def _answers(url: str) -> dict[str, object]:
    """Match (FAISS + head rerank) and similar (FAISS alone) answers, whole."""
    out: dict[str, object] = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        for b in BRANDS:
            r = c.post("/v1/match", json={"brand_id": b, "k": 10, "posts": 1})
            assert r.status_code == 200, r.text
            out[b] = r.json()["data"]
        for i in INFLUENCERS:
            r = c.get(f"/v1/influencers/{i}/similar", params={"k": 17, "posts": 1})
            assert r.status_code == 200, r.text
            out[i] = r.json()["data"]
    return out


@pytest.fixture(scope="module")
def served(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store with a head in service, its index folder, and the answers of its intact index."""
    settings = corpus_with_head(pg_url, tmp_path_factory.mktemp("recovery") / "home", small_corpus)
    with Engine(settings) as engine:
        space = engine.snapshot.space
    with serving(settings, auth=False) as url:
        reference = _answers(url)
    return {"settings": settings, "space": space, "dir": space_dir(settings.index_dir, space), "reference": reference}


def _check_on_disk(served: dict) -> None:
    """The index on disk loads (every checksum holds) and matches PostgreSQL exactly."""
    index, man = VectorIndex.load(served["dir"])
    with Store.open(served["settings"]) as store:
        assert is_stale(VectorStore(store), man, served["space"], man.model) is None
    assert man.count == index.n_alive


def _current(d: Path) -> Path:
    return (d / "current").resolve()


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite_manifest(d: Path, **changes: object) -> None:
    path = _current(d) / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


DAMAGE: dict[str, Callable[[Path], object]] = {
    "index folder deleted": lambda d: shutil.rmtree(d),
    "index.faiss deleted": lambda d: (_current(d) / "index.faiss").unlink(),
    "labels.npy deleted": lambda d: (_current(d) / "labels.npy").unlink(),
    "current link deleted": lambda d: (d / "current").unlink(),
    "byte flipped in index.faiss": lambda d: _flip_byte(_current(d) / "index.faiss"),
    "byte flipped in alive.npy": lambda d: _flip_byte(_current(d) / "alive.npy"),
    "manifest not JSON": lambda d: (_current(d) / "manifest.json").write_text("{not json"),
    "manifest of another model": lambda d: _rewrite_manifest(d, model="some-other-model@1"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_is_rebuilt_at_start_up(served: dict, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    DAMAGE[damage](served["dir"])
    caplog.set_level(logging.INFO, logger="congruence")
    with serving(served["settings"], auth=False) as url:
        _check_on_disk(served)  # repaired at start-up, before any request
        ready = httpx.get(url + "/readyz").json()
        assert ready["ready"] is True and ready["influencers"] == 18
        assert _answers(url) == served["reference"]
    assert "index rebuilt from PostgreSQL" in caplog.text


def _set_embedding(settings: Settings, space: str, target: str, like: str, bump_version: bool) -> None:
    """Give ``target`` the vector of ``like`` in ``space`` directly in PostgreSQL, behind the index's back."""
    bump = ", version = nextval('vector_version')" if bump_version else ""
    assert settings.database_url is not None
    with database.connect(settings.database_url, autocommit=True) as conn:
        cur = conn.execute(
            f"UPDATE account_vectors SET embedding = (SELECT embedding FROM account_vectors"  # noqa: S608
            f" WHERE account_id = %s AND space = %s){bump} WHERE account_id = %s AND space = %s",
            (like, space, target, space),
        )
        assert cur.rowcount == 1


def _similar(url: str, influencer: str) -> list[tuple[str, float]]:
    r = httpx.get(f"{url}/v1/influencers/{influencer}/similar", params={"k": 17, "posts": 0}, timeout=60)
    assert r.status_code == 200, r.text
    return [(h["influencer_id"], h["score"]) for h in r.json()["data"]]


def test_stale_index_is_brought_up_to_date_at_start_up(served: dict) -> None:
    """Vectors changed or deleted in PostgreSQL while the service was down, by the code's own
    versioned writes or by hand: the first answer after start-up already reflects them."""
    settings, space = served["settings"], served["space"]
    for target, like, bump in (
        ("fitness_creator_02", "travel_creator_01", True),
        ("food_creator_00", "tech_creator_02", False),
    ):
        _set_embedding(settings, space, target, like, bump_version=bump)
        with serving(settings, auth=False) as url:
            _check_on_disk(served)
            got = _similar(url, like)
        assert got[0][0] == target and got[0][1] == pytest.approx(1.0, abs=1e-5), (bump, got[:3])
        assert got[1][1] < 0.99

    gone = "pets_creator_01"
    with database.connect(str(settings.database_url), autocommit=True) as conn:  # by hand: no generation bump
        assert conn.execute("DELETE FROM accounts WHERE id = %s", (gone,)).rowcount == 1
    with serving(settings, auth=False) as url:
        _check_on_disk(served)
        assert httpx.get(url + "/readyz").json()["influencers"] == 17
        answers = _answers(url)
    for hits in answers.values():
        assert gone not in {h["influencer_id"] for h in hits}  # type: ignore[attr-defined]
    with Store.open(settings) as store:  # brute force over what PostgreSQL holds now
        _, ids, vecs = VectorStore(store).account_vectors(space, kind="influencer")
    me = list(ids).index(INFLUENCERS[0])
    others = [i for i in range(len(ids)) if i != me]
    hits = answers[INFLUENCERS[0]]
    assert {h["influencer_id"] for h in hits} == {ids[i] for i in others}  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        [h["score"] for h in hits],
        np.sort(vecs[others] @ vecs[me])[::-1],  # type: ignore[attr-defined]
        atol=1e-5,
    )
