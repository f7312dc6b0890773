"""Bulk shortlists: POST /v1/exports starts a job, GET shows progress, .../download the file."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from congruence.api.deps import EngineDep, ExportsDep, KeyDep
from congruence.api.export_jobs import JobState
from congruence.api.schemas import ExportJobOut, ExportRequest
from congruence.core.errors import first_of
from congruence.search.export import ExportSpec
from congruence.search.filters import Filters

router = APIRouter(tags=["exports"])
MAX_BRANDS = 100_000
_MEDIA = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def _out(job: JobState) -> ExportJobOut:
    url = f"/v1/exports/{job.id}/download" if job.status == "done" else None
    return ExportJobOut(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        done_brands=job.done_brands,
        total_brands=job.total_brands,
        rows=job.rows,
        skipped=job.skipped,
        error=job.error,
        warnings=job.warnings,
        format=job.format,  # type: ignore[arg-type]
        download_url=url,
    )


@router.post("/v1/exports", response_model=ExportJobOut, status_code=202)
def create_export(req: ExportRequest, engine: EngineDep, exports: ExportsDep, _key: KeyDep) -> ExportJobOut:
    brands = None
    if req.brands != "all":
        if not req.brands or len(req.brands) > MAX_BRANDS:
            raise HTTPException(422, f'brands: give "all" or 1 to {MAX_BRANDS:,} brand ids')
        brands = tuple(dict.fromkeys(req.brands))
        kinds = engine.account_kinds(brands)
        unknown = [b for b in brands if kinds.get(b) != "brand"]
        if unknown:
            raise HTTPException(422, "brands: not brands in the corpus: " + first_of([repr(b) for b in unknown], 5))
    filters = Filters.make(
        req.category,
        req.min_followers,
        req.max_followers,
        micro=req.micro,
        brand_safe=req.brand_safe,
        exclude_categories=req.exclude_categories,
        safe_last=req.safe_last,
        metrics=req.bounds(),
        worked_with=req.worked_with,
        not_worked_with=req.not_worked_with,
        since=req.since,
        exclude_list=req.exclude_list,
        exclude_status=req.exclude_status,
    )
    snap = engine.current()
    filters.category_code(snap.table)  # a typo is a 422 now, not a failed job later
    engine.check_screened(snap, filters)  # so are posts still waiting for the brand-safety screen
    return _out(
        exports.submit(ExportSpec(brands=brands, k=req.k, fmt=req.format, filters=filters, signals=req.signals))
    )


@router.get("/v1/exports/{job_id}", response_model=ExportJobOut)
def get_export(job_id: str, exports: ExportsDep, _key: KeyDep) -> ExportJobOut:
    return _out(exports.get(job_id))


@router.get(
    "/v1/exports/{job_id}/download",
    response_class=FileResponse,
    responses={200: {"content": {m: {} for m in _MEDIA.values()}}, 409: {"description": "not finished yet"}},
)
def download_export(job_id: str, exports: ExportsDep, _key: KeyDep) -> FileResponse:
    job = exports.get(job_id)
    if job.status != "done":
        raise HTTPException(
            409,
            f"export {job_id} is {job.status}"
            + (f": {job.error}" if job.error else f" ({job.done_brands}/{job.total_brands} brands)"),
        )
    path = exports.result_path(job)
    return FileResponse(path, media_type=_MEDIA[job.format], filename=f"shortlist-{job.id}.{job.format}")
