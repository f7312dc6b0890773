"""GET /v1/explain: a heatmap of what in a post's image made it match a brand."""

from __future__ import annotations

import io
from typing import Annotated, Literal, get_args

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from congruence.api.deps import ExplainerDep, KeyDep, ServicesDep
from congruence.search.attribution import METHODS
from congruence.search.heatmap import overlay

router = APIRouter(tags=["explain"])
Method = Literal["gradcam", "integrated_gradients", "occlusion"]
assert set(get_args(Method)) == set(METHODS), "keep the API's methods in step with search.attribution"


@router.get(
    "/v1/explain",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}, "application/x-npy": {}},
            "description": "PNG overlay, or the raw float32 map as .npy",
        },
        503: {"description": "a slow method is already running; retry after Retry-After"},
    },
)
async def explain(
    explainer: ExplainerDep,
    services: ServicesDep,
    _key: KeyDep,
    post: Annotated[str, Query(min_length=1, max_length=200)],
    brand: Annotated[str | None, Query(min_length=1, max_length=200, description="a brand in the corpus")] = None,
    query: Annotated[
        str | None, Query(min_length=1, max_length=64, description="query_id of a new brand's search")
    ] = None,
    method: Method = "gradcam",
    format: Literal["png", "npy"] = "png",
) -> Response:
    if (brand is None) == (query is None):
        raise HTTPException(422, "give either brand (a brand in the corpus) or query (a new brand's query_id)")
    if brand is not None:
        exp, image = await run_in_threadpool(explainer.explain_post, brand, post, method)
    else:
        assert query is not None
        exp, image = await run_in_threadpool(
            explainer.explain_post_for_query, services.queries.get(query), query, post, method
        )
    headers = {
        "X-Congruence-Score": f"{exp.score:.6f}",
        "X-Congruence-Method": exp.method,
        "X-Congruence-Model": exp.model,
        "X-Congruence-Cached": str(exp.cached).lower(),
        "Cache-Control": "private, max-age=600",
    }
    buf = io.BytesIO()
    if format == "npy":
        np.save(buf, exp.heatmap.astype(np.float32))
        return Response(buf.getvalue(), media_type="application/x-npy", headers=headers)
    await run_in_threadpool(lambda: overlay(image, exp.heatmap).save(buf, "PNG"))
    return Response(buf.getvalue(), media_type="image/png", headers=headers)
