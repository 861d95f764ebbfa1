"""PagerDuty specifics: one alert per order (dedup_key), trigger / acknowledge / resolve."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.pagerduty import FakePagerDuty


@pytest.fixture
async def fake() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as server:
        yield server


def channel(fake: FakePagerDuty, http: HttpClient, **changes: str) -> object:
    return build_channel(
        "pagerduty", {"routing_key": fake.routing_key, "base_url": fake.base_url, **changes}, http
    )


def msg(text: str = "Order #7 is 20 minutes late", **metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=7, idempotency_key="k", to="oncall", text=text, metadata=metadata
    )


async def test_trigger_then_resolve_the_same_order(fake: FakePagerDuty, http: HttpClient) -> None:
    ch = channel(fake, http)
    first = await ch.send(msg(order_id="7"))
    again = await ch.send(msg("Still late", order_id="7"))
    done = await ch.send(msg("Delivered", order_id="7", pagerduty_action="resolve"))
    assert first.provider_message_id == again.provider_message_id == done.provider_message_id
    assert first.provider_message_id == "orderbell-order-7"
    assert fake.alerts == {"orderbell-order-7": "resolved"}
    assert fake.events[-1] == {
        "routing_key": fake.routing_key,
        "event_action": "resolve",
        "dedup_key": "orderbell-order-7",
    }


async def test_acknowledge(fake: FakePagerDuty, http: HttpClient) -> None:
    ch = channel(fake, http)
    await ch.send(msg(order_id="8"))
    await ch.send(msg(order_id="8", pagerduty_action="acknowledge"))
    assert fake.alerts["orderbell-order-8"] == "acknowledged"


async def test_summary_is_cut_and_full_text_kept(fake: FakePagerDuty, http: HttpClient) -> None:
    text = "late " * 400  # 2000 characters
    await channel(fake, http).send(msg(text, order_id="9"))
    payload = fake.events[-1]["payload"]
    assert len(payload["summary"]) == 1024
    assert payload["custom_details"]["message"] == text


async def test_severity_component_and_source(fake: FakePagerDuty, http: HttpClient) -> None:
    ch = channel(fake, http, severity="error", source="downtown-kitchen", component="delivery")
    await ch.send(msg(order_id="10", pagerduty_severity="critical"))
    payload = fake.events[-1]["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "downtown-kitchen"
    assert payload["component"] == "delivery"


@pytest.mark.parametrize(
    "metadata",
    [
        {"pagerduty_action": "resolve"},
        {"order_id": "1", "pagerduty_action": "close"},
        {"order_id": "1", "pagerduty_severity": "high"},
        {"order_id": "x" * 250},
    ],
)
async def test_refused_locally(
    fake: FakePagerDuty, http: HttpClient, metadata: dict[str, str]
) -> None:
    with pytest.raises(PermanentSendError):
        await channel(fake, http).send(msg(**metadata))
    assert fake.requests == []


async def test_trigger_without_order_lets_pagerduty_pick_the_key(
    fake: FakePagerDuty, http: HttpClient
) -> None:
    result = await channel(fake, http).send(msg())
    assert "dedup_key" not in fake.events[-1]
    assert result.provider_message_id in fake.alerts


async def test_429_without_retry_after_is_transient(fake: FakePagerDuty, http: HttpClient) -> None:
    fake.fail_next(1, 429)
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(msg(order_id="1"))
    assert caught.value.retry_after is None


def test_routing_key_shape_is_checked_and_masked() -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel("pagerduty", {"routing_key": "short-secret"}, HttpClient())
    assert caught.value.field == "routing_key"
    assert "short-secret" not in str(caught.value)
