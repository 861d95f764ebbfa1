"""The HTTP API over a real Container: orders in by REST, timelines and message lists out,
OpenAPI, health, readiness and metrics, and one tenant never seeing another's orders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from orderbell.web.app import create_app
from tests.engine.harness import GUEST, PHONE, App

JSON = "application/json"


@pytest_asyncio.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app.container))
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        yield c


def auth(app: App, *, other: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.other_api_key if other else app.api_key}"}


async def post_order(client: httpx.AsyncClient, app: App, **data: Any) -> httpx.Response:
    data.setdefault("order_id", "A-1")
    return await client.post("/v1/orders", json=data, headers=auth(app))


# -- orders --------------------------------------------------------------------------------


async def test_post_order_creates_then_updates(client: httpx.AsyncClient, app: App) -> None:
    created = await post_order(
        client, app, number="1001", status="confirmed", fulfillment="pickup", guest=GUEST
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == JSON
    body = created.json()
    assert body["outcome"] == "created" and body["status"] == "confirmed"
    assert len(body["messages_planned"]) == 1
    assert created.headers["location"] == f"/v1/orders/{body['order_id']}"

    updated = await post_order(client, app, status="ready")
    assert updated.status_code == 200, updated.text
    again = updated.json()
    assert again["order_id"] == body["order_id"] and again["outcome"] == "applied"
    assert again["messages_superseded"] == body["messages_planned"]

    # the same Idempotency-Key twice: the second is a duplicate, answered 200
    headers = {**auth(app), "Idempotency-Key": "k-1"}
    first = await client.post(
        "/v1/orders", json={"order_id": "A-1", "status": "completed"}, headers=headers
    )
    replay = await client.post(
        "/v1/orders", json={"order_id": "A-1", "status": "completed"}, headers=headers
    )
    assert first.json()["outcome"] == "applied"
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"


async def test_post_event_moves_the_order(client: httpx.AsyncClient, app: App) -> None:
    order_id = (await post_order(client, app, status="confirmed", guest=GUEST)).json()["order_id"]
    moved = await client.post(
        f"/v1/orders/{order_id}/events",
        json={"status": "ready", "note": "on the shelf"},
        headers=auth(app),
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["outcome"], body["status"], body["order_id"]) == ("applied", "ready", order_id)
    assert len(body["messages_planned"]) == 1

    stale = await client.post(
        f"/v1/orders/{order_id}/events", json={"status": "confirmed"}, headers=auth(app)
    )
    assert stale.status_code == 200 and stale.json()["outcome"] == "stale"

    missing = await client.post(
        "/v1/orders/999999/events", json={"status": "ready"}, headers=auth(app)
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_the_timeline_by_id_number_and_external_id(
    client: httpx.AsyncClient, app: App
) -> None:
    created = await post_order(
        client, app, order_id="EXT-7", number="1042", status="confirmed", guest=GUEST
    )
    order_id = created.json()["order_id"]
    await client.post(f"/v1/orders/{order_id}/events", json={"status": "ready"}, headers=auth(app))

    by_id = await client.get(f"/v1/orders/{order_id}", headers=auth(app))
    assert by_id.status_code == 200, by_id.text
    tl = by_id.json()
    assert tl["order"]["id"] == order_id and tl["order"]["status"] == "ready"
    assert "tracking_token" not in tl["order"]
    assert tl["order"]["tracking_link"].startswith("http://127.0.0.1:8080/t/")
    assert tl["location"] == "Bistro Downtown" and tl["guest"] == {"name": "Maria"}
    assert [(e["status"], e["outcome"]) for e in tl["events"]] == [
        ("confirmed", "created"),
        ("ready", "applied"),
    ]
    assert [(m["trigger"], m["state"]) for m in tl["messages"]] == [
        ("confirmed", "superseded"),
        ("ready", "planned"),
    ]
    assert all(m["why"] for m in tl["messages"])
    assert [h["event"] for h in tl["messages"][0]["history"]] == ["planned", "superseded"]
    assert tl["messages"][1]["recipient"] == PHONE

    for ref in ("1042", "%231042", "EXT-7"):
        other = await client.get(f"/v1/orders/{ref}", headers=auth(app))
        assert other.status_code == 200, (ref, other.text)
        assert other.json()["order"]["id"] == order_id

    missing = await client.get("/v1/orders/nope", headers=auth(app))
    assert missing.status_code == 404
    assert missing.json()["status"] == 404


async def test_messages_are_filtered_and_paginated(client: httpx.AsyncClient, app: App) -> None:
    sms_orders = []
    for i in range(5):
        guest = {"name": f"G{i}", "phone": f"+1212555010{i}"}
        r = await post_order(client, app, order_id=f"P-{i}", status="confirmed", guest=guest)
        sms_orders.append(r.json()["order_id"])
    email = await post_order(
        client, app, order_id="E-1", status="confirmed", guest={"email": "e@example.com"}
    )
    skipped = await post_order(client, app, order_id="S-1", status="confirmed")
    assert email.status_code == skipped.status_code == 201

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = await client.get("/v1/messages", params=params, headers=auth(app))
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 3
        seen.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 7
    ids = [m["id"] for m in seen]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7

    async def items(**params: Any) -> list[dict[str, Any]]:
        r = await client.get("/v1/messages", params=params, headers=auth(app))
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    # the skipped one is recorded against SMS too (the first channel it would have used)
    assert len(await items(channel="sms")) == 6
    assert len(await items(channel="sms", state="planned")) == 5
    assert [m["recipient"] for m in await items(channel="email")] == ["e@example.com"]
    assert [m["skip_reason"] for m in await items(state="skipped")] == ["no_contact"]
    assert len(await items(state="planned")) == 6
    (one,) = await items(order_id=sms_orders[2])
    assert one["order_id"] == sms_orders[2] and one["why"]
    assert await items(state="sent") == []

    bad = await client.get("/v1/messages", params={"limit": 0}, headers=auth(app))
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


# -- tenants -------------------------------------------------------------------------------


async def test_one_tenant_cannot_see_another_tenants_orders(
    client: httpx.AsyncClient, app: App
) -> None:
    created = await post_order(client, app, number="1001", status="confirmed", guest=GUEST)
    order_id = created.json()["order_id"]
    other = auth(app, other=True)

    for ref in (str(order_id), "1001", "A-1"):
        r = await client.get(f"/v1/orders/{ref}", headers=other)
        assert r.status_code == 404, (ref, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    moved = await client.post(
        f"/v1/orders/{order_id}/events", json={"status": "cancelled"}, headers=other
    )
    assert moved.status_code == 404
    listed = await client.get("/v1/messages", headers=other)
    assert listed.status_code == 200 and listed.json()["items"] == []

    # the same external id from the other tenant is another order
    theirs = await client.post(
        "/v1/orders", json={"order_id": "A-1", "status": "ready"}, headers=other
    )
    assert theirs.status_code == 201 and theirs.json()["order_id"] != order_id
    mine = await client.get(f"/v1/orders/{order_id}", headers=auth(app))
    assert mine.json()["order"]["status"] == "confirmed"


# -- the service around the API ------------------------------------------------------------


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    assert {"post"} <= set(paths["/v1/orders"])
    assert {"post"} <= set(paths["/v1/orders/{order_id}/events"])
    assert {"get"} <= set(paths["/v1/orders/{order_ref}"])
    assert {"get"} <= set(paths["/v1/messages"])
    assert {"post"} <= set(paths["/v1/webhooks/{source}/{integration_id}"])
    for ops in ("/healthz", "/readyz", "/metrics"):
        assert "get" in paths[ops]
    assert "OrderIn" in spec["components"]["schemas"]


async def test_health_readiness_and_metrics(client: httpx.AsyncClient, app: App) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}

    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["revision"]
    assert body["database"] == app.db.dialect

    await post_order(client, app, status="confirmed", guest=GUEST)
    await client.post("/v1/orders", json={"order_id": "A-1"})  # refused: no API key
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'orderbell_order_events_total{outcome="created",source="api"} 1.0' in text
    assert "orderbell_messages_finished_total" in text
    assert "orderbell_provider_calls_total" in text
