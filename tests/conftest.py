"""Shared fixtures: one real embedded PostgreSQL per session, tables truncated per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from congruence.cli.main import main
from congruence.core.settings import Settings
from congruence.store import database
from congruence.store.embedded_pg import scratch_pg

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTOS = SHARED / "photos"
TABLES = "accounts, posts, vectors, models, store_meta, account_vectors, matches, api_keys"


@pytest.fixture(scope="session", autouse=True)
def on_the_cpu() -> Iterator[None]:
    """Every model in the tests runs on the CPU, so trained heads and scores compared with
    brute force are the same on a host with a GPU (tests/test_device.py asks for CUDA itself)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONGRUENCE_DEVICE", "cpu")  # the CLI and the servers the tests start
        yield


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A real PostgreSQL with pgvector: CONGRUENCE_TEST_DATABASE_URL, or an embedded one."""
    url = os.environ.get("CONGRUENCE_TEST_DATABASE_URL")
    with ExitStack() as stack:
        if not url:
            # a scratch_dir, not under pytest's tmp dirs: those are 0700, and as root the embedded
            # server runs as its own user, which must be able to enter the data directory's parent
            url = stack.enter_context(scratch_pg("congruence-test-pg-")).uri
        with database.connect(url, autocommit=True) as conn:
            database.migrate(conn)
        yield url


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    """Settings on an emptied database and a fresh CONGRUENCE_HOME."""
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return Settings(home=tmp_path / "home", database_url=pg_url, batch_size=16, device="cpu")


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The same settings, exported as the environment the CLI reads."""
    monkeypatch.setenv("CONGRUENCE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("CONGRUENCE_DEVICE", settings.device)
    return settings


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo corpus: 6 (direct) brands and 18 influencers in 6 categories; no post tags
    anyone (``collaborations=False``): its tests add the tags they need."""
    from congruence.datasets.demo import build_demo

    return build_demo(
        tmp_path_factory.mktemp("corpus"),
        influencers_per_category=3,
        posts_per_influencer=2,
        posts_per_brand=2,
        partner_brands=0,
        direct_brands=1,
        collaborations=False,
    )


def requires_photos() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (PHOTOS / "labels.csv").exists(), reason=f"real photos not found at {PHOTOS} (../shared/data/photos)"
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI through main(argv): (exit code, stdout, stderr)."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err
