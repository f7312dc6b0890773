"""Reading PostgreSQL from many threads at once: a pool of connections (``psycopg_pool``).

A serving engine answers concurrent queries; each read borrows a connection for its
duration (``StorePool.reading``) instead of queueing behind one connection and one lock.
The pool reconnects by itself after the database restarts: a connection found broken by a
read is dropped when it comes back, and replaced (connections are not checked when borrowed:
that would cost a round trip per read).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from congruence.core.errors import StoreUnavailable
from congruence.core.settings import Settings
from congruence.store import database
from congruence.store.records import Store

logger = logging.getLogger(__name__)
MAX_CONNECTIONS = 8  # a serving process: the threads that read at once (FastAPI's pool is 40)
WAIT_SECONDS = 3.0  # for a free connection; a read holds one for about a millisecond
DOWN_SECONDS = 2.0  # after finding the database unreachable, reads fail at once for this long


def _configure(conn: psycopg.Connection) -> None:
    with contextlib.suppress(psycopg.ProgrammingError):  # no vector type before the first migration
        register_vector(conn)


class StorePool:
    """A pool of autocommit connections to one database, handed out as ``Store``s."""

    def __init__(self, url: str, max_size: int = MAX_CONNECTIONS):
        self.url = url
        self._down: tuple[str, float] | None = None  # (why, when) the database was last found unreachable
        database.connect(url).close()  # unreachable: says why at once, naming the database (password redacted)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": 10},
            configure=_configure,
            open=False,
            name="congruence",
        )
        try:
            self._pool.open(wait=True, timeout=WAIT_SECONDS)
        except PoolTimeout:
            self._pool.close()
            raise StoreUnavailable(f"cannot reach the database at {database.redact(url)}") from None

    @classmethod
    def open(cls, settings: Settings, max_size: int = MAX_CONNECTIONS) -> StorePool:
        return cls(database.database_url(settings), max_size)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Store]:
        """A ``Store`` on a borrowed connection, returned to the pool on exit. While the
        database is found unreachable, StoreUnavailable at once (not after a wait)."""
        down = self._down
        if down is not None and time.monotonic() - down[1] < DOWN_SECONDS:
            raise StoreUnavailable(down[0])
        try:
            with self._pool.connection(timeout=WAIT_SECONDS) as conn:
                self._down = None
                yield Store(conn, self.url)
        except PoolTimeout:
            try:  # no connection came: the database is down, or every connection is busy
                database.connect(self.url).close()
            except StoreUnavailable as e:
                self._down = (str(e), time.monotonic())
                raise
            raise StoreUnavailable(
                f"no database connection free within {WAIT_SECONDS:.0f} s ({self._pool.max_size} in use)"
            ) from None

    def ping(self) -> None:
        with self.reading() as store:
            store.conn.execute("SELECT 1")

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> StorePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
