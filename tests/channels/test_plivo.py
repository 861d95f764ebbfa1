"""Plivo specifics beyond the shared contract suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage, mask_secrets
from orderbell.channels.http import HttpClient
from orderbell.channels.plivo import PlivoChannel
from orderbell.channels.registry import build_channel, describe
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.plivo import FakePlivo
from tests.fakes.process import FakeProcess

POWERPACK = "d35f2e82-d387-427f-8594-6fa07613c43a"


@pytest.fixture
async def fake() -> AsyncIterator[FakePlivo]:
    async with FakePlivo() as server:
        yield server


def settings(fake: FakePlivo | FakeProcess, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "auth_id": getattr(fake, "auth_id", "MAFAKEPLIVOAUTHID001"),
        "auth_token": getattr(fake, "auth_token", "fake-plivo-auth-token-0001"),
        "src": "+14155550100",
        "base_url": fake.base_url,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sms(text: str = "Your order is ready", **kw: Any) -> OutboundMessage:
    return OutboundMessage(message_id=1, idempotency_key="k", to="+14155550123", text=text, **kw)


async def test_minimal_sms(fake: FakePlivo, http: HttpClient) -> None:
    result = await build_channel("plivo", settings(fake), http).send(sms())

    assert fake.last.fields == {
        "dst": "+14155550123",
        "text": "Your order is ready",
        "src": "+14155550100",
    }
    assert result.provider_message_id in fake.messages
    assert len(result.provider_message_id or "") == 36
    assert result.provider_status == "queued"


async def test_powerpack_instead_of_src_and_no_logging(fake: FakePlivo, http: HttpClient) -> None:
    channel = build_channel(
        "plivo", settings(fake, src=None, powerpack_uuid=POWERPACK, log=False), http
    )
    await channel.send(sms(status_callback_url="https://ob.example/cb"))
    assert fake.last.fields == {
        "dst": "+14155550123",
        "text": "Your order is ready",
        "powerpack_uuid": POWERPACK,
        "url": "https://ob.example/cb",
        "method": "POST",
        "log": False,
    }


async def test_status_callback_only_when_enabled(fake: FakePlivo, http: HttpClient) -> None:
    channel = build_channel("plivo", settings(fake, send_status_callback=False), http)
    await channel.send(sms(status_callback_url="https://ob.example/cb"))
    assert "url" not in fake.last.fields


@pytest.mark.parametrize(
    ("text", "ok"), [("x" * 1600, True), ("ł" * 737, True), ("ł" * 738, False)]
)
async def test_length_limits_follow_the_encoding(
    fake: FakePlivo, http: HttpClient, text: str, ok: bool
) -> None:
    channel = build_channel("plivo", settings(fake), http)
    if ok:
        await channel.send(sms(text))
        assert fake.last.status == 202
    else:
        with pytest.raises(PermanentSendError, match="737 in UCS-2"):
            await channel.send(sms(text))
        assert fake.requests == []


async def test_error_sentence_is_carried_and_numbers_masked(
    fake: FakePlivo, http: HttpClient
) -> None:
    channel = build_channel("plivo", settings(fake), http)
    fake.fail_next(1, 400, body={"api_id": "a", "error": "invalid 'dst' parameter 14155550123"})

    with pytest.raises(PermanentSendError) as caught:
        await channel.send(sms())

    assert "invalid 'dst' parameter" in str(caught.value)
    assert "14155550123" not in str(caught.value)
    assert caught.value.code is None


async def test_rate_limited_is_transient(fake: FakePlivo, http: HttpClient) -> None:
    fake.fail_next(1, 429)
    with pytest.raises(TransientSendError) as caught:
        await build_channel("plivo", settings(fake), http).send(sms())
    assert caught.value.http_status == 429
    assert "rate_limit_exceeded" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"auth_id": "XX0123456789012345678"}, "auth_id"),
        ({"src": None}, None),
        ({"powerpack_uuid": POWERPACK}, None),
        ({"src": "+1 (415) 555"}, "src"),
        ({"base_url": "api.plivo.com"}, "base_url"),
    ],
)
def test_bad_settings_are_config_errors(changes: dict[str, Any], field: str | None) -> None:
    base = {"auth_id": "MAFAKEPLIVOAUTHID001", "auth_token": "t", "src": "+14155550100"}
    merged = {k: v for k, v in {**base, **changes}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        build_channel("plivo", merged, HttpClient())
    assert caught.value.field == field


def test_alphanumeric_sender_and_masked_token() -> None:
    settings = {"auth_id": "SAFAKEPLIVOAUTHID001", "auth_token": "secret-token-0123456789"}
    config = PlivoChannel.Config(**settings, src="Bistro")
    assert config.src == "Bistro"
    assert mask_secrets(settings, PlivoChannel.secret_fields)["auth_token"] == "****6789"
    info = describe("plivo")
    assert info["family"] == "sms" and info["max_body_chars"] == 1600


def test_fake_serves_from_a_thread() -> None:
    with FakePlivo() as fake:

        async def go() -> None:
            async with HttpClient() as http:
                await build_channel("plivo", settings(fake), http).send(sms())

        asyncio.run(go())
        assert fake.last.status == 202


async def test_fake_serves_as_a_process(http: HttpClient) -> None:
    with FakeProcess("plivo", auth_token="process-token") as proc:
        await build_channel("plivo", settings(proc, auth_token="process-token"), http).send(sms())
        (recorded,) = proc.requests()
    assert recorded["status"] == 202
    assert recorded["fields"]["dst"] == "+14155550123"
