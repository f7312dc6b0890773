"""Export jobs behind ``POST /v1/exports``: one worker thread, state on disk, resumable.

Each job lives in ``$CONGRUENCE_HOME/exports/<id>/`` (``job.json`` + the file). Jobs run
one at a time (an export is CPU-bound; two would only slow each other). A job that was
queued or running when the server stopped is queued again at start-up, and the export
itself resumes from its finished chunks.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from congruence.core.errors import CongruenceError, InvalidInput, NotFound
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.filters import Filters

logger = logging.getLogger(__name__)
_ID_CHARS = set("0123456789abcdef")


@dataclass(frozen=True)
class JobState:
    id: str
    status: str  # queued | running | done | failed
    format: str
    k: int
    brands: list[str] | None
    filters: dict[str, object]
    done_brands: int = 0
    total_brands: int = 0
    rows: int | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # the export's (``ExportReport.warnings``)
    signals: str = "all"

    def spec(self) -> ExportSpec:
        return ExportSpec(
            brands=tuple(self.brands) if self.brands is not None else None,
            k=self.k,
            fmt=self.format,
            filters=Filters(**self.filters),  # type: ignore[arg-type]
            signals=self.signals,
        )


class ExportJobs:
    def __init__(self, root: Path, engine_of: Callable[[], Engine]):
        self.root = root
        self._engine_of = engine_of
        self._jobs: dict[str, JobState] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="congruence-exports", daemon=True)
        self._worker.start()
        self._requeue_unfinished()

    # -- public -----------------------------------------------------------------------------
    def submit(self, spec: ExportSpec) -> JobState:
        job = JobState(
            secrets.token_hex(8),
            "queued",
            spec.fmt,
            spec.k,
            list(spec.brands) if spec.brands is not None else None,
            spec.filters.to_json(),
            total_brands=len(spec.brands) if spec.brands is not None else 0,
            signals=spec.signals,
        )
        self._save(job)
        self._queue.put(job.id)
        return job

    def get(self, job_id: str) -> JobState:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        path = self._dir(job_id) / "job.json"
        if not path.is_file():
            raise NotFound(f"unknown export {job_id!r}")
        return JobState(**json.loads(path.read_text()))

    def result_path(self, job: JobState) -> Path:
        return self._dir(job.id) / f"shortlist.{job.format}"

    def close(self) -> None:
        self._queue.put(None)

    # -- internals --------------------------------------------------------------------------
    def _dir(self, job_id: str) -> Path:
        if not job_id or len(job_id) > 32 or not set(job_id) <= _ID_CHARS:
            raise NotFound(f"unknown export {job_id!r}")
        return self.root / job_id

    def _save(self, job: JobState) -> None:
        with self._lock:
            self._jobs[job.id] = job
        d = self._dir(job.id)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "job.json.tmp"
        tmp.write_text(json.dumps(asdict(job)))
        os.replace(tmp, d / "job.json")

    def _requeue_unfinished(self) -> None:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/job.json"), key=lambda p: p.stat().st_mtime):
            try:
                job = JobState(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                logger.warning("ignoring unreadable export job file %s", path)
                continue
            if job.status in ("queued", "running"):
                self._save(replace(job, status="queued"))
                self._queue.put(job.id)

    def _run(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self.get(job_id)
            self._save(replace(job, status="running"))
            try:
                self._execute(job)
            except CongruenceError as e:
                self._save(replace(self.get(job_id), status="failed", error=str(e)))
            except Exception as e:  # a worker thread must outlive one bad job
                logger.exception("export %s failed", job_id)
                self._save(replace(self.get(job_id), status="failed", error=f"internal error: {type(e).__name__}"))

    def _execute(self, job: JobState) -> None:
        last = [0]

        def progress(done: int, total: int) -> None:
            if done - last[0] >= 64 or done == total:
                last[0] = done
                self._save(replace(self.get(job.id), done_brands=done, total_brands=total))

        engine, out = self._engine_of(), self.result_path(job)
        try:
            report = run_export(engine, job.spec(), out, progress=progress)
        except InvalidInput as e:
            if "unfinished export of something else" not in str(e):
                raise
            # resumed after a restart, but the data or model changed meanwhile: start over on today's
            logger.info("export %s: data changed since it started; starting over", job.id)
            report = run_export(engine, job.spec(), out, progress=progress, restart=True)
        skipped = [{"brand_id": b, "reason": r} for b, r in report.skipped]
        self._save(
            replace(
                self.get(job.id),
                status="done",
                done_brands=report.brands,
                total_brands=report.brands,
                rows=report.rows,
                skipped=skipped,
                warnings=list(report.warnings),
            )
        )
