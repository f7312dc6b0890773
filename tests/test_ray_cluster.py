"""`--ray-address ray://HOST:PORT` and `auto` on a cluster started by `ray start`, with a GPU.

The cluster is a real Ray head started with `ray start --head --block` (2 CPUs, one GPU
declared: Ray schedules GPU actors on it; torch finds no CUDA there, so they compute on the
CPU and their rows stay byte-equal to the local ones). The drivers are `congruence`
processes, as a user runs them: a Ray Client one (`ray://`, whose Ray Data pipelines run on
the cluster) and one that finds the cluster with `auto` (RAY_ADDRESS names it: other Ray
clusters may run on this machine). Each checks that the actors asked Ray for the GPU and
that the rows equal the local path's. The cluster uses Ray's token authentication with a
token made for the test (RAY_AUTH_TOKEN), as `docs/scale-out.md` tells users to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.filters import Filters

from .test_ray import assert_same_rows, dump, empty_store, needs_ray

pytestmark = [needs_ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what an in-process Ray session of another test left in it
    (RAY_AUTH_MODE, RAY_CLIENT_MODE, RAY_ADDRESS, PYTHONBREAKPOINT), plus ``extra``. The device
    is ``auto``, not the suite's CPU: these tests check that actors ask Ray for the cluster's GPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "PYTHONBREAKPOINT"}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", "CONGRUENCE_DEVICE": "auto", **extra}


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def started_cluster() -> Iterator[dict[str, str]]:
    """A Ray head (2 CPUs, 1 GPU) of its own: {"gcs": HOST:PORT, "client": ray://HOST:PORT, "token": ...}.

    Started in a process group of its own and stopped by that group's id (never `ray stop`,
    which stops every Ray cluster on the machine).
    """
    gcs, client, dashboard = _free_port(), _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # short: Ray's socket paths are length-limited
    token = secrets.token_hex(32)
    # the client server the head starts per ray:// connection must answer within 30 s by default:
    # on two cores busy with other tests its imports alone can take longer
    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S="180")
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115 - closed at teardown
    head = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            f"--port={gcs}",
            f"--ray-client-server-port={client}",
            f"--dashboard-port={dashboard}",
            "--include-dashboard=false",
            "--num-cpus=2",
            "--num-gpus=1",
            "--object-store-memory=200000000",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not (_listening(gcs) and _listening(client)):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Ray head did not start: " + (Path(temp) / "head.log").read_text()[-3000:])
            time.sleep(0.5)
        yield {"gcs": f"127.0.0.1:{gcs}", "client": f"ray://127.0.0.1:{client}", "token": token, "temp": temp}
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        time.sleep(2)  # raylet and gcs_server share the group; let them exit before their files go
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the group outlived SIGTERM
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def congruence(
    settings: Settings,
    cluster: dict[str, str],
    *argv: str,
    ray_address: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`congruence -v ARGV` in a process of its own, on ``settings``' store, token in its environment."""
    env = clean_env(
        CONGRUENCE_HOME=str(settings.home),
        DATABASE_URL=str(settings.database_url),
        CONGRUENCE_BATCH_SIZE=str(settings.batch_size),
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=cluster["token"],
    )
    if ray_address == "auto":
        env["RAY_ADDRESS"] = cluster["gcs"]
    cmd = [sys.executable, "-m", "congruence", "-v", *argv]
    if ray_address is not None:
        cmd += ["--ray-address", ray_address]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=540)
    if done.returncode != 0:  # with the cluster's side of the story: its client servers' errors
        errs = sorted(Path(cluster["temp"]).glob("session_*/logs/ray_client_server*.err"))
        pytest.fail(done.stderr[-4000:] + "".join(f"\n--- {e.name}\n{e.read_text()[-3000:]}" for e in errs))
    return done


def gpu_placements(stderr: str, stage: str) -> list[dict[str, object]]:
    """The placements a Ray ingest logged for ``stage`` ('images' or 'texts')."""
    m = re.search(rf"{stage} encoded on Ray by (\[.*\])$", stderr, re.MULTILINE)
    assert m, stderr[-4000:]
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def test_a_ray_client_ingest_and_export_use_gpu_actors_and_give_the_local_rows(
    started_cluster: dict[str, str], settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    local = ingest(small_corpus, settings)
    expected = dump(settings)
    on_ray = empty_store(settings, tmp_path / "home-ray")

    done = congruence(
        on_ray, started_cluster, "ingest", str(small_corpus), "--json", ray_address=started_cluster["client"]
    )
    report = json.loads(done.stdout)
    assert (report["images_encoded"], report["texts_encoded"]) == (local.images_encoded, local.texts_encoded)
    assert report["images_encoded"] > 0 and report["texts_encoded"] > 0
    assert_same_rows(dump(on_ray), expected)
    for stage in ("images", "texts"):  # one GPU in the cluster: one actor, given GPU 0 by Ray
        placed = gpu_placements(done.stderr, stage)
        assert [p["gpu_ids"] for p in placed] == [[0]], placed
        assert {p["device"] for p in placed} == {"cpu"}  # no CUDA behind the declared GPU

    spec = ExportSpec(None, 5, "csv", Filters.make(micro=True))
    with Engine(on_ray) as engine:
        run_export(engine, spec, tmp_path / "local.csv", batch_brands=2)
    done = congruence(
        on_ray,
        started_cluster,
        "export",
        "-k",
        "5",
        "--micro",
        "--batch-brands",
        "2",
        "--json",
        "--out",
        str(tmp_path / "ray.csv"),
        ray_address=started_cluster["client"],
    )
    report = json.loads(done.stdout)
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert report["ray"]["address"] == started_cluster["client"] and report["ray"]["gpus_per_actor"] == 1
    assert [p["gpu_ids"] for p in report["ray"]["placements"]] == [[0]]


def test_an_export_on_the_cluster_found_with_auto(
    started_cluster: dict[str, str], settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        run_export(engine, ExportSpec(None, 4, "parquet"), tmp_path / "local.parquet", batch_brands=3)
    done = congruence(
        settings,
        started_cluster,
        "export",
        "-k",
        "4",
        "--format",
        "parquet",
        "--batch-brands",
        "3",
        "--out",
        str(tmp_path / "ray.parquet"),
        ray_address="auto",
    )
    assert (tmp_path / "ray.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    assert "wrote 24 rows for 6 brands" in done.stdout
    assert "ranked on Ray at auto: 1 actor, GPUs 0" in done.stdout
