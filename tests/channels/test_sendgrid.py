"""SendGrid specifics beyond the shared contract suite."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.channels.sendgrid import SendGridConfig
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.sendgrid import FakeSendGrid


def settings(fake: FakeSendGrid, **changes: Any) -> dict[str, Any]:
    return {
        "api_key": fake.api_key,
        "from_email": "orders@bistro.example",
        "base_url": fake.base_url,
        **changes,
    }


def mail(**kw: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 5,
        "idempotency_key": "k",
        "to": "guest@example.com",
        "text": "Your order is ready",
        "subject": "Order #5",
    }
    values.update(kw)
    return OutboundMessage(**values)


async def test_minimal_mail(fake_sendgrid: FakeSendGrid, http: HttpClient) -> None:
    result = await build_channel("sendgrid", settings(fake_sendgrid), http).send(mail())
    assert fake_sendgrid.last.fields == {
        "personalizations": [
            {"to": [{"email": "guest@example.com"}], "custom_args": {"message_id": "5"}}
        ],
        "from": {"email": "orders@bistro.example"},
        "subject": "Order #5",
        "content": [{"type": "text/plain", "value": "Your order is ready"}],
    }
    assert result.provider_message_id in fake_sendgrid.accepted
    assert result.provider_status == "accepted"


async def test_all_options(fake_sendgrid: FakeSendGrid, http: HttpClient) -> None:
    channel = build_channel(
        "sendgrid",
        settings(
            fake_sendgrid,
            from_name="Bistro",
            reply_to="help@bistro.example",
            categories=["order-update", "pickup"],
        ),
        http,
    )
    await channel.send(
        mail(
            text="",
            html="<p>Ready</p>",
            metadata={
                "order_id": "42",
                "header:List-Unsubscribe": "<https://bistro.example/u/1>",
                "header:List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
    )
    body = fake_sendgrid.last.fields
    assert body["from"] == {"email": "orders@bistro.example", "name": "Bistro"}
    assert body["reply_to"] == {"email": "help@bistro.example"}
    assert body["categories"] == ["order-update", "pickup"]
    assert body["content"] == [{"type": "text/html", "value": "<p>Ready</p>"}]
    assert body["headers"] == {
        "List-Unsubscribe": "<https://bistro.example/u/1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert body["personalizations"][0]["custom_args"] == {"message_id": "5", "order_id": "42"}


async def test_sandbox_mode_is_validated_not_sent(
    fake_sendgrid: FakeSendGrid, http: HttpClient
) -> None:
    channel = build_channel("sendgrid", settings(fake_sendgrid, sandbox_mode=True), http)
    result = await channel.send(mail())
    assert result.http_status == 200
    assert result.provider_message_id is None
    assert fake_sendgrid.accepted == {}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (mail(subject=None), "subject"),
        (mail(subject="  "), "subject"),
        (mail(text="", html=None), "body"),
        (mail(to="+15558675310"), "email address"),
    ],
)
async def test_refused_before_any_request(
    fake_sendgrid: FakeSendGrid, http: HttpClient, message: OutboundMessage, reason: str
) -> None:
    with pytest.raises(PermanentSendError, match=reason):
        await build_channel("sendgrid", settings(fake_sendgrid), http).send(message)
    assert fake_sendgrid.requests == []


async def test_validation_error_from_sendgrid_names_the_field(
    fake_sendgrid: FakeSendGrid, http: HttpClient
) -> None:
    # A reserved header slips through the metadata hook: SendGrid (the fake) refuses it.
    channel = build_channel("sendgrid", settings(fake_sendgrid), http)
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(mail(metadata={"header:Subject": "spoof"}))
    assert caught.value.http_status == 400
    assert "(field headers)" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403, 413])
async def test_permanent_statuses(
    fake_sendgrid: FakeSendGrid, http: HttpClient, status: int
) -> None:
    fake_sendgrid.fail_next(1, status)
    with pytest.raises(PermanentSendError) as caught:
        await build_channel("sendgrid", settings(fake_sendgrid), http).send(mail())
    assert caught.value.http_status == status


async def test_429_with_rate_limit_reset(fake_sendgrid: FakeSendGrid, http: HttpClient) -> None:
    reset = int(time.time()) + 30
    fake_sendgrid.fail_next(
        1,
        429,
        headers={
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        },
    )
    with pytest.raises(TransientSendError) as caught:
        await build_channel("sendgrid", settings(fake_sendgrid), http).send(mail())
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


async def test_error_messages_mask_addresses(fake_sendgrid: FakeSendGrid, http: HttpClient) -> None:
    fake_sendgrid.fail_next(
        1,
        400,
        body={
            "errors": [
                {
                    "message": "guest@example.com bounced before",
                    "field": "personalizations.0.to.0.email",
                }
            ]
        },
    )
    with pytest.raises(PermanentSendError) as caught:
        await build_channel("sendgrid", settings(fake_sendgrid), http).send(mail())
    assert "guest@example.com" not in str(caught.value)
    assert "g***@example.com bounced before (field personalizations.0.to.0.email)" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"from_email": "nobody"}, "from_email"),
        ({"reply_to": "nobody"}, "reply_to"),
        ({"categories": [f"c{i}" for i in range(11)]}, "categories"),
        ({"categories": ["a", "a"]}, "categories"),
        ({"api_key": ""}, "api_key"),
        ({"from": "x@y.z"}, "from"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    raw = {"api_key": "SG.k", "from_email": "orders@bistro.example", **change}
    with pytest.raises(ConfigError) as caught:
        build_channel("sendgrid", raw, HttpClient())
    assert caught.value.field == field


def test_api_key_is_secret() -> None:
    config = SendGridConfig(api_key="SG.very-secret-key", from_email="a@b.example")
    assert "very-secret" not in repr(config)
