"""Shared by the dashboard and tracking tests: an HTTP client on the real app, staff
users, sign-in, and reading tokens out of the HTML."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI

from orderbell.store import tables
from orderbell.web.app import create_app
from tests.engine.harness import App

PASSWORD = "correct horse battery"
BASE = "http://orderbell.test"


@pytest_asyncio.fixture(name="web")
async def web_fixture(app: App) -> FastAPI:
    return create_app(app.container)


@pytest_asyncio.fixture(name="client")
async def client_fixture(web: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


async def add_staff(
    web: FastAPI,
    email: str,
    *,
    role: str = "manager",
    tenant: str = "bistro",
    name: str | None = None,
    locations: tuple[str, ...] = (),
) -> int:
    staff = web.state.people.staff
    return int(
        await staff.add_user(
            tenant,
            email,
            PASSWORD,
            role=role,
            name=name or email.split("@")[0].title(),
            locations=locations,
        )
    )


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in; returns the dashboard's CSRF token for later forms."""
    form = await client.get("/dashboard/sign-in")
    assert form.status_code == 200, form.text
    done = await client.post(
        "/dashboard/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
    )
    assert done.status_code == 303, done.text
    home = await client.get(done.headers["location"], follow_redirects=True)
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


@contextlib.asynccontextmanager
async def as_member(
    web: FastAPI, email: str, *, role: str = "manager", **kw: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A new client, signed in as a new staff user, and its CSRF token."""
    await add_staff(web, email, role=role, **kw)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        yield c, await sign_in(c, email)


async def location_id(app: App, slug: str = "downtown") -> int:
    async with app.db.read() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(tables.locations.c.id).where(tables.locations.c.slug == slug)
                )
            ).scalar_one()
        )


async def add_location(app: App, tenant_id: int, slug: str, name: str) -> int:
    async with app.db.transaction() as conn:
        new = await conn.execute(
            tables.locations.insert()
            .values(
                tenant_id=tenant_id,
                slug=slug,
                name=name,
                timezone="America/New_York",
                locale="en",
                currency="USD",
                quiet_start="20:00",
                quiet_end="08:00",
                settings={},
                created_at=app.clock(),
            )
            .returning(tables.locations.c.id)
        )
        lid = int(new.scalar_one())
    app.container.tenants.invalidate()
    return lid


async def other_tenant_order(app: App) -> tuple[int, int, int]:
    """An order (with a guest) of the ``cafe`` tenant: (order id, customer id, location id)."""
    from orderbell.sources.generic import OrderIn

    result = await app.container.orders.upsert_order(
        app.other_tenant_id,
        OrderIn.model_validate(
            {
                "order_id": "C-9",
                "number": "9001",
                "status": "confirmed",
                "guest": {"name": "Other Guest", "phone": "+12125550999"},
            }
        ),
        None,
    )
    async with app.db.read() as conn:
        row = (
            await conn.execute(
                sa.select(tables.orders.c.customer_id, tables.orders.c.location_id).where(
                    tables.orders.c.id == result.order_id
                )
            )
        ).one()
    return result.order_id, int(row.customer_id), int(row.location_id)
