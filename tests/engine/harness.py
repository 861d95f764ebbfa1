"""A whole Order Bell in the test's event loop: a Container on the test database, a clock
the test moves, configuration applied from YAML, and loopback Twilio and SendGrid fakes.

Used by ``tests/engine`` and ``tests/web`` (their conftest.py import the fixtures below).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa

from orderbell.bootstrap import Container, build
from orderbell.config import Settings
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.sources.generic import OrderIn, StatusIn, sign
from orderbell.store import tables
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio

#: a Monday afternoon in New York: no quiet hours in the way
START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"engine-tests-webhook-secret!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-tenant-webhook-secret").decode()
INTEGRATION = "bistro-pos"
SENDER = "+15017122661"


class FakeClock:
    """``clock()`` returns ``now``; the test moves it with ``advance``."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def config_text(twilio: FakeTwilio, sendgrid: FakeSendGrid) -> str:
    """Two tenants: ``bistro`` (SMS + email to the fakes, a generic webhook) and ``cafe``."""
    return f"""version: 1
tenants:
  - slug: bistro
    name: Bistro Group
    locations:
      - slug: downtown
        name: Bistro Downtown
        timezone: America/New_York
        locale: en
        currency: USD
        phone: "+12125550100"
    integrations:
      - id: {INTEGRATION}
        source: generic
        location: downtown
        secret: ${{T_WEBHOOK_SECRET}}
    channels:
      - name: sms
        provider: twilio_sms
        settings:
          account_sid: {twilio.account_sid}
          auth_token: ${{T_TWILIO_TOKEN}}
          from_number: "{SENDER}"
          base_url: {twilio.base_url}
      - name: email
        provider: sendgrid
        settings:
          api_key: ${{T_SENDGRID_KEY}}
          from_email: orders@bistro.example
          from_name: Bistro Downtown
          base_url: {sendgrid.base_url}
  - slug: cafe
    name: Cafe Other
    locations:
      - slug: uptown
        name: Cafe Uptown
        timezone: America/New_York
    integrations:
      - id: cafe-pos
        source: generic
        location: uptown
        secret: ${{T_OTHER_SECRET}}
"""


@dataclass
class App:
    """What a test needs: the container, its clock, the fakes and the tenants."""

    container: Container
    clock: FakeClock
    twilio: FakeTwilio
    sendgrid: FakeSendGrid
    tenant_id: int
    other_tenant_id: int
    api_key: str
    other_api_key: str

    @property
    def db(self) -> Any:
        return self.container.db

    # -- input -----------------------------------------------------------------------

    async def order(self, idempotency_key: str | None = None, **fields: Any) -> Any:
        """``POST /v1/orders`` through the service (tenant ``bistro``)."""
        fields.setdefault("order_id", "A-1")
        return await self.container.orders.upsert_order(
            self.tenant_id, OrderIn.model_validate(fields), idempotency_key
        )

    async def status(self, order_id: int, status: str, key: str | None = None, **kw: Any) -> Any:
        data = StatusIn.model_validate({"status": status, **kw})
        return await self.container.orders.post_status(self.tenant_id, order_id, data, key)

    def signed(self, body: bytes, msg_id: str, *, age: float = 0.0) -> dict[str, str]:
        at = int((self.clock() - timedelta(seconds=age)).timestamp())
        return sign(WEBHOOK_SECRET, msg_id, at, body)

    async def webhook(self, data: dict[str, Any], msg_id: str) -> list[Any]:
        """A generic signed webhook carrying ``data`` (an OrderIn as JSON)."""
        body = json.dumps({"type": "order.updated", "data": data}).encode()
        return await self.container.webhooks.handle(
            "generic", INTEGRATION, body, self.signed(body, msg_id)
        )


GUEST = {"name": "Maria", "phone": "(212) 555-0123", "preferences": ["sms"]}
PHONE = "+12125550123"


def config_env(twilio: FakeTwilio, sendgrid: FakeSendGrid) -> dict[str, str]:
    """The ``${...}`` values the test configurations refer to."""
    return {
        "T_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "T_OTHER_SECRET": OTHER_SECRET,
        "T_TWILIO_TOKEN": twilio.auth_token,
        "T_SENDGRID_KEY": sendgrid.api_key,
    }


async def make_app(
    db_url: str,
    data_dir: Path,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    *,
    config: str | None = None,
    start: datetime = START,
    **settings: Any,
) -> App:
    """An App on ``config`` (default ``config_text``) with the clock at ``start``."""
    clock = FakeClock(start)
    container = build(Settings(data_dir=data_dir, database_url=db_url, **settings), clock=clock)
    cfg = parse_config(
        config if config is not None else config_text(twilio, sendgrid),
        env=config_env(twilio, sendgrid),
    )
    await apply_config(container, cfg)
    key = await container.orders.create_api_key("bistro")
    other_key = await container.orders.create_api_key("cafe")
    async with container.db.read() as conn:
        ids = dict(
            (await conn.execute(sa.select(tables.tenants.c.slug, tables.tenants.c.id))).all()
        )
    return App(container, clock, twilio, sendgrid, ids["bistro"], ids["cafe"], key, other_key)


# -- fixtures -----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest_asyncio.fixture
async def sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with FakeSendGrid() as fake:
        yield fake


@pytest_asyncio.fixture
async def app(
    db_url: str, tmp_path: Path, twilio: FakeTwilio, sendgrid: FakeSendGrid
) -> AsyncIterator[App]:
    built = await make_app(db_url, tmp_path / "data", twilio, sendgrid)
    try:
        yield built
    finally:
        await built.container.aclose()


# -- reading the database -----------------------------------------------------------------


async def rows(db: Any, table: sa.Table, *where: Any, order_by: Any = None) -> list[Any]:
    stmt = sa.select(table).where(*where).order_by(order_by if order_by is not None else table.c.id)
    async with db.read() as conn:
        return list((await conn.execute(stmt)).all())


async def one(db: Any, table: sa.Table, *where: Any) -> Any:
    found = await rows(db, table, *where)
    assert len(found) == 1, found
    return found[0]


async def count(db: Any, table: sa.Table, *where: Any) -> int:
    async with db.read() as conn:
        return int(
            (
                await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))
            ).scalar_one()
        )


async def counts(db: Any) -> dict[str, int]:
    """Rows in every table an input could write to."""
    return {
        t.name: await count(db, t)
        for t in (
            tables.orders,
            tables.order_events,
            tables.messages,
            tables.customers,
            tables.contact_points,
            tables.consent_events,
        )
    }


__all__ = [
    "GUEST",
    "INTEGRATION",
    "PHONE",
    "SENDER",
    "START",
    "WEBHOOK_SECRET",
    "App",
    "FakeClock",
    "app",
    "count",
    "counts",
    "make_app",
    "one",
    "rows",
    "sendgrid",
    "twilio",
]
