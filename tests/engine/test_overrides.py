"""Manual overrides through the engine service, on both databases: resend (consent still
applies), set a status by hand (forward through ingest, backwards only when forced and
recorded as a correction), mark delayed with a new ETA, cancel pending messages; each
audited with the staff member's name in the same transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orderbell.domain.model import OrderStatus
from orderbell.errors import ConflictError, NotFoundError, PayloadError
from orderbell.store import tables
from tests.engine.harness import GUEST, PHONE, START, App, one, rows

M, E, AUDIT = tables.messages, tables.order_events, tables.audit_log


async def confirmed(app: App, **guest: Any) -> int:
    result = await app.order(
        number="1001", status="confirmed", fulfillment="pickup", guest={**GUEST, **guest}
    )
    await app.container.dispatcher(worker_id="t").drain()
    return int(result.order_id)


async def audit_rows(app: App, order_id: int) -> list[Any]:
    return await rows(app.db, AUDIT, AUDIT.c.target == f"order:{order_id}")


# -- resend -------------------------------------------------------------------------------


async def test_resend_plans_the_current_status_again_and_is_audited(app: App) -> None:
    order_id = await confirmed(app)
    result = await app.container.overrides.resend(app.tenant_id, order_id, actor="  Sam  Lee ")
    (mid,) = result.planned
    m = await one(app.db, M, M.c.id == mid)
    assert (m.trigger, m.audience, m.recipient, m.state) == ("resend", "guest", PHONE, "planned")
    assert m.reason.endswith("requested by Sam Lee")
    (row,) = await audit_rows(app, order_id)
    assert (row.actor, row.action, row.tenant_id) == ("Sam Lee", "order.resend", app.tenant_id)
    assert row.id == result.audit_id and "confirmed" in row.detail

    again = await app.container.overrides.resend(app.tenant_id, order_id, actor="Sam Lee")
    assert again.planned and again.planned != result.planned  # each request is a message
    await app.container.dispatcher(worker_id="t").drain()
    assert len(app.twilio.requests) == 3


async def test_resend_to_an_opted_out_guest_is_skipped_with_the_reason(app: App) -> None:
    order_id = await confirmed(
        app, consent=[{"channel": "sms", "purpose": "transactional", "granted": False}]
    )
    result = await app.container.overrides.resend(app.tenant_id, order_id, actor="Sam")
    assert result.planned == []
    (mid,) = result.skipped
    m = await one(app.db, M, M.c.id == mid)
    assert (m.state, m.skip_reason) == ("skipped", "opted_out")
    assert "opted out of SMS" in m.reason
    assert "opted out of SMS" in result.reasons[0]
    assert len(await audit_rows(app, order_id)) == 1
    await app.container.dispatcher(worker_id="t").drain()
    assert app.twilio.requests == []


# -- set status ---------------------------------------------------------------------------


async def test_a_manual_status_goes_through_ingest_and_is_audited(app: App) -> None:
    order_id = await confirmed(app)
    result = await app.container.overrides.set_status(
        app.tenant_id, order_id, OrderStatus.READY, actor="Ana", note="POS froze"
    )
    assert (result.outcome, result.status) == ("applied", OrderStatus.READY)
    assert len(result.planned) == 1
    event = (await rows(app.db, E, E.c.order_id == order_id))[-1]
    assert (event.kind, event.status, event.outcome) == ("manual", "ready", "applied")
    assert "set by Ana: POS froze" in event.note
    (row,) = await audit_rows(app, order_id)
    assert (row.actor, row.action) == ("Ana", "order.set_status")
    assert "ready" in row.detail and "POS froze" in row.detail


async def test_moving_back_needs_force_and_is_recorded_as_a_correction(app: App) -> None:
    order_id = await confirmed(app)
    ready = await app.status(order_id, "ready")  # the POS was wrong; not sent yet
    with pytest.raises(ConflictError, match="force"):
        await app.container.overrides.set_status(
            app.tenant_id, order_id, OrderStatus.IN_KITCHEN, actor="Ana"
        )
    assert await audit_rows(app, order_id) == []

    result = await app.container.overrides.set_status(
        app.tenant_id, order_id, OrderStatus.IN_KITCHEN, actor="Ana", force=True
    )
    assert (result.outcome, result.status) == ("corrected", OrderStatus.IN_KITCHEN)
    order = await one(app.db, tables.orders, tables.orders.c.id == order_id)
    assert order.status == "in_kitchen"
    event = (await rows(app.db, E, E.c.order_id == order_id))[-1]
    assert (event.kind, event.outcome, event.status) == ("manual", "corrected", "in_kitchen")
    assert "ready -> in_kitchen" in event.note and "Ana" in event.note
    (wrong,) = ready.planned
    m = await one(app.db, M, M.c.id == wrong)
    assert m.state == "superseded" and "corrected back to in_kitchen by Ana" in m.reason
    assert wrong in result.superseded
    (row,) = await audit_rows(app, order_id)
    assert row.action == "order.correct_status" and "(forced)" in row.detail

    # when it really is ready, the guest is told (the corrected-away message freed its key)
    again = await app.status(order_id, "ready")
    assert again.outcome.value == "applied" and len(again.planned) == 1
    assert (await one(app.db, M, M.c.id == wrong)).idempotency_key.startswith(
        f"{order_id}:ready:guest:before-correction-"
    )


# -- mark delayed -------------------------------------------------------------------------


async def test_mark_delayed_tells_the_guest_now_with_the_new_eta(app: App) -> None:
    order_id = await confirmed(app)
    eta = START + timedelta(minutes=50)
    result = await app.container.overrides.mark_delayed(
        app.tenant_id, order_id, eta, actor="Ana", note="oven down"
    )
    (mid,) = result.planned
    m = await one(app.db, M, M.c.id == mid)
    assert m.trigger == "delayed" and m.idempotency_key.endswith(":eta-202603021850")
    assert "requested by Ana" in m.reason
    order = await one(app.db, tables.orders, tables.orders.c.id == order_id)
    assert order.eta == eta
    event = (await rows(app.db, E, E.c.order_id == order_id))[-1]
    assert (event.kind, event.outcome) == ("manual", "delayed")
    assert "marked delayed by Ana" in event.note
    await app.container.dispatcher(worker_id="t").drain()
    body = app.twilio.requests[-1].fields["Body"]
    assert "running late" in body and "1:50" in body

    same = await app.container.overrides.mark_delayed(app.tenant_id, order_id, eta, actor="Ana")
    assert same.planned == [] and "told already" in same.detail
    assert [r.action for r in await audit_rows(app, order_id)] == ["order.mark_delayed"] * 2


async def test_mark_delayed_refuses_a_past_eta_and_a_ready_order(app: App) -> None:
    order_id = await confirmed(app)
    with pytest.raises(PayloadError, match="future"):
        await app.container.overrides.mark_delayed(
            app.tenant_id, order_id, START - timedelta(minutes=1), actor="Ana"
        )
    await app.status(order_id, "ready")
    with pytest.raises(ConflictError, match="ready"):
        await app.container.overrides.mark_delayed(
            app.tenant_id, order_id, START + timedelta(minutes=9), actor="Ana"
        )
    assert await audit_rows(app, order_id) == []


# -- cancel pending messages ----------------------------------------------------------------


async def test_cancel_pending_messages(app: App) -> None:
    order_id = await confirmed(app)
    ready = await app.status(order_id, "ready")
    result = await app.container.overrides.cancel_messages(
        app.tenant_id, order_id, actor="Ana", note="guest is here"
    )
    assert result.cancelled == list(ready.planned)
    m = await one(app.db, M, M.c.id == ready.planned[0])
    assert (m.state, m.reason) == ("cancelled", "cancelled by Ana: guest is here")
    log = await rows(app.db, tables.message_log, tables.message_log.c.message_id == m.id)
    assert [e.event for e in log] == ["planned", "cancelled"]
    (row,) = await audit_rows(app, order_id)
    assert (row.action, row.detail) == (
        "order.cancel_messages",
        "cancelled 1 pending message(s); note: guest is here",
    )
    await app.container.dispatcher(worker_id="t").drain()
    assert len(app.twilio.requests) == 1  # only the confirmed message, sent before


# -- who and whose ------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [None, "", "   "])
async def test_every_override_needs_an_actor(app: App, actor: str | None) -> None:
    order_id = await confirmed(app)
    with pytest.raises(PayloadError, match="actor is required"):
        await app.container.overrides.resend(app.tenant_id, order_id, actor=actor)
    with pytest.raises(PayloadError, match="actor is required"):
        await app.container.overrides.cancel_messages(app.tenant_id, order_id, actor=actor)
    assert await audit_rows(app, order_id) == []


async def test_another_tenants_order_is_not_found(app: App) -> None:
    order_id = await confirmed(app)
    overrides = app.container.overrides
    other = app.other_tenant_id
    for call in (
        overrides.resend(other, order_id, actor="Eve"),
        overrides.set_status(other, order_id, OrderStatus.READY, actor="Eve"),
        overrides.mark_delayed(other, order_id, START + timedelta(hours=1), actor="Eve"),
        overrides.cancel_messages(other, order_id, actor="Eve"),
        overrides.audit(other, order_id),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert await audit_rows(app, order_id) == []
