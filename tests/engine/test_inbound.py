"""Inbound SMS through the real app: signed Twilio callbacks, keywords, inquiries."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import pytest

from orderbell.channels.twilio_webhooks import expected_signature
from orderbell.domain.model import Purpose, Rule, Trigger
from orderbell.store import tables
from orderbell.web.app import create_app
from tests.engine.harness import GUEST, PHONE, SENDER, App, count, one, rows


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app.container))
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        yield c


async def sms_channel_id(app: App) -> int:
    return (await one(app.db, tables.channels, tables.channels.c.name == "sms")).id


async def text_in(
    client: httpx.AsyncClient,
    app: App,
    body: str,
    *,
    sender: str = PHONE,
    opt_out_type: str | None = None,
    sid: str | None = None,
) -> httpx.Response:
    """Post an inbound SMS exactly as Twilio would: form body, X-Twilio-Signature."""
    path = f"/v1/callbacks/twilio_sms/{await sms_channel_id(app)}"
    url = app.container.settings.public_url + path
    fields = {
        "MessageSid": sid or "SM" + secrets.token_hex(16),
        "AccountSid": app.twilio.account_sid,
        "From": sender,
        "To": SENDER,
        "Body": body,
        "NumMedia": "0",
        "SmsStatus": "received",
    }
    if opt_out_type:
        fields["OptOutType"] = opt_out_type
    sig = expected_signature(app.twilio.auth_token, url, fields.items())
    resp = await client.post(
        path,
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/xml")
    return resp


def texts_to(app: App, number: str = PHONE) -> list[str]:
    return [m["body"] for m in app.twilio.messages.values() if m["to"] == number]


async def confirmed_order(app: App, order_id: str = "A-1") -> int:
    result = await app.order(
        order_id=order_id, status="confirmed", fulfillment="pickup", guest=GUEST
    )
    return result.order_id


async def test_stop_stops_retries_and_followups_and_confirms_exactly_once(
    client: httpx.AsyncClient, app: App
) -> None:
    order_id = await confirmed_order(app)
    # The "confirmed" text fails once: a retry is planned.
    app.twilio.fail_next(1, 503)
    await app.container.dispatcher(rand=lambda: 0.5).drain()
    (retry,) = await rows(app.db, tables.messages, tables.messages.c.order_id == order_id)
    assert retry.state == "planned" and retry.attempts == 1
    # A follow-up is queued for an hour from now.
    cfg = await app.container.tenants.get(app.tenant_id)
    order = dict((await one(app.db, tables.orders, tables.orders.c.id == order_id))._mapping)
    async with app.db.transaction() as conn:
        (followup,), _ = await app.container.ingestor.plan_and_store(
            conn,
            cfg,
            cfg.location(order["location_id"]),
            order,
            Trigger.FEEDBACK,
            app.clock(),
            event_key="test",
            rules=[Rule(Trigger.FEEDBACK, purpose=Purpose.FOLLOWUP, delay_seconds=3600)],
        )
    assert texts_to(app) == []

    await text_in(client, app, "Stop.")
    (confirmation,) = texts_to(app)
    assert "unsubscribed" in confirmation and "START" in confirmation
    # Every purpose on SMS is revoked, from the keyword, with the text as evidence.
    events = await rows(app.db, tables.consent_events)
    assert {(e.family, e.purpose, e.granted, e.source) for e in events} == {
        ("sms", p.value, False, "keyword") for p in Purpose
    }
    assert all('"Stop."' in e.evidence for e in events)
    audit = await one(app.db, tables.audit_log, tables.audit_log.c.action == "consent.opt_out")
    assert audit.actor == "guest (reply on sms)" and audit.target.startswith("customer:")
    # The confirmation's history says why it went although the guest opted out.
    reply = await one(app.db, tables.messages, tables.messages.c.trigger == "opt_out_reply")
    assert reply.state == "sent" and "bypassed for this message only" in reply.reason

    # STOP again, the same message delivered twice, and the provider's own STOP: no more.
    await text_in(client, app, "STOP")
    resp = await text_in(client, app, "stop", sid="SMrepeat")
    await text_in(client, app, "stop", sid="SMrepeat")
    assert resp.status_code == 200
    assert len(texts_to(app)) == 1
    assert await count(app.db, tables.consent_events) == len(Purpose)

    # The retry and the follow-up come due: both skipped, saying why.
    for wait in (120, 3600):
        app.clock.advance(wait)
        await app.container.dispatcher(rand=lambda: 0.5).drain()
    assert len(texts_to(app)) == 1
    for mid in (retry.id, followup):
        m = await one(app.db, tables.messages, tables.messages.c.id == mid)
        assert m.state == "skipped" and m.skip_reason == "opted_out", m
        assert "guest opted out of" in m.reason and "SMS" in m.reason and "(keyword)" in m.reason
    # A new status update is not sent either.
    await app.status(order_id, "ready")
    await app.container.dispatcher(rand=lambda: 0.5).drain()
    assert len(texts_to(app)) == 1
    inbound = await rows(app.db, tables.inbound_messages)
    assert [i.action for i in inbound] == ["stop", "stop", "stop"]
    assert "already opted out" in inbound[1].outcome


async def test_provider_opt_out_signal_updates_the_ledger_without_a_second_confirmation(
    client: httpx.AsyncClient, app: App
) -> None:
    await confirmed_order(app)
    await app.container.dispatcher(rand=lambda: 0.5).drain()
    assert len(texts_to(app)) == 1
    # Twilio Advanced Opt-Out read the keyword and answered it itself.
    await text_in(client, app, "unsubscribe", opt_out_type="STOP")
    assert len(texts_to(app)) == 1
    revoked = await rows(app.db, tables.consent_events, tables.consent_events.c.granted.is_(False))
    assert len(revoked) == len(Purpose)
    (inbound,) = await rows(app.db, tables.inbound_messages)
    assert "twilio_sms sent the opt-out confirmation itself" in inbound.outcome


async def test_start_restores_messages(client: httpx.AsyncClient, app: App) -> None:
    order_id = await confirmed_order(app)
    await text_in(client, app, "cancelar")  # Spanish opt-out
    await text_in(client, app, "Start")
    assert len(texts_to(app)) == 2
    assert "subscribed again" in texts_to(app)[1]
    await app.container.dispatcher(rand=lambda: 0.5).drain()
    await app.status(order_id, "ready")
    await app.container.dispatcher(rand=lambda: 0.5).drain()
    bodies = texts_to(app)
    assert any("ready for pickup" in b for b in bodies), bodies
    assert await count(app.db, tables.audit_log, tables.audit_log.c.action == "consent.opt_in") == 1


async def test_help_answers_with_name_contact_and_opt_out(
    client: httpx.AsyncClient, app: App
) -> None:
    await confirmed_order(app)
    await text_in(client, app, "help?")
    (answer,) = texts_to(app)
    assert "Bistro Downtown" in answer and "+12125550100" in answer
    assert "STOP" in answer and "rates may apply" in answer
    # HELP changes no consent.
    assert await count(app.db, tables.consent_events) == 0


async def test_inquiry_is_answered_within_a_second_with_the_open_order(
    client: httpx.AsyncClient, app: App
) -> None:
    await app.order(
        order_id="OLD", number="#900", status="completed", fulfillment="pickup", guest=GUEST
    )
    order_id = await confirmed_order(app, "A-7")
    stop = asyncio.Event()
    worker = asyncio.create_task(app.container.dispatcher(rand=lambda: 0.5).run(stop))
    try:
        await app.twilio.wait_for(1)  # the "confirmed" text
        before = len(texts_to(app))
        started = time.perf_counter()
        await text_in(client, app, "¿Dónde está mi pedido?")
        while len(texts_to(app)) == before:
            assert time.perf_counter() - started < 1.0, "inquiry not answered within 1 s"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await worker
    answer = texts_to(app)[-1]
    order = await one(app.db, tables.orders, tables.orders.c.id == order_id)
    assert order.number in answer and "confirmed" in answer
    m = await one(app.db, tables.messages, tables.messages.c.trigger == "inquiry")
    assert m.order_id == order_id and m.channel == "sms" and m.state == "sent"
    assert "guest asked about order" in m.reason and "the guest wrote on sms" in m.reason


async def test_inquiry_without_open_order_and_rate_limit(
    client: httpx.AsyncClient, app: App
) -> None:
    await app.order(order_id="DONE", status="completed", fulfillment="pickup", guest=GUEST)
    for _ in range(5):
        await text_in(client, app, "status?")
        app.clock.advance(10)
    answers = texts_to(app)
    assert len(answers) == 3
    assert all("could not find an open order" in a for a in answers)
    actions = [i.action for i in await rows(app.db, tables.inbound_messages)]
    assert actions == ["inquiry"] * 3 + ["limited"] * 2
    # Ten minutes later the guest may ask again.
    app.clock.advance(600)
    await text_in(client, app, "status?")
    assert len(texts_to(app)) == 4


async def test_unknown_sender_is_recorded_and_not_answered(
    client: httpx.AsyncClient, app: App
) -> None:
    await confirmed_order(app)
    await text_in(client, app, "STOP", sender="+12125550999")
    await text_in(client, app, "hello", sender="+12125550999")
    assert texts_to(app, "+12125550999") == []
    assert await count(app.db, tables.consent_events) == 0
    recorded = await rows(app.db, tables.inbound_messages)
    assert [r.action for r in recorded] == ["ignored", "ignored"]
    assert recorded[0].customer_id is None


async def test_inbound_sets_the_messaging_window(client: httpx.AsyncClient, app: App) -> None:
    await confirmed_order(app)
    await text_in(client, app, "thanks")
    point = await one(app.db, tables.contact_points, tables.contact_points.c.value == PHONE)
    assert point.last_inbound_at == app.clock()
    assert app.clock() - point.last_inbound_at < timedelta(seconds=1)
