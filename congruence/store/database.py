"""Connecting to PostgreSQL: an embedded server under CONGRUENCE_HOME, or DATABASE_URL."""

from __future__ import annotations

import contextlib
import logging
import re
from importlib import resources
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector

from congruence.core.errors import StoreUnavailable
from congruence.core.settings import Settings
from congruence.store.embedded_pg import start_embedded

logger = logging.getLogger(__name__)
_MIGRATION_LOCK = 7_361_204  # arbitrary advisory-lock key shared by every congruence process


def redact(url: str) -> str:
    """``url`` with any password replaced by ***, safe for logs and error messages.

    Covers the three places libpq reads a password from: a URL's user info (up to its
    last '@', so an unencoded '@' in the password does not leak the rest), a URL's
    ``?password=`` parameter, and ``password=...`` in a key/value connection string.
    """
    url = re.sub(r"(://[^:/@?#\s]*:)\S*@", r"\1***@", url)
    url = re.sub(r"([?&]password=)[^&#\s]*", r"\1***", url, flags=re.IGNORECASE)
    return re.sub(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", r"\1***", url, flags=re.IGNORECASE)


def embedded_url(pgdata: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL for ``pgdata`` and return its URL.

    The server keeps running after this process exits, so the next CLI call connects in
    milliseconds instead of starting PostgreSQL again.
    """
    try:
        return start_embedded(pgdata, cleanup=None).uri
    except StoreUnavailable:
        raise  # says what is wrong already (a home copied from a running one)
    except Exception as e:  # the package raises plain exceptions of many kinds
        raise StoreUnavailable(f"could not start the embedded PostgreSQL in {pgdata}: {e}") from e


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_url(settings.pgdata)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection with pgvector types registered; one clear error when unreachable."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreUnavailable(f"cannot reach the database at {redact(url)}: {redact(first)}") from None
    # a brand-new database has no vector type until the first migration creates it
    with contextlib.suppress(psycopg.ProgrammingError):
        register_vector(conn)
    return conn


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every bundled migration, in order."""
    out = []
    for f in resources.files("congruence.store.migrations").iterdir():
        m = re.match(r"(\d+)_.*\.sql$", f.name)
        if m:
            out.append((int(m.group(1)), f.name, f.read_text(encoding="utf-8")))
    return sorted(out)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the names applied.

    An advisory lock makes concurrent processes apply each migration exactly once.
    """
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            conn.execute(sql)  # type: ignore[arg-type]
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied_now.append(name)
            logger.info("applied migration %s", name)
    register_vector(conn)
    return applied_now
