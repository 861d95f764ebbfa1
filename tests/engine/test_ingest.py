"""Ingest through the REST service and the generic signed webhook, checked in the database:
orders and guests stored normalised, the status machine (created, applied, stale,
repeated, duplicate), exactly the messages the default rules call for, superseding, and
the messages that cannot go (no contact, opted out) recorded with a reason in words."""

from __future__ import annotations

from typing import Any

import pytest

from orderbell.domain.model import EventOutcome, OrderStatus
from orderbell.store import tables
from tests.engine.harness import GUEST, INTEGRATION, PHONE, START, App, count, one, rows

ORD, E, M = tables.orders, tables.order_events, tables.messages


async def messages_of(app: App, order_id: int) -> list[Any]:
    return await rows(app.db, M, M.c.order_id == order_id)


async def events_of(app: App, order_id: int) -> list[Any]:
    return await rows(app.db, E, E.c.order_id == order_id)


# -- a new order -------------------------------------------------------------------------


async def test_a_new_order_is_stored_with_its_guest_normalised(app: App) -> None:
    result = await app.order(
        number="1001",
        status="placed",
        fulfillment="pickup",
        total={"amount": "23.50", "currency": "usd"},
        guest={"name": "Maria", "phone": "(212) 555-0123", "email": " Maria.Lopez@Example.COM "},
    )

    assert result.outcome == EventOutcome.CREATED
    assert result.status == OrderStatus.PLACED
    order = await one(app.db, ORD, ORD.c.id == result.order_id)
    assert order.tenant_id == app.tenant_id
    assert order.source_key == f"api:{app.tenant_id}"
    assert (order.external_id, order.number, order.status) == ("A-1", "1001", "placed")
    assert order.fulfillment == "pickup"
    assert (order.total_minor, order.currency) == (2350, "USD")
    assert order.status_at == START and order.placed_at == START
    assert order.location_id is not None
    assert len(order.tracking_token) >= 20

    customer = await one(app.db, tables.customers, tables.customers.c.id == order.customer_id)
    assert customer.name == "Maria" and customer.tenant_id == app.tenant_id
    points = await rows(
        app.db, tables.contact_points, tables.contact_points.c.customer_id == customer.id
    )
    assert {(p.kind, p.value) for p in points} == {
        ("phone", PHONE),
        ("email", "Maria.Lopez@example.com"),
    }
    assert all(p.usable for p in points)

    (event,) = await events_of(app, result.order_id)
    assert (event.outcome, event.status, event.kind) == ("created", "placed", "api")
    assert event.note == "order created as placed"
    assert event.event_id.startswith("api-")
    assert event.payload and '"order_id":"A-1"' in event.payload
    assert await messages_of(app, result.order_id) == []  # "placed" has no default rule


async def test_the_same_guest_is_found_again_by_phone(app: App) -> None:
    first = await app.order(order_id="A-1", guest={"name": "Maria", "phone": "212-555-0123"})
    second = await app.order(order_id="A-2", guest={"phone": "+1 (212) 555 0123"})
    a = await one(app.db, ORD, ORD.c.id == first.order_id)
    b = await one(app.db, ORD, ORD.c.id == second.order_id)
    assert a.customer_id == b.customer_id
    assert await count(app.db, tables.customers) == 1


async def test_an_unusable_phone_number_is_dropped_not_stored(app: App) -> None:
    result = await app.order(status="confirmed", guest={"name": "Ann", "phone": "12"})
    order = await one(app.db, ORD, ORD.c.id == result.order_id)
    assert await count(app.db, tables.contact_points) == 0
    (message,) = await messages_of(app, order.id)
    assert (message.state, message.skip_reason) == ("skipped", "no_contact")


# -- which messages each status plans ----------------------------------------------------

FLOWS = {
    "pickup": (["placed", "confirmed", "in_kitchen", "ready", "completed"], ["confirmed", "ready"]),
    "dine_in": (
        ["placed", "confirmed", "in_kitchen", "ready", "completed"],
        ["confirmed", "ready"],
    ),
    "delivery": (
        ["placed", "confirmed", "in_kitchen", "ready", "out_for_delivery", "completed"],
        ["confirmed", "out_for_delivery", "completed"],
    ),
}


