"""Every refused request gets a 4xx problem+json body (type, title, status, detail) and
stores nothing: malformed or invalid bodies, bad signatures and keys, unknown
integrations and routes, bodies over the limit (with and without Content-Length)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from orderbell.web.app import create_app
from tests.engine.harness import GUEST, INTEGRATION, App, counts

PROBLEM = "application/problem+json"
MIB = 1024 * 1024
WEBHOOK = f"/v1/webhooks/generic/{INTEGRATION}"


@pytest_asyncio.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app.container))
    async with httpx.AsyncClient(transport=transport, base_url="http://orderbell.test") as c:
        yield c


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].split(";")[0] == PROBLEM, resp.headers
    body = resp.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    return dict(body)


def envelope(data: dict[str, Any]) -> bytes:
    return json.dumps({"type": "order.updated", "data": data}).encode()


GOOD = {"order_id": "A-1", "status": "confirmed", "guest": GUEST}


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body streamed without Content-Length (chunked)."""
    yield b'{"order_id": "A-1", "note": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


Send = Callable[[httpx.AsyncClient, App], Awaitable[httpx.Response]]


def rest(body: Any, *, path: str = "/v1/orders", headers: dict[str, str] | None = None) -> Send:
    async def send(client: httpx.AsyncClient, app: App) -> httpx.Response:
        h = {"Authorization": f"Bearer {app.api_key}", "Content-Type": "application/json"}
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post(path, content=raw, headers=h)

    return send


def hook(
    body: bytes,
    *,
    path: str = WEBHOOK,
    age: float = 0.0,
    headers: Callable[[dict[str, str]], dict[str, str]] = lambda h: h,
) -> Send:
    async def send(client: httpx.AsyncClient, app: App) -> httpx.Response:
        signed = headers(app.signed(body, "evt-bad", age=age))
        return await client.post(path, content=body, headers=signed)

    return send


def tamper(h: dict[str, str]) -> dict[str, str]:
    version, _, sig = h["webhook-signature"].partition(",")
    return {**h, "webhook-signature": f"{version},{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"}


def without_signature(h: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in h.items() if k != "webhook-signature"}


def without_all(h: dict[str, str]) -> dict[str, str]:
    return {"content-type": "application/json"}


def bad_timestamp(h: dict[str, str]) -> dict[str, str]:
    return {**h, "webhook-timestamp": "yesterday"}


async def chunked_rest(client: httpx.AsyncClient, app: App) -> httpx.Response:
    headers = {"Authorization": f"Bearer {app.api_key}", "Content-Type": "application/json"}
    return await client.post("/v1/orders", content=chunks(MIB + 1), headers=headers)


async def chunked_hook(client: httpx.AsyncClient, app: App) -> httpx.Response:
    return await client.post(WEBHOOK, content=chunks(MIB + 1), headers={"webhook-id": "x"})


async def unknown_route(client: httpx.AsyncClient, app: App) -> httpx.Response:
    return await client.get("/v1/nothing-here", headers={"Authorization": f"Bearer {app.api_key}"})


async def wrong_method(client: httpx.AsyncClient, app: App) -> httpx.Response:
    return await client.delete("/v1/orders/1", headers={"Authorization": f"Bearer {app.api_key}"})


NAIVE = {**GOOD, "occurred_at": "2026-03-02T12:00:00"}
HUGE = {**GOOD, "note": "x" * (MIB + 10)}

