"""End-to-end fixtures: a fresh database (SQLite file, or a scratch PostgreSQL database),
loopback provider fakes in threads, and a configuration file pointing at them."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio

POSTGRES_ENV = "ORDERBELL_TEST_POSTGRES_URL"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"end-to-end-webhook-secret!").decode()


def _pg_admin() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


async def _pg(sql: str) -> None:
    import asyncpg

    admin = _pg_admin()
    assert admin
    dsn = admin.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def scratch_postgres() -> Iterator[str]:
    name = f"orderbell_e2e_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    admin = _pg_admin()
    assert admin
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None  # the default: a SQLite file in the data dir
        return
    if not _pg_admin():
        pytest.skip(f"{POSTGRES_ENV} is not set")
    yield from scratch_postgres()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not _pg_admin():
        pytest.skip(f"{POSTGRES_ENV} is not set")
    yield from scratch_postgres()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as fake:
        yield fake


def write_config(
    path: Path,
    twilio: FakeTwilio | None,
    sendgrid: FakeSendGrid | None,
    *,
    extra_channels: str = "",
) -> Path:
    channels = ""
    if twilio is not None:
        channels += f"""
      - name: sms
        provider: twilio_sms
        settings:
          account_sid: {twilio.account_sid}
          auth_token: ${{E2E_TWILIO_TOKEN}}
          from_number: "+15017122661"
          base_url: {twilio.base_url}
"""
    if sendgrid is not None:
        channels += f"""
      - name: email
        provider: sendgrid
        settings:
          api_key: ${{E2E_SENDGRID_KEY}}
          from_email: orders@bistro.example
          from_name: Bistro Downtown
          base_url: {sendgrid.base_url}
"""
    path.write_text(
        f"""version: 1
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
        address: "1 Main St, New York, NY"
    integrations:
      - id: bistro-pos
        source: generic
        location: downtown
        secret: {WEBHOOK_SECRET}
    channels:{channels}{extra_channels}
"""
    )
    return path


def config_env(twilio: FakeTwilio | None, sendgrid: FakeSendGrid | None) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if twilio is not None:
        env["E2E_TWILIO_TOKEN"] = twilio.auth_token
    if sendgrid is not None:
        env["E2E_SENDGRID_KEY"] = sendgrid.api_key
    return env