@pytest.mark.parametrize("fulfillment", sorted(FLOWS))
async def test_each_status_plans_exactly_what_the_default_rules_say(
    app: App, fulfillment: str
) -> None:
    statuses, notify = FLOWS[fulfillment]
    order_id = None
    for i, status in enumerate(statuses):
        data = {"order_id": "W-1", "number": "77", "status": status, "fulfillment": fulfillment}
        if i == 0:
            data["guest"] = GUEST
        (result,) = await app.webhook(data, f"evt-{i}")
        order_id = result.order_id
        expected = EventOutcome.CREATED if i == 0 else EventOutcome.APPLIED
        assert result.outcome == expected, status
        assert len(result.planned) == (1 if status in notify else 0), status
        assert result.skipped == ()
        app.clock.advance(60)

    assert order_id is not None
    order = await one(app.db, ORD, ORD.c.id == order_id)
    assert order.status == "completed"
    assert order.source_key == INTEGRATION and order.integration_id is not None
    msgs = await messages_of(app, order_id)
    assert [m.trigger for m in msgs] == notify
    for m in msgs:
        assert (m.audience, m.family, m.channel, m.recipient) == ("guest", "sms", "sms", PHONE)
        assert m.purpose == "transactional" and m.tenant_id == app.tenant_id
        assert m.reason and m.idempotency_key == f"{order_id}:{m.trigger}:guest"
    # nothing was sent in between, so each later status superseded the older messages
    # (for pickup and dine-in "completed" supersedes "ready" without a message of its own)
    assert [m.state for m in msgs] == [
        "planned" if m.trigger == statuses[-1] else "superseded" for m in msgs
    ]
    for m in msgs[:-1]:
        assert m.reason.startswith("order moved to ")
    events = await events_of(app, order_id)
    assert [e.outcome for e in events] == ["created"] + ["applied"] * (len(statuses) - 1)
    assert events[1].note == "placed -> confirmed"
    assert all(e.kind == "webhook" and e.payload for e in events)


async def test_cancelled_plans_a_message_and_supersedes_the_pending_ones(app: App) -> None:
    created = await app.order(status="confirmed", guest=GUEST)
    cancelled = await app.status(created.order_id, "cancelled")
    assert cancelled.outcome == EventOutcome.APPLIED
    assert len(cancelled.planned) == 1 and cancelled.superseded == created.planned
    msgs = await messages_of(app, created.order_id)
    assert [(m.trigger, m.state) for m in msgs] == [
        ("confirmed", "superseded"),
        ("cancelled", "planned"),
    ]
    # a terminal order never moves again
    late = await app.status(created.order_id, "completed")
    assert late.outcome == EventOutcome.STALE and late.planned == ()
    assert (await one(app.db, ORD, ORD.c.id == created.order_id)).status == "cancelled"


# -- replays, late and repeated events ---------------------------------------------------


async def test_a_replayed_webhook_is_a_duplicate_and_plans_nothing(app: App) -> None:
    data = {"order_id": "W-9", "status": "confirmed", "guest": GUEST}
    (first,) = await app.webhook(data, "evt-once")
    before = await messages_of(app, first.order_id)
    # the same delivery again, even with a different status in it
    (again,) = await app.webhook({**data, "status": "ready"}, "evt-once")

    assert again.outcome == EventOutcome.DUPLICATE
    assert again.order_id == first.order_id and again.planned == ()
    assert again.status == OrderStatus.CONFIRMED
    assert await messages_of(app, first.order_id) == before
    assert (await one(app.db, ORD, ORD.c.id == first.order_id)).status == "confirmed"
    events = await events_of(app, first.order_id)
    assert [e.outcome for e in events] == ["created", "duplicate"]
    dup = events[1]
    assert dup.dedupe_key is None and dup.payload is None
    assert "duplicate delivery of event 'evt-once'" in dup.note
    assert f"#{events[0].id}" in dup.note


async def test_an_older_status_is_stale_and_does_not_move_the_order(app: App) -> None:
    created = await app.order(status="ready", guest=GUEST)
    ready_at = (await one(app.db, ORD, ORD.c.id == created.order_id)).status_at
    app.clock.advance(30)
    late = await app.status(created.order_id, "confirmed", occurred_at=app.clock().isoformat())

    assert late.outcome == EventOutcome.STALE and late.status == OrderStatus.READY
    assert late.planned == () and late.superseded == ()
    order = await one(app.db, ORD, ORD.c.id == created.order_id)
    assert order.status == "ready" and order.status_at == ready_at
    stale = (await events_of(app, created.order_id))[-1]
    assert (stale.outcome, stale.status) == ("stale", "confirmed")
    assert "not moved back" in stale.note and "nobody notified" in stale.note
    msgs = await messages_of(app, created.order_id)
    assert [(m.trigger, m.state) for m in msgs] == [("ready", "planned")]


async def test_the_same_status_again_is_repeated_and_plans_nothing(app: App) -> None:
    created = await app.order(status="confirmed", guest=GUEST)
    again = await app.status(created.order_id, "confirmed", note="POS resent it")
    assert again.outcome == EventOutcome.REPEATED and again.planned == ()
    event = (await events_of(app, created.order_id))[-1]
    assert event.outcome == "repeated"
    assert "again" in event.note and "(POS resent it)" in event.note
    assert len(await messages_of(app, created.order_id)) == 1