CASES: dict[str, tuple[Send, int]] = {
    # malformed JSON
    "rest-malformed-json": (rest(b'{"order_id": "A-1",'), 400),
    "webhook-malformed-json": (hook(b'{"type": "order.updated", "data": {'), 400),
    "rest-not-an-object": (rest([GOOD]), 422),
    "webhook-not-an-object": (hook(b"[1, 2]"), 400),
    # invalid content
    "rest-unknown-status": (rest({**GOOD, "status": "eaten"}), 422),
    "webhook-unknown-status": (hook(envelope({**GOOD, "status": "eaten"})), 400),
    "rest-missing-order-id": (rest({"status": "confirmed"}), 422),
    "webhook-missing-order-id": (hook(envelope({"status": "confirmed"})), 400),
    "webhook-missing-data": (hook(b'{"type": "order.updated"}'), 400),
    "rest-unknown-field": (rest({**GOOD, "colour": "red"}), 422),
    "rest-naive-datetime": (rest(NAIVE), 422),
    "webhook-naive-datetime": (hook(envelope(NAIVE)), 400),
    "rest-bad-guest-email-type": (rest({**GOOD, "guest": {"email": 42}}), 422),
    "rest-event-unknown-status": (rest({"status": "eaten"}, path="/v1/orders/1/events"), 422),
    "rest-event-missing-status": (rest({}, path="/v1/orders/1/events"), 422),
    "rest-event-unknown-order": (rest({"status": "ready"}, path="/v1/orders/999/events"), 404),
    # signatures
    "webhook-wrong-signature": (hook(envelope(GOOD), headers=tamper), 401),
    "webhook-stale-timestamp": (hook(envelope(GOOD), age=10 * 60), 401),
    "webhook-future-timestamp": (hook(envelope(GOOD), age=-10 * 60), 401),
    "webhook-timestamp-not-a-number": (hook(envelope(GOOD), headers=bad_timestamp), 401),
    "webhook-missing-signature": (hook(envelope(GOOD), headers=without_signature), 401),
    "webhook-missing-all-headers": (hook(envelope(GOOD), headers=without_all), 401),
    # API keys
    "rest-bad-api-key": (rest(GOOD, headers={"Authorization": "Bearer ob_not-a-key"}), 401),
    "rest-missing-api-key": (rest(GOOD, headers={"Authorization": ""}), 401),
    "rest-basic-auth": (rest(GOOD, headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401),
    # unknown things
    "webhook-unknown-integration": (hook(envelope(GOOD), path="/v1/webhooks/generic/nope"), 404),
    "webhook-unknown-source": (hook(envelope(GOOD), path=f"/v1/webhooks/acme/{INTEGRATION}"), 404),
    "unknown-route": (unknown_route, 404),
    "wrong-method": (wrong_method, 405),
    # too big
    "rest-too-big-with-length": (rest(HUGE), 413),
    "webhook-too-big-with-length": (hook(envelope(HUGE)), 413),
    "rest-too-big-chunked": (chunked_rest, 413),
    "webhook-too-big-chunked": (chunked_hook, 413),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_refused_with_a_problem_and_stores_nothing(
    client: httpx.AsyncClient, app: App, case: str
) -> None:
    # an order exists, so "stores nothing" covers updates to it too
    seeded = await client.post(
        "/v1/orders", json=GOOD, headers={"Authorization": f"Bearer {app.api_key}"}
    )
    assert seeded.status_code == 201
    before = await counts(app.db)
    send, status = CASES[case]

    resp = await send(client, app)

    assert_problem(resp, status)
    assert await counts(app.db) == before
    if case.startswith("rest-") and status == 401:
        assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", [None, "Bearer ob_not-a-key", "Token abc"])
async def test_a_missing_or_bad_api_key_asks_for_a_bearer_token(
    client: httpx.AsyncClient, app: App, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    for resp in (
        await client.post("/v1/orders", json=GOOD, headers=headers),
        await client.get("/v1/orders/1", headers=headers),
        await client.get("/v1/messages", headers=headers),
    ):
        assert_problem(resp, 401)
        assert resp.headers["www-authenticate"] == "Bearer"
    assert (await counts(app.db))["orders"] == 0


async def test_problems_name_the_bad_field(client: httpx.AsyncClient, app: App) -> None:
    rest_resp = await rest({**GOOD, "status": "eaten"})(client, app)
    body = assert_problem(rest_resp, 422)
    assert body["detail"].startswith("status:")
    assert body["errors"][0]["field"] == "status"

    hook_resp = await hook(envelope({**GOOD, "status": "eaten"}))(client, app)
    body = assert_problem(hook_resp, 400)
    assert body["detail"].startswith("data.status:")

    naive = assert_problem(await rest(NAIVE)(client, app), 422)
    assert "timezone" in naive["detail"]

    stale = assert_problem(await hook(envelope(GOOD), age=600)(client, app), 401)
    assert "too old" in stale["detail"]


async def test_a_good_webhook_after_bad_ones_is_accepted(
    client: httpx.AsyncClient, app: App
) -> None:
    """The refusals above leave nothing behind that blocks the real delivery."""
    body = envelope(GOOD)
    assert_problem(await hook(body, headers=tamper)(client, app), 401)
    ok = await hook(body)(client, app)
    assert ok.status_code == 200, ok.text
    assert ok.json()["results"][0]["outcome"] == "created"
    assert (await counts(app.db))["orders"] == 1


async def test_an_idempotency_key_reused_for_another_order_is_a_client_error(
    client: httpx.AsyncClient, app: App
) -> None:
    headers = {"Authorization": f"Bearer {app.api_key}", "Idempotency-Key": "same"}
    first = await client.post("/v1/orders", json=GOOD, headers=headers)
    assert first.status_code == 201
    before = await counts(app.db)
    other = await client.post("/v1/orders", json={**GOOD, "order_id": "B-2"}, headers=headers)
    assert await counts(app.db) == before
    assert other.status_code == 409, other.text
    assert other.headers["content-type"] == "application/problem+json"
    assert "already used" in other.json()["detail"]
