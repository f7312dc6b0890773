"""What one server process holds: the engine, the explainer, export jobs, the scorer.

At start-up the server publishes the store as it is (``training.deploy.publish_current``:
a damaged, missing or stale index is rebuilt from PostgreSQL before the first answer),
unless it serves read-only; then the engine only reads. Reads go through one pool of
connections (``store.pool``), which reconnects by itself once PostgreSQL is back. When the
database is not reachable at start-up the server still starts, ``/readyz`` says why, and
each request retries (at most every few seconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from congruence.api.queries import QueryCache
from congruence.api.ratelimit import RateLimiter
from congruence.core.errors import CongruenceError, StoreUnavailable
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.api.export_jobs import ExportJobs
    from congruence.engagement.service import Scorer
    from congruence.search.engine import Engine
    from congruence.search.explain import Explainer
    from congruence.search.shards import ShardClient
    from congruence.store.pool import StorePool

logger = logging.getLogger(__name__)
RETRY_SECONDS = 2.0
T = TypeVar("T")


class Services:
    """read_only: serve what is published and never write (``serve --read-only``: no
    publication at start-up, API keys checked without recording their use). publish: publish
    the store at start-up, a writer's step before any answer (by default unless read-only;
    ``serve --workers N`` publishes once, before it starts the workers). shards: answer
    through these shards (``serve --ray-address ADDR --shards N``)."""

    def __init__(
        self,
        settings: Settings,
        auth: bool = True,
        read_only: bool = False,
        publish: bool | None = None,
        shards: Sequence[ShardClient] | None = None,
    ):
        self.settings = settings
        self.shards = shards  # sharded serving: the ingress answers through these
        self.auth = auth
        self.read_only = read_only
        self.publish = not read_only if publish is None else publish and not read_only
        self._pool: StorePool | None = None
        self._engine: Engine | None = None
        self._explainer: Explainer | None = None
        self._exports: ExportJobs | None = None
        self._scorer: Scorer | None = None
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
            if self._pool is not None:
                self._pool.close()
            self._engine = self._explainer = self._exports = self._scorer = self._pool = None

    # -- the parts, opened on first use -----------------------------------------------------
    def pool(self) -> StorePool:
        """The connections every part of this process reads through."""
        with self._lock:
            if self._pool is None:
                from congruence.store.pool import StorePool

                self._pool = self._retrying(lambda: StorePool.open(self.settings))
            return self._pool

    def engine(self) -> Engine:
        engine = self._engine  # read without the lock: queries never wait for one another here
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                pool = self.pool()
                self._engine = self._retrying(lambda: self._open_engine(pool))
            return self._engine

    def _open_engine(self, pool: StorePool) -> Engine:
        from congruence.search.engine import Engine

        if self.publish:
            from congruence.training.deploy import publish_current

            publish_current(self.settings, verify=True)
        if self.shards is not None:
            from congruence.search.shards import ShardedEngine

            return ShardedEngine(self.settings, self.shards, pool)
        return Engine(self.settings, pool)

    def _retrying(self, opener: Callable[[], T]) -> T:
        """``opener()``, or the last error again while it is recent (a store that is down is
        not asked again by every request)."""
        if self.error is not None and time.monotonic() - self._tried < RETRY_SECONDS:
            raise StoreUnavailable(self.error)
        self._tried = time.monotonic()
        try:
            out = opener()
        except CongruenceError as e:
            self.error = str(e)
            raise
        self.error = None
        return out

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

                with self.pool().reading() as store:
                    self._scorer = Scorer.load(self.settings, store)
            return self._scorer

    def refresh(self) -> None:
        """Pick up a new publication or a newly trained engagement model without a restart."""
        with self._lock:
            if self._engine is not None:
                self._engine.refresh()
            self._scorer = None
