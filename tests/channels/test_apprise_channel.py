"""The Apprise catch-all, against a loopback receiver of Apprise's own json:// service.

Apprise gives no status code, retry hint or id, so it stays out of the shared contract
table; these tests pin down what the adapter promises instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.apprise_channel import FakeAppriseJson


@pytest.fixture
async def fake() -> AsyncIterator[FakeAppriseJson]:
    async with FakeAppriseJson(user="bell", password="s3cret") as server:
        yield server


def channel(urls: list[str], **changes: Any) -> Any:
    return build_channel("apprise", {"urls": urls, **changes}, HttpClient())


MSG = OutboundMessage(
    message_id=1, idempotency_key="k", to="staff", text="Order #3 is late", subject="Late order"
)


async def test_delivers_title_and_body(fake: FakeAppriseJson) -> None:
    result = await channel([fake.apprise_url()]).send(MSG)
    assert result.provider_message_id is None
    assert result.provider_status == "sent"
    assert fake.received == [
        {
            "version": "1.0",
            "title": "Late order",
            "message": "Order #3 is late",
            "attachments": [],
            "type": "info",
        }
    ]


async def test_default_title(fake: FakeAppriseJson) -> None:
    message = OutboundMessage(message_id=2, idempotency_key="k", to="staff", text="x")
    await channel([fake.apprise_url()], title="Bistro").send(message)
    assert fake.received[-1]["title"] == "Bistro"


async def test_failure_is_transient_and_hides_the_password(fake: FakeAppriseJson) -> None:
    with pytest.raises(TransientSendError) as caught:
        await channel([fake.apprise_url(password="wrong-pass")]).send(MSG)
    assert "wrong-pass" not in str(caught.value)
    assert fake.last.status == 401


async def test_partial_delivery_counts_as_sent(fake: FakeAppriseJson) -> None:
    urls = [fake.apprise_url(), fake.apprise_url(password="wrong")]
    result = await channel(urls).send(MSG)
    assert result.provider_status == "partial"
    assert len(fake.received) == 1


async def test_the_event_loop_keeps_running_while_apprise_blocks(fake: FakeAppriseJson) -> None:
    fake.latency = 0.4
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await channel([fake.apprise_url()]).send(MSG)
    finally:
        task.cancel()
    assert ticks >= 10


async def test_empty_body_is_refused_locally(fake: FakeAppriseJson) -> None:
    with pytest.raises(PermanentSendError):
        await channel([fake.apprise_url()]).send(
            OutboundMessage(message_id=3, idempotency_key="k", to="x", text="  ")
        )
    assert fake.requests == []


def test_unknown_scheme_is_a_config_error_without_the_url() -> None:
    with pytest.raises(ConfigError) as caught:
        channel(["nosuchscheme://token-abc@host"])
    assert caught.value.field == "urls"
    assert "token-abc" not in str(caught.value)
