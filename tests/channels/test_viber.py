"""Viber specifics: HTTP 200 with a status code for every refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.channels.viber import UNREACHABLE_CODES
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.viber import FakeViber

RECEIVER = "01234567890A="


@pytest.fixture
async def fake() -> AsyncIterator[FakeViber]:
    async with FakeViber() as server:
        yield server


def channel(fake: FakeViber, http: HttpClient, **changes: Any) -> Any:
    settings = {"auth_token": fake.auth_token, "sender_name": "Bistro", "base_url": fake.base_url}
    return build_channel("viber", {**settings, **changes}, http)


MSG = OutboundMessage(message_id=9, idempotency_key="k", to=RECEIVER, text="Order #9 is ready")


async def test_avatar_and_min_api_version_are_sent(fake: FakeViber, http: HttpClient) -> None:
    ch = channel(fake, http, sender_avatar="https://bistro.example/logo.jpg", min_api_version=7)
    result = await ch.send(MSG)
    assert fake.last.fields["sender"] == {
        "name": "Bistro",
        "avatar": "https://bistro.example/logo.jpg",
    }
    assert fake.last.fields["min_api_version"] == 7
    assert result.provider_message_id in fake.sent
    assert result.provider_message_id.isdigit()


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda f: f.not_registered.add(RECEIVER), "5"),
        (lambda f: setattr(f, "subscribers", set()), "6"),
        (lambda f: setattr(f, "webhook_set", False), "10"),
    ],
)
async def test_refusals_in_a_200_are_permanent_with_their_status(
    fake: FakeViber, http: HttpClient, setup: Any, code: str
) -> None:
    setup(fake)
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(MSG)
    assert caught.value.code == code
    assert caught.value.http_status == 200
    assert RECEIVER not in str(caught.value)


def test_unreachable_codes() -> None:
    assert {"5", "6"} <= UNREACHABLE_CODES


async def test_rate_control_breach_is_transient(fake: FakeViber, http: HttpClient) -> None:
    fake.fail_next(1, 200, body={"status": 12, "status_message": "tooManyRequests"})
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(MSG)
    assert caught.value.code == "12"


async def test_a_200_without_status_is_transient(fake: FakeViber, http: HttpClient) -> None:
    fake.fail_next(1, 200, body={"chat_hostname": "x"})
    with pytest.raises(TransientSendError):
        await channel(fake, http).send(MSG)


async def test_wrong_token_is_status_2_and_never_echoed(fake: FakeViber, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http, auth_token="super-secret-token").send(MSG)
    assert caught.value.code == "2"
    assert "super-secret-token" not in str(caught.value)


async def test_receiver_must_be_a_viber_id(fake: FakeViber, http: HttpClient) -> None:
    bad = OutboundMessage(message_id=1, idempotency_key="k", to="+1 555 0100", text="x")
    with pytest.raises(PermanentSendError):
        await channel(fake, http).send(bad)
    assert fake.requests == []


def test_sender_name_is_limited_to_28() -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel("viber", {"auth_token": "t", "sender_name": "x" * 29}, HttpClient())
    assert caught.value.field == "sender_name"
