"""Fixtures for the channel tests: a pooled client per test and the provider fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orderbell.channels.http import HttpClient
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient(timeout=2.0)
    yield client
    await client.aclose()


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def fake_sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with FakeSendGrid() as fake:
        yield fake
