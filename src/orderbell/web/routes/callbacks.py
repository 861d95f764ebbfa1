"""Provider callbacks: ``/v1/callbacks/{provider}/{channel_id}`` (delivery reports,
inbound messages, and the GET handshakes some providers make)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from orderbell.web.deps import ContainerDep

router = APIRouter(tags=["callbacks"])


async def _handle(provider: str, channel_id: str, request: Request, c: ContainerDep) -> Response:
    body = await request.body()
    url = c.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    outcome = await c.callbacks.handle(
        provider,
        channel_id,
        method=request.method,
        url=url,
        body=body,
        headers=dict(request.headers),
        query=dict(request.query_params),
    )
    reply = outcome.reply
    return Response(reply.body, reply.status, media_type=reply.content_type)


@router.post(
    "/v1/callbacks/{provider}/{channel_id}",
    summary="Delivery reports and inbound messages from a provider",
    responses={401: {"description": "Signature check failed (problem+json); nothing changed"}},
)
async def callback(provider: str, channel_id: str, request: Request, c: ContainerDep) -> Response:
    return await _handle(provider, channel_id, request, c)


@router.get("/v1/callbacks/{provider}/{channel_id}", summary="A provider's verification request")
async def callback_handshake(
    provider: str, channel_id: str, request: Request, c: ContainerDep
) -> Response:
    return await _handle(provider, channel_id, request, c)