async def test_a_newer_status_supersedes_an_unsent_older_message(app: App) -> None:
    created = await app.order(status="confirmed", guest=GUEST)
    (confirmed_id,) = created.planned
    ready = await app.status(created.order_id, "ready")

    assert ready.superseded == (confirmed_id,)
    old = await one(app.db, M, M.c.id == confirmed_id)
    assert old.state == "superseded"
    assert old.reason == "order moved to ready before this was sent"
    log = await rows(app.db, tables.message_log, tables.message_log.c.message_id == confirmed_id)
    assert [entry.event for entry in log] == ["planned", "superseded"]
    (new_id,) = ready.planned
    assert (await one(app.db, M, M.c.id == new_id)).state == "planned"


async def test_a_message_being_sent_is_not_superseded_by_ingest(app: App) -> None:
    created = await app.order(status="confirmed", guest=GUEST)
    claimed = await app.container.dispatcher().claim(10)
    assert [c.id for c in claimed] == list(created.planned)
    ready = await app.status(created.order_id, "ready")
    assert ready.superseded == ()
    assert (await one(app.db, M, M.c.id == claimed[0].id)).state == "sending"


# -- messages that cannot go -------------------------------------------------------------


async def test_a_guest_with_no_phone_or_email_gets_a_skipped_message(app: App) -> None:
    result = await app.order(status="confirmed", guest={"name": "Sam"})
    assert result.planned == () and len(result.skipped) == 1
    message = await one(app.db, M, M.c.id == result.skipped[0])
    assert (message.state, message.skip_reason) == ("skipped", "no_contact")
    assert message.recipient is None
    assert "not sent, no way to reach the guest" in message.reason
    assert "no phone number on file" in message.reason
    assert "no email address on file" in message.reason
    log = await rows(app.db, tables.message_log, tables.message_log.c.message_id == message.id)
    assert [entry.event for entry in log] == ["skipped"]


async def test_an_order_without_a_guest_gets_a_skipped_message(app: App) -> None:
    result = await app.order(status="confirmed")
    message = await one(app.db, M, M.c.id == result.skipped[0])
    assert (message.state, message.skip_reason) == ("skipped", "no_contact")
    assert message.customer_id is None and "guest unknown" in message.reason


async def test_a_guest_who_opted_out_gets_a_skipped_message(app: App) -> None:
    guest = {
        "name": "Lee",
        "phone": "+12125550199",
        "consent": [{"channel": "sms", "purpose": "transactional", "granted": False}],
    }
    result = await app.order(status="confirmed", guest=guest)
    message = await one(app.db, M, M.c.id == result.skipped[0])
    assert (message.state, message.skip_reason) == ("skipped", "opted_out")
    assert "guest opted out of SMS" in message.reason
    ledger = await rows(app.db, tables.consent_events)
    assert [(c.family, c.purpose, c.granted, c.source) for c in ledger] == [
        ("sms", "transactional", False, "checkout")
    ]


async def test_an_opted_out_guest_with_an_email_gets_email_instead(app: App) -> None:
    guest = {
        "phone": "+12125550199",
        "email": "lee@example.com",
        "consent": [{"channel": "sms", "purpose": "transactional", "granted": False}],
    }
    result = await app.order(status="confirmed", guest=guest)
    message = await one(app.db, M, M.c.id == result.planned[0])
    assert (message.state, message.family, message.channel) == ("planned", "email", "email")
    assert message.recipient == "lee@example.com"
    assert "instead of SMS (guest opted out" in message.reason


# -- idempotency keys --------------------------------------------------------------------


async def test_an_idempotency_key_reused_on_post_orders_changes_nothing(app: App) -> None:
    first = await app.order("key-1", status="confirmed", guest=GUEST)
    assert first.outcome == EventOutcome.CREATED
    # a retry of the same request, and a different body under the same key
    retry = await app.order("key-1", status="confirmed", guest=GUEST)
    changed = await app.order("key-1", status="ready", number="XYZ", guest={"name": "Other"})

    for result in (retry, changed):
        assert result.outcome == EventOutcome.DUPLICATE
        assert result.order_id == first.order_id and result.planned == ()
    order = await one(app.db, ORD, ORD.c.id == first.order_id)
    assert (order.status, order.number) == ("confirmed", "A-1")
    assert len(await messages_of(app, first.order_id)) == 1
    assert [e.outcome for e in await events_of(app, first.order_id)] == [
        "created",
        "duplicate",
        "duplicate",
    ]
    assert (await one(app.db, tables.customers)).name == "Maria"
    # a new key is a new request
    moved = await app.order("key-2", status="ready")
    assert moved.outcome == EventOutcome.APPLIED


async def test_an_idempotency_key_reused_on_a_status_event_changes_nothing(app: App) -> None:
    created = await app.order(status="confirmed", guest=GUEST)
    first = await app.status(created.order_id, "ready", key="evt-1")
    again = await app.status(created.order_id, "completed", key="evt-1")
    assert first.outcome == EventOutcome.APPLIED
    assert again.outcome == EventOutcome.DUPLICATE and again.planned == ()
    assert (await one(app.db, ORD, ORD.c.id == created.order_id)).status == "ready"
