"""Shopify fulfillment event specifics: status mapping, userErrors, throttling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.shopify_fulfillment import FakeShopifyFulfillment


@pytest.fixture
async def fake() -> AsyncIterator[FakeShopifyFulfillment]:
    async with FakeShopifyFulfillment() as server:
        yield server


def channel(fake: FakeShopifyFulfillment, http: HttpClient, **changes: Any) -> Any:
    settings = {
        "shop": "bistro.myshopify.com",
        "access_token": fake.access_token,
        "base_url": fake.base_url,
        **changes,
    }
    return build_channel("shopify_fulfillment", settings, http)


def msg(text: str = "", **metadata: str) -> OutboundMessage:
    meta = {"shopify_fulfillment_id": "gid://shopify/Fulfillment/237894043", **metadata}
    return OutboundMessage(message_id=1, idempotency_key="k", to="shop", text=text, metadata=meta)


@pytest.mark.parametrize(
    ("status", "event"),
    [("completed", "DELIVERED"), ("ready", "READY_FOR_PICKUP"), ("delayed", "DELAYED")],
)
async def test_order_status_maps_to_an_event_status(
    fake: FakeShopifyFulfillment, http: HttpClient, status: str, event: str
) -> None:
    result = await channel(fake, http).send(msg(order_status=status))
    assert fake.last.fields["variables"]["fulfillmentEvent"] == {
        "fulfillmentId": "gid://shopify/Fulfillment/237894043",
        "status": event,
    }
    assert result.provider_status == event


async def test_explicit_event_status_wins(fake: FakeShopifyFulfillment, http: HttpClient) -> None:
    await channel(fake, http).send(
        msg(order_status="ready", shopify_event_status="attempted_delivery")
    )
    assert fake.last.fields["variables"]["fulfillmentEvent"]["status"] == "ATTEMPTED_DELIVERY"


async def test_throttled_is_transient_with_the_restore_time(
    fake: FakeShopifyFulfillment, http: HttpClient
) -> None:
    fake.throttle_next = 1
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(msg(order_status="completed"))
    assert caught.value.code == "THROTTLED"
    assert caught.value.retry_after == pytest.approx(0.06)
    await channel(fake, http).send(msg(order_status="completed"))
    assert fake.last.status == 200


async def test_unknown_fulfillment_is_a_user_error(
    fake: FakeShopifyFulfillment, http: HttpClient
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg(order_status="completed", shopify_fulfillment_id="1"))
    assert caught.value.code == "USER_ERROR"
    assert "Fulfillment does not exist" in str(caught.value)


async def test_status_unknown_to_an_older_api_version(
    fake: FakeShopifyFulfillment, http: HttpClient
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http, api_version="2024-10").send(msg(order_status="delayed"))
    assert caught.value.code == "INVALID_VARIABLE"


@pytest.mark.parametrize(
    "metadata",
    [
        {"order_status": "placed"},
        {"order_status": "completed", "shopify_fulfillment_id": "gid://shopify/Order/1"},
        {"order_status": "completed", "shopify_event_status": "LOST"},
    ],
)
async def test_refused_locally(
    fake: FakeShopifyFulfillment, http: HttpClient, metadata: dict[str, str]
) -> None:
    with pytest.raises(PermanentSendError):
        await channel(fake, http).send(msg(**metadata))
    assert fake.requests == []


def test_status_map_values_are_checked() -> None:
    raw = {"shop": "b.myshopify.com", "access_token": "t", "status_map": {"ready": "PICKED_UP"}}
    with pytest.raises(ConfigError) as caught:
        build_channel("shopify_fulfillment", raw, HttpClient())
    assert caught.value.field == "status_map"
