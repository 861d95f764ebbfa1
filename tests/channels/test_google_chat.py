"""Google Chat specifics: a thread per order, text-only mode, the webhook URL check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, TransientSendError
from tests.fakes.google_chat import FakeGoogleChat


@pytest.fixture
async def fake() -> AsyncIterator[FakeGoogleChat]:
    async with FakeGoogleChat() as server:
        yield server


def channel(fake: FakeGoogleChat, http: HttpClient, **changes: Any) -> Any:
    return build_channel("google_chat", {"webhook_url": fake.webhook_url(), **changes}, http)


def msg(**metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=3, idempotency_key="k", to="space", text="Order ready", metadata=metadata
    )


async def test_updates_of_one_order_share_a_thread(fake: FakeGoogleChat, http: HttpClient) -> None:
    ch = channel(fake, http)
    first = await ch.send(msg(order_id="42"))
    second = await ch.send(msg(order_id="42"))
    other = await ch.send(msg(order_id="43"))
    threads = [
        fake.created[r.provider_message_id]["thread"]["name"] for r in (first, second, other)
    ]
    assert threads[0] == threads[1] != threads[2]


async def test_no_order_means_no_thread(fake: FakeGoogleChat, http: HttpClient) -> None:
    await channel(fake, http).send(msg())
    assert "thread" not in fake.last.fields
    assert "messageReplyOption" not in fake.last.query_string


async def test_text_only_and_no_threads(fake: FakeGoogleChat, http: HttpClient) -> None:
    await channel(fake, http, cards=False, thread_per_order=False).send(msg(order_id="1"))
    assert fake.last.fields == {"text": "Order ready"}


async def test_quota_exhausted_is_transient(fake: FakeGoogleChat, http: HttpClient) -> None:
    fake.fail_next(1, 429)
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "RESOURCE_EXHAUSTED"


def test_webhook_url_needs_key_and_token() -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel(
            "google_chat",
            {"webhook_url": "https://chat.googleapis.com/v1/spaces/A/messages?key=k"},
            HttpClient(),
        )
    assert caught.value.field == "webhook_url"
