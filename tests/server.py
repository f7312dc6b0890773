"""A real uvicorn server on a free loopback port, in a thread, for API and browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import uvicorn

from congruence.api.app import create_app
from congruence.api.services import Services
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.store import database
from congruence.training.jobs import train_and_deploy
from congruence.training.loop import TrainConfig

from .conftest import TABLES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(settings: Settings, auth: bool, read_only: bool = False, services: Services | None = None) -> Iterator[str]:
    """Yield the base URL of the real app served by uvicorn; stop it afterwards."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, auth=auth, read_only=read_only, services=services),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def corpus_with_head(pg_url: str, home: Path, corpus: Path, engagement: bool = False) -> Settings:
    """An emptied database with ``corpus`` ingested and a congruence head in service
    (and, with ``engagement``, an engagement model)."""
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    settings = Settings(home=home, database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    ingest(corpus, settings)
    train_and_deploy(
        settings,
        TrainConfig(epochs=3, batch_brands=4, list_size=8, device="cpu"),
        ("head",),
        None,
        0.3,
        activate_anyway=True,
    )  # a head in service, whatever it scores on 1 held-out brand
    if engagement:
        from congruence.engagement.model import EngagementConfig
        from congruence.engagement.train import train_engagement

        # trained on the CPU, as the head: the same model on a host with a GPU
        train_engagement(replace(settings, device="cpu"), EngagementConfig(epochs=5, seed=0), activate_anyway=True)
    return settings
