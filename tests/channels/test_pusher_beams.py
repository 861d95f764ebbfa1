"""Pusher Beams specifics: users vs interests, platforms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError
from tests.fakes.pusher_beams import FakePusherBeams


@pytest.fixture
async def fake() -> AsyncIterator[FakePusherBeams]:
    async with FakePusherBeams() as server:
        yield server


def channel(fake: FakePusherBeams, http: HttpClient, **changes: Any) -> Any:
    settings = {
        "instance_id": fake.instance_id,
        "secret_key": fake.secret_key,
        "base_url": fake.base_url,
        **changes,
    }
    return build_channel("pusher_beams", settings, http)


def msg(**metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=1, idempotency_key="k", to="guest-1", text="Ready", metadata=metadata
    )


async def test_interest_per_order(fake: FakePusherBeams, http: HttpClient) -> None:
    result = await channel(fake, http, target="interests", platforms=["fcm"]).send(
        msg(order_id="42")
    )
    assert fake.last.path.endswith("/publishes/interests")
    assert fake.last.fields == {
        "interests": ["order-42"],
        "fcm": {"notification": {"title": "Your order", "body": "Ready"}},
    }
    assert result.provider_message_id in fake.publishes


async def test_explicit_interest(fake: FakePusherBeams, http: HttpClient) -> None:
    await channel(fake, http, target="interests").send(msg(beams_interest="site-3"))
    assert fake.last.fields["interests"] == ["site-3"]


async def test_no_interest_is_refused(fake: FakePusherBeams, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError):
        await channel(fake, http, target="interests").send(msg(beams_interest="bad name"))
    assert fake.requests == []


def test_default_host_is_the_instance_host() -> None:
    instance = "8f9a6e4c-1234-4b7d-9a1b-0123456789ab"
    ch = build_channel("pusher_beams", {"instance_id": instance, "secret_key": "s"}, HttpClient())
    assert ch.url == (  # type: ignore[attr-defined]
        f"https://{instance}.pushnotifications.pusher.com/publish_api/v1/instances/"
        f"{instance}/publishes/users"
    )


@pytest.mark.parametrize(
    "change", [{"instance_id": "nope"}, {"platforms": []}, {"platforms": ["fcm", "fcm"]}]
)
def test_config_errors(change: dict[str, Any]) -> None:
    raw = {"instance_id": "8f9a6e4c-1234-4b7d-9a1b-0123456789ab", "secret_key": "s", **change}
    with pytest.raises(ConfigError):
        build_channel("pusher_beams", raw, HttpClient())
