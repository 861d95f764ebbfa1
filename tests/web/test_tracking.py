"""The guest tracking page: progress, ETA and contact in the guest's language, live
updates over server-sent events, and the preference centre (CSRF bound to the token)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from orderbell.store import tables
from orderbell.web.tracking import routes as tracking_routes
from tests.engine.harness import GUEST, App, rows
from tests.web.dashboard_kit import client_fixture, csrf_of, web_fixture  # noqa: F401


async def token_of(app: App, order_id: int) -> str:
    async with app.db.read() as conn:
        return str(
            (
                await conn.execute(
                    sa.select(tables.orders.c.tracking_token).where(tables.orders.c.id == order_id)
                )
            ).scalar_one()
        )


async def test_the_page_shows_progress_eta_and_the_location(
    app: App, client: httpx.AsyncClient
) -> None:
    eta = app.clock() + timedelta(minutes=25)  # 13:25 in New York
    created = await app.order(
        number="1042",
        status="in_kitchen",
        fulfillment="pickup",
        guest=GUEST,
        eta=eta.isoformat(),
    )
    token = await token_of(app, created.order_id)
    page = await client.get(f"/t/{token}")
    assert page.status_code == 200
    text = page.text
    assert '<html lang="en">' in text
    assert "Order #1042" in text and "Hi Maria" in text
    assert 'id="status-text">being prepared<' in text
    assert "Ready around" in text and "1:25" in text
    assert "Bistro Downtown" in text and 'href="tel:+12125550100"' in text
    assert 'aria-current="step"' in text
    steps = re.findall(r'<li class="(done|current|todo)"', text)
    assert steps == ["done", "done", "current", "todo", "todo"]
    assert page.headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert f"/t/{token}/events" in text
    assert 'name="family"' not in text  # one usable channel only: no choice to make


async def test_the_guest_language_then_the_location_language(
    app: App, client: httpx.AsyncClient
) -> None:
    es = await app.order(
        order_id="E-1", number="77", status="confirmed", guest={**GUEST, "locale": "es-MX"}
    )
    page = await client.get(f"/t/{await token_of(app, es.order_id)}")
    assert '<html lang="es">' in page.text
    assert "Pedido #77" in page.text and "confirmado" in page.text
    assert "Tus preferencias de mensajes" in page.text
    en = await app.order(
        order_id="E-2", number="78", status="confirmed", guest={"phone": "+12125550166"}
    )
    token = await token_of(app, en.order_id)
    assert '<html lang="en">' in (await client.get(f"/t/{token}")).text
    switched = await client.get(f"/t/{token}", params={"lang": "es"})
    assert '<html lang="es">' in switched.text and "Pedido #78" in switched.text


async def test_unknown_tokens_are_not_found(client: httpx.AsyncClient) -> None:
    for path in ("/t/nope", "/t/nope/progress", "/t/nope/events", "/t/" + "x" * 300):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert "text/html" in r.headers["content-type"]


async def test_html_in_the_name_is_text(app: App, client: httpx.AsyncClient) -> None:
    created = await app.order(
        number="5",
        status="confirmed",
        guest={"name": "<script>x()</script>", "phone": "+12125550111"},
    )
    page = await client.get(f"/t/{await token_of(app, created.order_id)}")
    assert "<script>x()" not in page.text and "&lt;script&gt;x()" in page.text


async def test_cancelled_and_delivery_orders(app: App, client: httpx.AsyncClient) -> None:
    gone = await app.order(order_id="X-1", number="1", status="cancelled", guest=GUEST)
    page = await client.get(f"/t/{await token_of(app, gone.order_id)}")
    assert "This order was cancelled." in page.text and 'class="steps"' not in page.text
    moving = await app.order(
        order_id="X-2", number="2", status="out_for_delivery", fulfillment="delivery", guest=GUEST
    )
    page = await client.get(f"/t/{await token_of(app, moving.order_id)}")
    assert re.findall(r'<li class="(done|current|todo)"', page.text) == [
        "done",
        "done",
        "done",
        "current",
        "todo",
    ]
    assert "out for delivery" in page.text.lower()


# -- preference centre ----------------------------------------------------------------------


async def test_choose_a_channel(app: App, client: httpx.AsyncClient) -> None:
    created = await app.order(
        number="1", status="confirmed", guest={**GUEST, "email": "maria@example.com"}
    )
    token = await token_of(app, created.order_id)
    page = await client.get(f"/t/{token}")
    assert 'id="ch-sms"' in page.text and 'id="ch-email"' in page.text
    assert "•••• 0123" in page.text and "m•••@example.com" in page.text
    assert "+12125550123" not in page.text  # the contact points are masked
    r = await client.post(
        f"/t/{token}/preferences",
        data={"csrf_token": csrf_of(page.text), "action": "channel", "family": "email"},
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"/t/{token}?saved=channel")
    async with app.db.read() as conn:
        prefs = (await conn.execute(sa.select(tables.customers.c.preferences))).scalar_one()
    assert prefs[0] == "email"
    after = await client.get(r.headers["location"])
    assert "Saved." in after.text
    bad = await client.post(
        f"/t/{token}/preferences",
        data={"csrf_token": csrf_of(page.text), "action": "channel", "family": "whatsapp"},
    )
    assert bad.status_code == 400


async def test_opt_out_of_follow_ups_then_of_everything(
    app: App, client: httpx.AsyncClient
) -> None:
    created = await app.order(number="1", status="confirmed", guest=GUEST)
    token = await token_of(app, created.order_id)
    page = await client.get(f"/t/{token}")
    csrf = csrf_of(page.text)
    r = await client.post(
        f"/t/{token}/preferences",
        data={"csrf_token": csrf, "action": "followup"},
        headers={"User-Agent": "TestPhone/1.0"},
    )
    assert r.status_code == 303
    ledger = await rows(app.db, tables.consent_events)
    assert {(e.purpose, e.granted, e.source) for e in ledger} == {
        ("followup", False, "preference page"),
        ("marketing", False, "preference page"),
    }
    assert all("TestPhone/1.0" in (e.evidence or "") for e in ledger)
    page = await client.get(r.headers["location"])
    assert "no more follow-up messages" in page.text and 'id="stop-followups"' not in page.text

    # follow-ups off: order updates still go
    ready = await app.status(created.order_id, "ready")
    assert len(ready.planned) == 1

    r = await client.post(f"/t/{token}/preferences", data={"csrf_token": csrf, "action": "all"})
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert "we will not send you any more messages" in page.text
    assert "All messages are off" in page.text
    done = await app.status(created.order_id, "cancelled")
    assert done.planned == () and len(done.skipped) == 1  # nothing more is sent
    async with app.db.read() as conn:
        (skipped,) = (
            await conn.execute(
                sa.select(tables.messages.c.skip_reason).where(
                    tables.messages.c.id == done.skipped[0]
                )
            )
        ).one()
    assert skipped == "opted_out"


async def test_preference_forms_need_the_token_bound_to_this_order(
    app: App, client: httpx.AsyncClient
) -> None:
    one = await app.order(order_id="A", number="1", status="confirmed", guest=GUEST)
    two = await app.order(
        order_id="B", number="2", status="confirmed", guest={"name": "Tom", "phone": "+12125550177"}
    )
    t1, t2 = await token_of(app, one.order_id), await token_of(app, two.order_id)
    csrf_for_one = csrf_of((await client.get(f"/t/{t1}")).text)
    for token, data, headers in (
        (t1, {"action": "all"}, {}),
        (t1, {"action": "all", "csrf_token": "0" * 48}, {}),
        (t2, {"action": "all", "csrf_token": csrf_for_one}, {}),  # another order's token
        (t1, {"action": "all", "csrf_token": csrf_for_one}, {"Origin": "https://evil.example"}),
    ):
        r = await client.post(f"/t/{token}/preferences", data=data, headers=headers)
        assert r.status_code == 403, (token, data, headers)
    assert await rows(app.db, tables.consent_events) == []
    ok = await client.post(
        f"/t/{t1}/preferences",
        data={"action": "all", "csrf_token": csrf_for_one},
        headers={"Origin": "http://orderbell.test"},
    )
    assert ok.status_code == 303


# -- live updates ---------------------------------------------------------------------------


async def test_status_changes_are_pushed_over_server_sent_events(
    app: App, web: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking_routes, "SSE_LIFETIME", 1.5)
    monkeypatch.setattr(tracking_routes, "SSE_INTERVAL", 0.05)
    created = await app.order(number="1042", status="confirmed", guest=GUEST)
    token = await token_of(app, created.order_id)
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        page = await c.get(f"/t/{token}")
        events_url = re.search(r'data-events="([^"]+)"', page.text).group(1).replace("&amp;", "&")

        async def move() -> None:
            await asyncio.sleep(0.3)
            await app.status(created.order_id, "ready")

        mover = asyncio.create_task(move())
        started = asyncio.get_running_loop().time()
        r = await c.get(events_url)
        await mover
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    body = r.text
    assert body.startswith("retry: 2000")
    events = [e for e in body.split("\n\n") if e.startswith("event: progress")]
    assert len(events) == 1, body  # the unchanged state is not pushed, the change is
    assert "id: " in events[0] and 'data-status="ready"' in events[0]
    assert "ready for pickup" in events[0]
    assert asyncio.get_running_loop().time() - started < 5  # the connection is capped


async def test_reconnecting_with_an_old_state_gets_the_news_at_once(
    app: App, web: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking_routes, "SSE_LIFETIME", 0.3)
    created = await app.order(number="1", status="confirmed", guest=GUEST)
    token = await token_of(app, created.order_id)
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        r = await c.get(f"/t/{token}/events", headers={"Last-Event-ID": "stale-stamp"})
    assert 'data-status="confirmed"' in r.text
