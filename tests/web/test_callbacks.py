"""Delivery reports through /v1/callbacks: signed, applied forward only, forgeries refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from orderbell.channels.twilio_webhooks import expected_signature
from orderbell.store import tables
from orderbell.web.app import create_app
from tests.engine.harness import GUEST, PHONE, App, one, rows


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app.container))
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        yield c


async def sent_sms(app: App) -> tuple[int, str, int]:
    result = await app.order(status="confirmed", fulfillment="pickup", guest=GUEST)
    (mid,) = result.planned
    await app.container.dispatcher(rand=lambda: 0.5).drain()
    m = await one(app.db, tables.messages, tables.messages.c.id == mid)
    assert m.state == "sent" and m.provider_message_id
    ch = await one(app.db, tables.channels, tables.channels.c.name == "sms")
    return mid, m.provider_message_id, ch.id


async def post_status(
    client: httpx.AsyncClient,
    app: App,
    channel_id: int,
    fields: dict[str, str],
    *,
    forge: bool = False,
) -> httpx.Response:
    path = f"/v1/callbacks/twilio_sms/{channel_id}"
    url = app.container.settings.public_url + path
    sig = expected_signature(app.twilio.auth_token, url, fields.items())
    if forge:
        sig = expected_signature("not-the-token", url, fields.items())
    return await client.post(
        path,
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig},
    )


async def state(app: App, mid: int) -> str:
    return (await one(app.db, tables.messages, tables.messages.c.id == mid)).state


async def test_delivered_report_moves_the_message_and_never_back(
    client: httpx.AsyncClient, app: App
) -> None:
    mid, sid, channel_id = await sent_sms(app)
    resp = await post_status(
        client, app, channel_id, {"MessageSid": sid, "MessageStatus": "delivered"}
    )
    assert resp.status_code == 204, resp.text
    assert await state(app, mid) == "delivered"
    m = await one(app.db, tables.messages, tables.messages.c.id == mid)
    assert m.delivered_at is not None
    # A late "sent" or "undelivered" does not move it back.
    for status in ("sent", "undelivered"):
        resp = await post_status(
            client, app, channel_id, {"MessageSid": sid, "MessageStatus": status}
        )
        assert resp.status_code == 204
    assert await state(app, mid) == "delivered"
    events = [
        e.event
        for e in await rows(app.db, tables.message_log, tables.message_log.c.message_id == mid)
    ]
    assert events.count("report") == 1 and events.count("report-ignored") == 2


async def test_forged_callback_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, app: App
) -> None:
    mid, sid, channel_id = await sent_sms(app)
    before = len(await rows(app.db, tables.message_log))
    resp = await post_status(
        client, app, channel_id, {"MessageSid": sid, "MessageStatus": "failed"}, forge=True
    )
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert await state(app, mid) == "sent"
    assert len(await rows(app.db, tables.message_log)) == before


async def test_unreachable_number_marks_the_contact_point(
    client: httpx.AsyncClient, app: App
) -> None:
    mid, sid, channel_id = await sent_sms(app)
    resp = await post_status(
        client,
        app,
        channel_id,
        {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"},
    )
    assert resp.status_code == 204
    assert await state(app, mid) == "undelivered"
    point = await one(app.db, tables.contact_points, tables.contact_points.c.value == PHONE)
    assert point.usable is False and "30003" in point.note


async def test_unknown_channel_or_provider_is_404(client: httpx.AsyncClient, app: App) -> None:
    _, _, channel_id = await sent_sms(app)
    assert (await client.post("/v1/callbacks/twilio_sms/999999", content=b"")).status_code == 404
    assert (
        await client.post(f"/v1/callbacks/sendgrid/{channel_id}", content=b"")
    ).status_code == 404
    assert (await client.post("/v1/callbacks/twilio_sms/abc", content=b"")).status_code == 404
