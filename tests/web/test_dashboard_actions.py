"""The order page's actions through the manual override services: each needs the CSRF
token, is audited with the staff member's name, and shows in the timeline."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from orderbell.store import tables
from tests.engine.harness import GUEST, App, rows
from tests.web.dashboard_kit import add_staff, client_fixture, sign_in, web_fixture  # noqa: F401


async def signed_in(web: FastAPI, client: httpx.AsyncClient) -> str:
    await add_staff(web, "ana@bistro.example", name="Ana Ruiz")
    return await sign_in(client, "ana@bistro.example")


async def messages(app: App, order_id: int) -> list[tuple[str, str]]:
    found = await rows(app.db, tables.messages, tables.messages.c.order_id == order_id)
    return [(m.trigger, m.state) for m in found]


async def test_resend_plans_a_message_audited_with_the_name(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await app.order(number="1042", status="ready", guest=GUEST)
    token = await signed_in(web, client)
    refused = await client.post(f"/dashboard/orders/{created.order_id}/resend")
    assert refused.status_code == 403
    assert ("resend", "planned") not in await messages(app, created.order_id)

    done = await client.post(
        f"/dashboard/orders/{created.order_id}/resend", data={"csrf_token": token}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/dashboard/orders/{created.order_id}?done=resend"
    assert ("resend", "planned") in await messages(app, created.order_id)
    (audit,) = [r for r in await rows(app.db, tables.audit_log) if r.target.startswith("order:")]
    assert audit.actor == "Ana Ruiz <ana@bistro.example>" and audit.action == "order.resend"
    page = await client.get(done.headers["location"])
    assert "Resend queued" in page.text
    assert 'data-trigger="resend"' in page.text and "staff action" in page.text
    assert "requested by Ana Ruiz" in page.text


async def test_set_status_forward_and_a_forced_correction(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await app.order(number="1042", status="confirmed", guest=GUEST)
    token = await signed_in(web, client)
    url = f"/dashboard/orders/{created.order_id}/status"
    ok = await client.post(url, data={"csrf_token": token, "status": "ready", "note": "POS lag"})
    assert ok.status_code == 303
    back = await client.post(url, data={"csrf_token": token, "status": "in_kitchen"})
    assert back.status_code == 409
    assert "force" in back.text and "Order #1042" in back.text  # shown on the order page
    forced = await client.post(
        url, data={"csrf_token": token, "status": "in_kitchen", "force": "yes"}
    )
    assert forced.status_code == 303
    async with app.db.read() as conn:
        status = (
            await conn.execute(tables.orders.select().where(tables.orders.c.id == created.order_id))
        ).one()
    assert status.status == "in_kitchen"
    actions = [r.action for r in await rows(app.db, tables.audit_log) if r.target]
    assert actions[-2:] == ["order.set_status", "order.correct_status"]
    bad = await client.post(url, data={"csrf_token": token, "status": "teleported"})
    assert bad.status_code == 400


async def test_mark_delayed_and_cancel_pending(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await app.order(number="1042", status="in_kitchen", guest=GUEST)
    token = await signed_in(web, client)
    delayed = await client.post(
        f"/dashboard/orders/{created.order_id}/delay",
        data={"csrf_token": token, "minutes": "20", "note": "oven"},
    )
    assert delayed.status_code == 303
    assert ("delayed", "planned") in await messages(app, created.order_id)
    nonsense = await client.post(
        f"/dashboard/orders/{created.order_id}/delay", data={"csrf_token": token, "minutes": "x"}
    )
    assert nonsense.status_code == 400 and "minutes" in nonsense.text

    cancelled = await client.post(
        f"/dashboard/orders/{created.order_id}/cancel-messages", data={"csrf_token": token}
    )
    assert cancelled.status_code == 303
    states = {state for _, state in await messages(app, created.order_id)}
    assert "planned" not in states and "cancelled" in states
    page = await client.get(f"/dashboard/orders/{created.order_id}")
    assert "cancelled by Ana Ruiz" in page.text
    actions = [r.action for r in await rows(app.db, tables.audit_log) if r.target]
    assert actions[-2:] == ["order.mark_delayed", "order.cancel_messages"]
