"""Platform webhooks: ``POST /v1/webhooks/{source}/{integration_id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

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
) -> Any:
    body = await request.body()
    got = await c.webhooks.receive(
        source, integration_id, body, dict(request.headers), query=dict(request.query_params)
    )
    if got.reply is not None:
        return Response(got.reply.body, got.reply.status, media_type=got.reply.content_type)
    if got.deferred is not None:
        return JSONResponse(
            {
                "received": 0,
                "deferred": got.deferred,
                "detail": "accepted; the order details will be fetched from the platform shortly",
            },
            status_code=202,
        )
    return {"received": len(got.results), "results": [r.as_dict() for r in got.results]}


@router.get(
    "/v1/webhooks/{source}/{integration_id}",
    summary="Answer a platform's verification request (platforms that use one)",
    include_in_schema=True,
)
async def webhook_handshake(
    source: str, integration_id: str, request: Request, c: ContainerDep
) -> Any:
    got = await c.webhooks.receive(
        source,
        integration_id,
        b"",
        dict(request.headers),
        method="GET",
        query=dict(request.query_params),
    )
    assert got.reply is not None  # receive raises NotFoundError for a GET without a handshake
    return Response(got.reply.body, got.reply.status, media_type=got.reply.content_type)
