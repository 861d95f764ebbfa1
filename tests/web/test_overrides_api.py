"""Staff actions over REST (tenant API key): resend, set status, mark delayed, cancel
pending messages and the audit trail; the actor from the body or X-Actor; problem+json for
a missing actor, a refused move or a foreign order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest_asyncio

from orderbell.store import tables
from orderbell.web.app import create_app
from tests.engine.harness import GUEST, START, App, rows

PROBLEM = "application/problem+json"
AUDIT = tables.audit_log


@pytest_asyncio.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app.container))
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        yield c


def auth(app: App, *, other: bool = False, actor: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {app.other_api_key if other else app.api_key}"}
    if actor:
        headers["X-Actor"] = actor
    return headers


async def new_order(client: httpx.AsyncClient, app: App, **data: Any) -> int:
    data.setdefault("order_id", "A-1")
    data.setdefault("number", "1001")
    data.setdefault("status", "confirmed")
    data.setdefault("fulfillment", "pickup")
    data.setdefault("guest", GUEST)
    response = await client.post("/v1/orders", json=data, headers=auth(app))
    assert response.status_code == 201, response.text
    return int(response.json()["order_id"])


async def audit_rows(app: App, order_id: int) -> list[Any]:
    return await rows(app.db, AUDIT, AUDIT.c.target == f"order:{order_id}")


async def test_resend_with_the_actor_in_a_header(client: httpx.AsyncClient, app: App) -> None:
    order_id = await new_order(client, app)
    r = await client.post(f"/v1/orders/{order_id}/resend", headers=auth(app, actor="Sam"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["action"], body["actor"], body["status"]) == ("resend", "Sam", "confirmed")
    assert len(body["messages_planned"]) == 1
    (row,) = await audit_rows(app, order_id)
    assert (row.id, row.actor, row.action) == (body["audit_id"], "Sam", "order.resend")


async def test_resend_to_an_opted_out_guest_is_skipped(client: httpx.AsyncClient, app: App) -> None:
    guest = {**GUEST, "consent": [{"channel": "sms", "purpose": "transactional", "granted": False}]}
    order_id = await new_order(client, app, guest=guest)
    r = await client.post(f"/v1/orders/{order_id}/resend", json={"actor": "Sam"}, headers=auth(app))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["messages_planned"] == [] and len(body["messages_skipped"]) == 1
    assert "opted out" in body["reasons"][0]
    listed = await client.get(f"/v1/messages?order_id={order_id}&state=skipped", headers=auth(app))
    (item,) = [m for m in listed.json()["items"] if m["trigger"] == "resend"]
    assert item["skip_reason"] == "opted_out"


async def test_set_status_forward_then_back_with_force(client: httpx.AsyncClient, app: App) -> None:
    order_id = await new_order(client, app)
    url = f"/v1/orders/{order_id}/set-status"
    r = await client.post(url, json={"status": "ready", "actor": "Ana"}, headers=auth(app))
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["status"]) == ("applied", "ready")

    refused = await client.post(
        url, json={"status": "in_kitchen", "actor": "Ana"}, headers=auth(app)
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == PROBLEM
    assert "force" in refused.json()["detail"]

    forced = await client.post(
        url,
        json={"status": "in_kitchen", "actor": "Ana", "force": True, "note": "POS wrong"},
        headers=auth(app),
    )
    assert forced.status_code == 200, forced.text
    assert (forced.json()["outcome"], forced.json()["status"]) == ("corrected", "in_kitchen")
    timeline = (await client.get(f"/v1/orders/{order_id}", headers=auth(app))).json()
    assert timeline["order"]["status"] == "in_kitchen"
    assert [e["kind"] for e in timeline["events"]] == ["api", "manual", "manual"]
    assert timeline["events"][-1]["outcome"] == "corrected"
    actions = [row.action for row in await audit_rows(app, order_id)]
    assert actions == ["order.set_status", "order.correct_status"]


async def test_mark_delayed_and_the_audit_trail(client: httpx.AsyncClient, app: App) -> None:
    order_id = await new_order(client, app)
    eta = (START + timedelta(minutes=45)).isoformat()
    r = await client.post(
        f"/v1/orders/{order_id}/mark-delayed",
        json={"eta": eta, "note": "oven down"},
        headers=auth(app, actor="Ana"),
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["messages_planned"]) == 1
    naive = await client.post(
        f"/v1/orders/{order_id}/mark-delayed",
        json={"eta": "2026-03-02T19:00:00", "actor": "Ana"},
        headers=auth(app),
    )
    assert naive.status_code == 422 and naive.headers["content-type"] == PROBLEM

    trail = await client.get(f"/v1/orders/{order_id}/audit", headers=auth(app))
    assert trail.status_code == 200
    (item,) = trail.json()["items"]
    assert (item["actor"], item["action"]) == ("Ana", "order.mark_delayed")
    assert "oven down" in item["detail"] and item["at"].startswith("2026-03-02T18:00")


async def test_cancel_pending_messages(client: httpx.AsyncClient, app: App) -> None:
    order_id = await new_order(client, app)
    r = await client.post(
        f"/v1/orders/{order_id}/cancel-messages", json={"actor": "Ana"}, headers=auth(app)
    )
    assert r.status_code == 200, r.text
    (cancelled,) = r.json()["messages_cancelled"]
    listed = await client.get(f"/v1/messages?order_id={order_id}", headers=auth(app))
    (m,) = listed.json()["items"]
    assert (m["id"], m["state"], m["why"]) == (cancelled, "cancelled", "cancelled by Ana")
    assert [row.action for row in await audit_rows(app, order_id)] == ["order.cancel_messages"]


async def test_an_action_without_an_actor_is_a_problem(client: httpx.AsyncClient, app: App) -> None:
    order_id = await new_order(client, app)
    for path, body in (
        ("resend", None),
        ("cancel-messages", {"note": "x"}),
        ("set-status", {"status": "ready"}),
        ("mark-delayed", {"eta": (START + timedelta(hours=1)).isoformat()}),
    ):
        r = await client.post(f"/v1/orders/{order_id}/{path}", json=body, headers=auth(app))
        assert r.status_code == 400, (path, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert "actor is required" in r.json()["detail"]
    assert await audit_rows(app, order_id) == []


async def test_no_action_on_another_tenants_order(client: httpx.AsyncClient, app: App) -> None:
    order_id = await new_order(client, app)
    eta = (START + timedelta(hours=1)).isoformat()
    for path, body in (
        ("resend", {"actor": "Eve"}),
        ("cancel-messages", {"actor": "Eve"}),
        ("set-status", {"status": "ready", "actor": "Eve", "force": True}),
        ("mark-delayed", {"eta": eta, "actor": "Eve"}),
    ):
        r = await client.post(
            f"/v1/orders/{order_id}/{path}", json=body, headers=auth(app, other=True)
        )
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == PROBLEM
    trail = await client.get(f"/v1/orders/{order_id}/audit", headers=auth(app, other=True))
    assert trail.status_code == 404
    unauthenticated = await client.post(f"/v1/orders/{order_id}/resend", json={"actor": "Eve"})
    assert unauthenticated.status_code == 401
    assert await audit_rows(app, order_id) == []
