"""The REST API for orders and message history (tenant API keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from orderbell.sources.generic import OrderIn, StatusIn
from orderbell.web.deps import ContainerDep, TenantDep

router = APIRouter(prefix="/v1", tags=["orders"])

IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Sending the same key again changes nothing (safe retries)",
    ),
]


@router.post("/orders", summary="Create an order, or update one you sent before", status_code=200)
async def upsert_order(
    data: OrderIn,
    tenant_id: TenantDep,
    c: ContainerDep,
    response: Response,
    idempotency_key: IdemKey = None,
) -> dict[str, Any]:
    result = await c.orders.upsert_order(tenant_id, data, idempotency_key)
    if result.outcome.value == "created":
        response.status_code = 201
    response.headers["Location"] = f"/v1/orders/{result.order_id}"
    return result.as_dict()


@router.post("/orders/{order_id}/events", summary="Move an order to a new status")
async def post_event(
    order_id: int,
    data: StatusIn,
    tenant_id: TenantDep,
    c: ContainerDep,
    idempotency_key: IdemKey = None,
) -> dict[str, Any]:
    result = await c.orders.post_status(tenant_id, order_id, data, idempotency_key)
    return result.as_dict()


@router.get(
    "/orders/{order_ref}", summary="An order's timeline: events, messages, attempts, reasons"
)
async def get_order(order_ref: str, tenant_id: TenantDep, c: ContainerDep) -> dict[str, Any]:
    return await c.orders.timeline(order_ref, tenant_id)


@router.get("/messages", summary="Messages, newest first, cursor paginated")
async def list_messages(
    tenant_id: TenantDep,
    c: ContainerDep,
    order_id: int | None = None,
    state: str | None = Query(
        default=None, description="planned, sent, delivered, failed, skipped ..."
    ),
    channel: str | None = Query(default=None, description="channel name or family"),
    cursor: int | None = Query(default=None, description="the next_cursor of the previous page"),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    items, nxt = await c.orders.messages(
        tenant_id, order_id=order_id, state=state, channel=channel, cursor=cursor, limit=limit
    )
    return {"items": items, "next_cursor": nxt}
