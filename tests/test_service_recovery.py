"""PostgreSQL dies under a running service: 503s that say so, readyz says why, then recovery."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from congruence.api.keys import create_key, revoke_key
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.store import database
from congruence.store.embedded_pg import scratch_dir, start_embedded

from .conftest import run
from .server import serving


class OwnPostgres:
    """An embedded PostgreSQL of this test's own, which it may stop and start."""

    def __init__(self) -> None:
        self.base = scratch_dir("congruence-recovery-pg-")
        self.pg = start_embedded(self.base / "data", cleanup=None)
        self.url = self.pg.uri

    def crash(self) -> None:
        self.pg.stop("immediate")  # no checkpoint: PostgreSQL recovers from its WAL

    def start(self) -> None:
        self.pg.start()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.pg.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    yield pg
    pg.close()


def _match(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/match", json={"brand_id": "brand_peakfit", "k": 5}, timeout=60)


def test_database_down_then_back(own_pg: OwnPostgres, small_corpus: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=own_pg.url, batch_size=16, rate_limit=0, device="cpu")
    ingest(small_corpus, settings)
    with serving(settings, auth=False) as url:
        before = _match(url)
        assert before.status_code == 200
        png = small_corpus / "images" / "brand_peakfit_p0.jpg"
        r = httpx.post(url + "/v1/score", files=[("images", ("p.jpg", png.read_bytes(), "image/jpeg"))])
        assert r.status_code == 404 and r.json()["detail"].startswith("no engagement model yet")

        own_pg.crash()
        for _ in range(3):  # the first request finds the connection dead, the next ones fail to reconnect
            t = time.monotonic()
            r = _match(url)
            assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
            assert time.monotonic() - t < 10
        assert "database" in r.json()["detail"]
        ready = httpx.get(url + "/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert "cannot reach the database" in ready.json()["database"] or "unavailable" in ready.json()["database"]
        assert httpx.get(url + "/healthz").status_code == 200  # the process itself is fine

        own_pg.start()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/readyz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover after the database came back"
            time.sleep(0.5)
        after = _match(url)
        assert after.status_code == 200 and after.json() == before.json()
    with database.connect(own_pg.url) as conn:  # nothing was lost
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (24,)


SECRET = "s3cr3t@pw"
DATABASE_URLS = [  # every form libpq reads a password from; nothing listens on port 1
    f"postgresql://app:{SECRET}@127.0.0.1:1/congruence",
    f"postgresql://app@127.0.0.1:1/congruence?password={SECRET}&sslmode=disable",
    f"host=127.0.0.1 port=1 user=app password='{SECRET}' dbname=congruence",
    f"host=127.0.0.1 port=1 user=app password={SECRET} dbname=congruence",
]


@pytest.mark.parametrize("database_url", DATABASE_URLS)
def test_secrets_never_reach_answers_or_logs(
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url, rate_limit=0, device="cpu")
    caplog.set_level("DEBUG")
    with serving(settings, auth=True) as url:
        ready = httpx.get(url + "/readyz", timeout=30)
        assert ready.status_code == 503 and "cannot reach the database at " in ready.json()["database"]
        assert "***" in ready.json()["database"]
        key = "cgk_abcdefabcdef_" + "A" * 43
        r = httpx.post(url + "/v1/match", json={"brand_id": "x"}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 503
        texts = [ready.text, r.text, caplog.text]
    monkeypatch.setenv("CONGRUENCE_HOME", str(tmp_path / "cli"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    code, out, err = run(capsys, "status")
    assert code == 1 and err.startswith("error: cannot reach the database at ")
    texts += [out, err]
    for text in texts:
        assert "s3cr3t" not in text and "@pw" not in text and "A" * 43 not in text, text


def _secret(key: str) -> str:
    """A key's secret: ``cgk_<id>_<secret>``, where the secret itself may hold ``_``."""
    secret = key.split("_", 2)[2]
    assert len(secret) == 43, key
    return secret


def test_keys_never_reach_answers_or_logs(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Wrong, revoked and rate-limited keys against a live database: the secret is never echoed."""
    settings = settings.with_(rate_limit=60)
    assert settings.database_url is not None
    with database.connect(settings.database_url, autocommit=True) as conn:
        key, info = create_key(conn, "leak check")
        revoked, rinfo = create_key(conn, "revoked")
        revoke_key(conn, rinfo.id)
    secret = _secret(key)
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    caplog.set_level("DEBUG")
    texts: list[str] = []
    with serving(settings, auth=True) as url:
        for candidate in (wrong, revoked, key + "x", "cgk_" + secret):
            r = httpx.get(url + "/v1/categories", headers={"Authorization": f"Bearer {candidate}"})
            assert r.status_code == 401, candidate
            texts += [r.text, str(r.headers)]
        codes: list[int] = []
        while 429 not in codes and len(codes) < 60:  # bursts of 10, then 1 a second
            r = httpx.get(url + "/v1/categories", headers={"Authorization": f"Bearer {key}"})
            codes.append(r.status_code)
            texts += [r.text, str(r.headers)]
        assert codes[-1] == 429 and codes[0] == 200
    texts.append(caplog.text)
    for text in texts:
        assert secret not in text and _secret(revoked) not in text and _secret(wrong) not in text
