"""Platform webhooks: ``POST /v1/webhooks/{source}/{integration_id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from orderbell.web.deps import ContainerDep

router = APIRouter(tags=["webhooks"])


@router.post(
    "/v1/webhooks/{source}/{integration_id}",
    summary="Receive an order event from a platform",
    responses={
        200: {"description": "Stored (answered only after the transaction committed)"},
        400: {"description": "Malformed body (problem+json)"},
        401: {"description": "Wrong or missing signature, or stale timestamp (problem+json)"},
        404: {"description": "No such integration for this source (problem+json)"},
        413: {"description": "Body over 1 MiB (problem+json)"},
    },
)
async def receive_webhook(
    source: str, integration_id: str, request: Request, c: ContainerDep
) -> dict[str, Any]:
    body = await request.body()
    results = await c.webhooks.handle(source, integration_id, body, dict(request.headers))
    return {"received": len(results), "results": [r.as_dict() for r in results]}
