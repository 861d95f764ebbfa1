"""Discord specifics: rate-limit headers (proactive wait), 429 retry_after, options."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, TransientSendError
from tests.fakes.discord import FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(bucket_limit=1, bucket_window=0.4) as server:
        yield server


def channel(fake: FakeDiscord, http: HttpClient, **changes: Any) -> Any:
    settings = {"webhook_url": fake.webhook_url(), "base_url": fake.base_url, **changes}
    return build_channel("discord", settings, http)


MSG = OutboundMessage(message_id=1, idempotency_key="k", to="staff", text="Order #1 is late")


async def test_empty_bucket_waits_for_the_reset_before_sending(
    fake: FakeDiscord, http: HttpClient
) -> None:
    ch = channel(fake, http, max_wait_seconds=2)
    await ch.send(MSG)
    assert fake.last.status == 200
    started = time.monotonic()
    await ch.send(MSG)
    assert time.monotonic() - started >= 0.25
    assert [r.status for r in fake.requests] == [200, 200]  # never a 429


async def test_empty_bucket_beyond_max_wait_fails_transient_without_a_request(
    fake: FakeDiscord, http: HttpClient
) -> None:
    ch = channel(fake, http, max_wait_seconds=0)
    await ch.send(MSG)
    with pytest.raises(TransientSendError) as caught:
        await ch.send(MSG)
    assert 0 < caught.value.retry_after <= 0.4
    assert len(fake.requests) == 1


async def test_429_body_retry_after_wins_over_a_shorter_header(
    fake: FakeDiscord, http: HttpClient
) -> None:
    body = {"message": "You are being rate limited.", "retry_after": 12.5, "global": True}
    fake.fail_next(1, 429, body=body, headers={"Retry-After": "2"})
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(MSG)
    assert caught.value.retry_after == 12.5
    assert "global rate limit" in str(caught.value)


async def test_429_from_the_bucket_is_transient_with_its_wait(
    fake: FakeDiscord, http: HttpClient
) -> None:
    other = channel(fake, http)  # a second channel object: it has not seen the headers
    await channel(fake, http).send(MSG)
    with pytest.raises(TransientSendError) as caught:
        await other.send(MSG)
    assert caught.value.http_status == 429
    assert caught.value.retry_after is not None


async def test_username_avatar_and_thread(fake: FakeDiscord, http: HttpClient) -> None:
    ch = channel(
        fake,
        http,
        username="Order Bell",
        avatar_url="https://bistro.example/bell.png",
        thread_id="1234567890123456789",
        embeds=False,
    )
    await ch.send(MSG)
    assert fake.last.query_string == "wait=true&thread_id=1234567890123456789"
    assert fake.last.fields == {
        "content": "Order #1 is late",
        "allowed_mentions": {"parse": []},
        "username": "Order Bell",
        "avatar_url": "https://bistro.example/bell.png",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "Discord Bot"}, "username"),
        ({"webhook_url": "https://discord.com/api/channels/1/messages"}, "webhook_url"),
        ({"thread_id": "abc"}, "thread_id"),
    ],
)
def test_config_errors(change: dict[str, Any], field: str) -> None:
    raw = {
        "webhook_url": "https://discord.com/api/webhooks/1234567890123456789/" + "t" * 68,
        **change,
    }
    with pytest.raises(ConfigError) as caught:
        build_channel("discord", raw, HttpClient())
    assert caught.value.field == field
