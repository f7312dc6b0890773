"""What one server process holds: the engine, the explainer, export jobs, the scorer.

The engine opens at start-up; when the database is not reachable yet the server still
starts, ``/readyz`` says why, and each request retries (at most every few seconds) so
the service recovers by itself once PostgreSQL is back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

import psycopg

from congruence.api.queries import QueryCache
from congruence.api.ratelimit import RateLimiter
from congruence.core.errors import CongruenceError, StoreUnavailable
from congruence.core.settings import Settings
from congruence.store import database

if TYPE_CHECKING:
    from congruence.api.export_jobs import ExportJobs
    from congruence.engagement.service import Scorer
    from congruence.search.engine import Engine
    from congruence.search.explain import Explainer

logger = logging.getLogger(__name__)
RETRY_SECONDS = 2.0


class Services:
    def __init__(self, settings: Settings, auth: bool = True):
        self.settings = settings
        self.auth = auth
        self._engine: Engine | None = None
        self._explainer: Explainer | None = None
        self._exports: ExportJobs | None = None
        self._scorer: Scorer | None = None
        self._keys_conn: psycopg.Connection | None = None
        self.queries = QueryCache()
        self.error: str | None = None
        self._tried = 0.0
        self._lock = threading.RLock()
        self.limiter = RateLimiter(settings.rate_limit)

    def start(self) -> None:
        try:
            self.engine()
        except CongruenceError as e:
            logger.warning("not ready: %s", e)

    def close(self) -> None:
        with self._lock:
            if self._exports is not None:
                self._exports.close()
            if self._engine is not None:
                self._engine.close()
            if self._keys_conn is not None:
                self._keys_conn.close()
            self._engine = self._explainer = self._exports = self._scorer = self._keys_conn = None

    # -- the parts, opened on first use -----------------------------------------------------
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is not None:
                conn = self._engine.store.conn
                if not (conn.broken or conn.closed):
                    return self._engine
                logger.warning("lost the database connection; reconnecting")
                self._drop_engine()
            if self.error is not None and time.monotonic() - self._tried < RETRY_SECONDS:
                raise StoreUnavailable(self.error)
            self._tried = time.monotonic()
            try:
                from congruence.search.engine import Engine

                self._engine = Engine(self.settings)
                self.error = None
            except CongruenceError as e:
                self.error = str(e)
                raise
            return self._engine

    def _drop_engine(self) -> None:
        if self._engine is not None:
            with contextlib.suppress(psycopg.Error):  # closing a broken connection may fail too
                self._engine.close()
        self._engine = self._explainer = self._scorer = None
        self.error, self._tried = "lost the database connection", 0.0

    def explainer(self) -> Explainer:
        with self._lock:
            if self._explainer is None:
                from congruence.search.explain import Explainer

                self._explainer = Explainer(self.engine())
            return self._explainer

    def exports(self) -> ExportJobs:
        with self._lock:
            if self._exports is None:
                from congruence.api.export_jobs import ExportJobs

                self._exports = ExportJobs(self.settings.home / "exports", self.engine)
            return self._exports

    def scorer(self) -> Scorer:
        with self._lock:
            if self._scorer is None:
                from congruence.engagement.service import Scorer

                self._scorer = Scorer.load(self.settings, self.engine().store)
            return self._scorer

    def keys_conn(self) -> psycopg.Connection:
        """Its own connection: checking a key never waits behind a long query."""
        with self._lock:
            if self._keys_conn is None or self._keys_conn.closed or self._keys_conn.broken:
                url = self.engine().store.url
                self._keys_conn = database.connect(url, autocommit=True)
            return self._keys_conn

    def refresh(self) -> None:
        """Pick up a new ingest or a newly trained model without a restart."""
        with self._lock:
            if self._engine is not None:
                self._engine.refresh()
            self._scorer = None
