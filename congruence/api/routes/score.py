"""POST /v1/score: which of these images will get more attention? Scores 0-10, ranked, with the
evidence behind each suggestion; GET /v1/score/model: what the scores rest on."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from congruence.api.deps import KeyDep, ServicesDep
from congruence.api.schemas import (
    EvidenceOut,
    ImageScoreOut,
    ScoreBasisOut,
    ScoreModelResponse,
    ScoreResponse,
    SuggestionOut,
)
from congruence.api.uploads import read_form, read_images, text_fields

router = APIRouter(tags=["score"])
MAX_IMAGES = 5

_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_IMAGES,
                            "items": {"type": "string", "format": "binary"},
                        },
                        **{
                            f"caption{i}": {"type": "string", "maxLength": 5000, "description": f"caption of image {i}"}
                            for i in range(MAX_IMAGES)
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    openapi_extra=_OPENAPI,
    summary="Expected engagement of up to 5 images, 0-10, best first",
)
async def score(request: Request, services: ServicesDep, _key: KeyDep) -> ScoreResponse:
    form = await read_form(request, MAX_IMAGES)
    fields = text_fields(form, skip=("images",))
    unknown = sorted(set(fields) - {f"caption{i}" for i in range(MAX_IMAGES)})
    if unknown:
        raise HTTPException(422, f"unknown field {unknown[0]!r}: expected images and caption0..caption{MAX_IMAGES - 1}")
    uploads = await read_images(form, "images", MAX_IMAGES)
    if not uploads:
        raise HTTPException(422, "images: send 1 to 5 images to compare")
    captions = [fields.get(f"caption{i}") or None for i in range(len(uploads))]
    scorer = await run_in_threadpool(services.scorer)
    scores = await run_in_threadpool(scorer.score, [u.image for u in uploads], captions)
    data = [
        ImageScoreOut(
            index=s.index,
            filename=uploads[s.index].filename,
            score=s.score,
            rank=s.rank,
            suggestions=[SuggestionOut.model_validate(g.to_dict()) for g in s.suggestions],
            suggestion_note=s.suggestion_note,
        )
        for s in sorted(scores, key=lambda s: s.rank)
    ]
    return ScoreResponse(
        data=data,
        count=len(data),
        model=scorer.version,
        note=scorer.note,
        basis=ScoreBasisOut.model_validate(scorer.basis.to_dict()),
    )


@router.get(
    "/v1/score/model",
    response_model=ScoreModelResponse,
    summary="What the engagement scores rest on: corpus, accounts, held-out accuracy, tested concepts",
)
async def score_model(services: ServicesDep, _key: KeyDep) -> ScoreModelResponse:
    scorer = await run_in_threadpool(services.scorer)
    evidence = scorer.model.suggestions.evidence
    tested = [EvidenceOut.model_validate({**e.to_dict(), "ci95": e.to_dict()["ci"]}) for e in evidence.effects]
    return ScoreModelResponse(
        model=scorer.version,
        basis=ScoreBasisOut.model_validate(scorer.basis.to_dict()),
        evidence=tested,
        method=evidence.method(),
        note=scorer.note,
    )
