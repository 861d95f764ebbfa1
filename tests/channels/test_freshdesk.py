"""Freshdesk specifics: reply on the order's ticket, or an outbound email."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.freshdesk import FakeFreshdesk


@pytest.fixture
async def fake() -> AsyncIterator[FakeFreshdesk]:
    async with FakeFreshdesk() as server:
        yield server


def channel(fake: FakeFreshdesk, http: HttpClient, **changes: Any) -> Any:
    settings = {
        "api_key": fake.api_key,
        "base_url": fake.base_url,
        "email_config_id": fake.email_config_id,
    }
    return build_channel("freshdesk", {**settings, **changes}, http)


def msg(**kw: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 1,
        "idempotency_key": "k",
        "to": "guest@example.com",
        "text": "Your order <#5> is ready",
        "subject": "Order #5",
    }
    return OutboundMessage(**{**values, **kw})


async def test_outbound_email_opens_a_ticket(fake: FakeFreshdesk, http: HttpClient) -> None:
    result = await channel(fake, http, status=5, priority=2).send(msg())
    assert fake.last.path == "/api/v2/tickets/outbound_email"
    assert fake.last.fields == {
        "email": "guest@example.com",
        "subject": "Order #5",
        "description": "<p>Your order &lt;#5&gt; is ready</p>",
        "email_config_id": fake.email_config_id,
        "status": 5,
        "priority": 2,
    }
    assert int(result.provider_message_id) in fake.tickets
    assert result.http_status == 201


async def test_reply_uses_the_html_part(fake: FakeFreshdesk, http: HttpClient) -> None:
    await channel(fake, http).send(
        msg(html="<b>Ready</b>", metadata={"freshdesk_ticket_id": "1001"})
    )
    assert fake.last.fields == {"body": "<b>Ready</b>"}


@pytest.mark.parametrize(
    ("kw", "changes"),
    [
        ({"metadata": {"freshdesk_ticket_id": "abc"}}, {}),
        ({}, {"email_config_id": None}),
        ({"to": "+15558675310"}, {}),
        ({"subject": None}, {}),
    ],
)
async def test_refused_locally(
    fake: FakeFreshdesk, http: HttpClient, kw: dict[str, Any], changes: dict[str, Any]
) -> None:
    with pytest.raises(PermanentSendError):
        await channel(fake, http, **changes).send(msg(**kw))
    assert fake.requests == []


async def test_429_waits_retry_after(fake: FakeFreshdesk, http: HttpClient) -> None:
    fake.fail_next(1, 429, headers={"Retry-After": "45"})
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.retry_after == 45.0


def test_domain_builds_the_url() -> None:
    ch = build_channel("freshdesk", {"api_key": "k", "domain": "bistro"}, HttpClient())
    assert ch.root == "https://bistro.freshdesk.com/api/v2"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        build_channel("freshdesk", {"api_key": "k"}, HttpClient())
