"""MessageBird / Bird specifics beyond the shared contract suite (which covers the
Conversations API): the Bird Channels API, both error shapes, settings."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.messagebird import MessageBirdChannel
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.messagebird import FakeMessageBird
from tests.fakes.process import FakeProcess

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
async def fake() -> AsyncIterator[FakeMessageBird]:
    async with FakeMessageBird() as server:
        yield server


def conversations(fake: FakeMessageBird, **changes: Any) -> dict[str, Any]:
    return {
        "access_key": fake.access_key,
        "channel_id": fake.channel_id,
        "base_url": fake.base_url,
        **changes,
    }


def bird(fake: FakeMessageBird, **changes: Any) -> dict[str, Any]:
    return {
        "api": "bird",
        "access_key": fake.access_key,
        "workspace_id": fake.workspace_id,
        "channel_id": fake.bird_channel_id,
        "base_url": fake.base_url,
        **changes,
    }


def sms(**kw: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 9,
        "idempotency_key": "k",
        "to": "+31612345678",
        "text": "Your order is ready",
    }
    values.update(kw)
    return OutboundMessage(**values)


async def test_bird_channels_api(fake: FakeMessageBird, http: HttpClient) -> None:
    channel = build_channel("messagebird", bird(fake), http)

    result = await channel.send(sms(status_callback_url="https://ob.example/cb"))

    rec = fake.last
    assert rec.path == (f"/workspaces/{fake.workspace_id}/channels/{fake.bird_channel_id}/messages")
    assert rec.headers["authorization"] == f"AccessKey {fake.access_key}"
    assert rec.headers["accept"] == "application/json"
    assert rec.fields == {
        "receiver": {
            "contacts": [{"identifierKey": "phonenumber", "identifierValue": "+31612345678"}]
        },
        "body": {"type": "text", "text": {"text": "Your order is ready"}},
        "reference": "9",
    }
    assert result.http_status == 202
    assert UUID_RE.match(result.provider_message_id or "")
    assert result.provider_status == "accepted"


async def test_bird_error_shape_carries_its_code(fake: FakeMessageBird, http: HttpClient) -> None:
    channel = build_channel(
        "messagebird", bird(fake, channel_id="0" * 8 + "-0000-0000-0000-" + "0" * 12), http
    )
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(sms())
    assert caught.value.http_status == 404
    assert caught.value.code == "NotFound"


async def test_bird_wrong_key_is_401(fake: FakeMessageBird, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await build_channel("messagebird", bird(fake, access_key="nope"), http).send(sms())
    assert (caught.value.http_status, caught.value.code) == (401, "Unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": "E01001", "message": "Request validation failed."}},
        {"code": "E01001", "message": "Request validation failed."},
    ],
)
async def test_bird_error_envelopes_nested_or_flat(
    fake: FakeMessageBird, http: HttpClient, body: dict[str, Any]
) -> None:
    fake.fail_next(1, 422, body=body)
    with pytest.raises(PermanentSendError) as caught:
        await build_channel("messagebird", bird(fake), http).send(sms())
    assert caught.value.code == "E01001"
    assert "validation failed" in str(caught.value)


async def test_conversations_error_names_the_parameter(
    fake: FakeMessageBird, http: HttpClient
) -> None:
    channel = build_channel("messagebird", conversations(fake, channel_id="f" * 32), http)
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(sms())
    assert caught.value.code == "20"
    assert "(parameter from)" in str(caught.value)


async def test_no_report_url_when_disabled(fake: FakeMessageBird, http: HttpClient) -> None:
    channel = build_channel("messagebird", conversations(fake, send_status_callback=False), http)
    await channel.send(sms(status_callback_url="https://ob.example/cb"))
    assert "reportUrl" not in fake.last.fields


async def test_throttled_is_transient(fake: FakeMessageBird, http: HttpClient) -> None:
    fake.fail_next(1, 429, headers={"Retry-After": "2"})
    with pytest.raises(TransientSendError) as caught:
        await build_channel("messagebird", bird(fake), http).send(sms())
    assert caught.value.retry_after == 2.0


def test_default_endpoints_follow_the_api() -> None:
    http = HttpClient()
    legacy = build_channel("messagebird", {"access_key": "k", "channel_id": "a" * 32}, http)
    new = build_channel(
        "messagebird",
        {
            "api": "bird",
            "access_key": "k",
            "workspace_id": "8c6d9a7e-1f2b-4c3d-9e8f-0a1b2c3d4e5f",
            "channel_id": "2f9b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        },
        http,
    )
    assert isinstance(legacy, MessageBirdChannel) and isinstance(new, MessageBirdChannel)
    assert legacy.url == "https://conversations.messagebird.com/v1/send"
    assert new.url == (
        "https://api.bird.com/workspaces/8c6d9a7e-1f2b-4c3d-9e8f-0a1b2c3d4e5f"
        "/channels/2f9b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/messages"
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"api": "bird", "channel_id": "2f9b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"},
        {"api": "bird", "workspace_id": "w", "channel_id": "2f9b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"},
        {
            "api": "bird",
            "workspace_id": "8c6d9a7e-1f2b-4c3d-9e8f-0a1b2c3d4e5f",
            "channel_id": "a" * 32,
        },
        {"channel_id": "2f9b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"},
        {"channel_id": "a" * 32, "workspace_id": "8c6d9a7e-1f2b-4c3d-9e8f-0a1b2c3d4e5f"},
        {"api": "sms", "channel_id": "a" * 32},
    ],
)
def test_ids_must_fit_the_api(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        build_channel("messagebird", {"access_key": "k", **settings}, HttpClient())


def test_fake_serves_from_a_thread() -> None:
    with FakeMessageBird() as fake:

        async def go() -> None:
            async with HttpClient() as http:
                await build_channel("messagebird", conversations(fake), http).send(sms())

        asyncio.run(go())
        assert fake.last.status == 202


async def test_fake_serves_as_a_process(http: HttpClient) -> None:
    with FakeProcess("messagebird", access_key="process-key") as proc:
        channel = build_channel(
            "messagebird",
            {
                "api": "bird",
                "access_key": "process-key",
                "workspace_id": "8c6d9a7e-1f2b-4c3d-9e8f-0a1b2c3d4e5f",
                "channel_id": "2f9b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                "base_url": proc.base_url,
            },
            http,
        )
        await channel.send(sms())
        (recorded,) = proc.requests()
    assert recorded["status"] == 202
