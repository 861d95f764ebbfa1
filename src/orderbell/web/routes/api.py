"""The REST API for orders and message history (tenant API keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orderbell.domain.model import OrderStatus
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


# -- staff actions (manual overrides), each audited with the actor's name ------------------

Actor = Annotated[
    str | None,
    Header(
        alias="X-Actor",
        max_length=200,
        description="The staff member's name, when the body has no 'actor'",
    ),
]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    actor: str | None = Field(
        default=None,
        max_length=200,
        description="Who does this (required here or as the X-Actor header); kept in the audit log",
    )
    note: str | None = Field(default=None, max_length=500, description="Why, in words")


class SetStatusIn(ActionIn):
    status: OrderStatus
    force: bool = Field(
        default=False,
        description="Allow a move the state machine refuses (backwards, or out of "
        "completed/cancelled); recorded as a correction",
    )
    eta: datetime | None = None

    @field_validator("eta")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return OrderIn._aware(value)


class MarkDelayedIn(ActionIn):
    eta: datetime = Field(description="The new estimate told to the guest (future, with offset)")

    @field_validator("eta")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        OrderIn._aware(value)
        return value


def _actor(data: ActionIn | None, header: str | None) -> str | None:
    return (data.actor if data is not None and data.actor else None) or header


@router.post(
    "/orders/{order_id}/resend",
    summary="Send the current status to the guest again (consent still applies)",
    tags=["staff actions"],
)
async def resend(
    order_id: int,
    tenant_id: TenantDep,
    c: ContainerDep,
    data: ActionIn | None = None,
    x_actor: Actor = None,
) -> dict[str, Any]:
    result = await c.overrides.resend(
        tenant_id, order_id, actor=_actor(data, x_actor), note=data.note if data else None
    )
    return result.as_dict()


@router.post(
    "/orders/{order_id}/set-status",
    summary="Set the status by hand when the POS is wrong (force: true to go backwards)",
    tags=["staff actions"],
)
async def set_status(
    order_id: int, data: SetStatusIn, tenant_id: TenantDep, c: ContainerDep, x_actor: Actor = None
) -> dict[str, Any]:
    result = await c.overrides.set_status(
        tenant_id,
        order_id,
        data.status,
        actor=_actor(data, x_actor),
        force=data.force,
        eta=data.eta,
        note=data.note,
    )
    return result.as_dict()


@router.post(
    "/orders/{order_id}/mark-delayed",
    summary="Tell the guest now that the order runs late, with a new ETA",
    tags=["staff actions"],
)
async def mark_delayed(
    order_id: int,
    data: MarkDelayedIn,
    tenant_id: TenantDep,
    c: ContainerDep,
    x_actor: Actor = None,
) -> dict[str, Any]:
    result = await c.overrides.mark_delayed(
        tenant_id, order_id, data.eta, actor=_actor(data, x_actor), note=data.note
    )
    return result.as_dict()


@router.post(
    "/orders/{order_id}/cancel-messages",
    summary="Cancel every message of the order that is still waiting to be sent",
    tags=["staff actions"],
)
async def cancel_messages(
    order_id: int,
    tenant_id: TenantDep,
    c: ContainerDep,
    data: ActionIn | None = None,
    x_actor: Actor = None,
) -> dict[str, Any]:
    result = await c.overrides.cancel_messages(
        tenant_id, order_id, actor=_actor(data, x_actor), note=data.note if data else None
    )
    return result.as_dict()


@router.get(
    "/orders/{order_id}/audit",
    summary="Staff actions on the order, newest first",
    tags=["staff actions"],
)
async def order_audit(order_id: int, tenant_id: TenantDep, c: ContainerDep) -> dict[str, Any]:
    return {"items": await c.overrides.audit(tenant_id, order_id)}
