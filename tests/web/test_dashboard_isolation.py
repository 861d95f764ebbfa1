"""No data of another tenant is reachable by changing an id: every dashboard route that
takes an id is tried, by GET and by POST with a valid CSRF token, with the other
tenant's order, guest and location ids (and with ids that do not exist): all 404."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from orderbell.store import tables
from orderbell.web.dashboard.routes import router as dashboard_router
from tests.engine.harness import GUEST, App, rows
from tests.web.dashboard_kit import (  # noqa: F401
    add_staff,
    client_fixture,
    location_id,
    other_tenant_order,
    sign_in,
    web_fixture,
)

#: which kind of id each path parameter names
PARAMS = {"order_id": "order", "customer_id": "customer", "location_id": "location"}


def id_routes() -> list[tuple[str, str]]:
    found = []
    for route in dashboard_router.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/dashboard"):
            params = re.findall(r"{(\w+)}", route.path)
            if params:
                assert set(params) <= set(PARAMS), f"unknown id kind in {route.path}"
                found += [(method, route.path) for method in sorted(route.methods)]
    return found


async def test_every_route_with_a_foreign_id_is_not_found(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    own = await app.order(number="1001", status="confirmed", guest=GUEST)
    foreign_order, foreign_customer, foreign_location = await other_tenant_order(app)
    await add_staff(web, "owner@bistro.example", role="owner")
    token = await sign_in(client, "owner@bistro.example")
    routes = id_routes()
    assert {path for _, path in routes} >= {
        "/dashboard/orders/{order_id}",
        "/dashboard/orders/{order_id}/timeline",
        "/dashboard/orders/{order_id}/resend",
        "/dashboard/orders/{order_id}/status",
        "/dashboard/orders/{order_id}/delay",
        "/dashboard/orders/{order_id}/cancel-messages",
        "/dashboard/customers/{customer_id}",
        "/dashboard/customers/{customer_id}/opt-out",
        "/dashboard/locations/{location_id}",
        "/dashboard/locations/{location_id}/columns",
        "/dashboard/locations/{location_id}/figures",
    }
    before = await rows(app.db, tables.consent_events)
    foreign = {"order": foreign_order, "customer": foreign_customer, "location": foreign_location}
    missing = {"order": 987654, "customer": 987654, "location": 987654}
    for ids in (foreign, missing):
        for method, path in routes:
            url = re.sub(r"{(\w+)}", lambda m, ids=ids: str(ids[PARAMS[m.group(1)]]), path)
            if method == "GET":
                r = await client.get(url)
            else:
                r = await client.post(
                    url,
                    data={"csrf_token": token, "status": "ready", "minutes": "10", "family": "all"},
                )
            assert r.status_code == 404, (method, url, r.status_code, r.text[:300])
            assert "Other Guest" not in r.text and "9001" not in r.text
    assert await rows(app.db, tables.consent_events) == before  # nothing was written
    # and the member's own ids work
    assert (await client.get(f"/dashboard/orders/{own.order_id}")).status_code == 200
    assert (await client.get(f"/dashboard/locations/{await location_id(app)}")).status_code == 200


async def test_search_never_finds_another_tenants_orders(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    await other_tenant_order(app)
    await add_staff(web, "owner@bistro.example", role="owner")
    await sign_in(client, "owner@bistro.example")
    for q in ("9001", "C-9", "+12125550999", "(212) 555-0999"):
        r = await client.get("/dashboard/search", params={"q": q})
        assert r.status_code == 200 and "0 orders found" in r.text, q


async def test_the_other_tenants_staff_see_only_their_own(
    app: App, web: FastAPI, client: httpx.AsyncClient
) -> None:
    own = await app.order(number="1001", status="confirmed", guest=GUEST)
    foreign_order, _, foreign_location = await other_tenant_order(app)
    await add_staff(web, "boss@cafe.example", role="owner", tenant="cafe")
    await sign_in(client, "boss@cafe.example")
    assert (await client.get(f"/dashboard/orders/{foreign_order}")).status_code == 200
    assert (await client.get(f"/dashboard/orders/{own.order_id}")).status_code == 404
    home = await client.get("/dashboard", follow_redirects=True)
    assert "Cafe Uptown" in home.text and "Bistro" not in home.text
    assert str(foreign_location) in str(home.url)
