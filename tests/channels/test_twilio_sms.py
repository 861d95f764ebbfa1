"""Twilio SMS specifics beyond the shared contract suite."""

from __future__ import annotations

from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage, mask_secrets
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.channels.twilio_sms import TwilioSmsChannel, TwilioSmsConfig
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.twilio import FakeTwilio, segments

SERVICE_SID = "MG" + "ab" * 16


def settings(fake: FakeTwilio, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": "+15017122661",
        "base_url": fake.base_url,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sms(to: str = "+15558675310", text: str = "Your order is ready", **kw: Any) -> OutboundMessage:
    return OutboundMessage(message_id=1, idempotency_key="k", to=to, text=text, **kw)


async def test_messaging_service_instead_of_a_number(
    fake_twilio: FakeTwilio, http: HttpClient
) -> None:
    channel = build_channel(
        "twilio_sms",
        settings(fake_twilio, from_number=None, messaging_service_sid=SERVICE_SID),
        http,
    )
    result = await channel.send(sms())
    assert fake_twilio.last.pairs == [
        ("To", "+15558675310"),
        ("MessagingServiceSid", SERVICE_SID),
        ("Body", "Your order is ready"),
    ]
    assert result.provider_status == "accepted"


async def test_status_callback_only_when_enabled_and_given(
    fake_twilio: FakeTwilio, http: HttpClient
) -> None:
    url = "https://ob.example/v1/callbacks/twilio_sms/3"
    on = build_channel("twilio_sms", settings(fake_twilio), http)
    off = build_channel("twilio_sms", settings(fake_twilio, send_status_callback=False), http)

    await on.send(sms(status_callback_url=url))
    assert fake_twilio.last.fields["StatusCallback"] == url
    await on.send(sms())
    assert "StatusCallback" not in fake_twilio.last.fields
    await off.send(sms(status_callback_url=url))
    assert "StatusCallback" not in fake_twilio.last.fields


async def test_validity_period_is_sent(fake_twilio: FakeTwilio, http: HttpClient) -> None:
    channel = build_channel("twilio_sms", settings(fake_twilio, validity_period=600), http)
    await channel.send(sms())
    assert fake_twilio.last.fields["ValidityPeriod"] == "600"


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", "21211"), ("+15005550004", "21610"), ("+15005550009", "21614")],
)
async def test_recipient_errors_from_twilio_are_permanent(
    fake_twilio: FakeTwilio, http: HttpClient, to: str, code: str
) -> None:
    channel = build_channel("twilio_sms", settings(fake_twilio), http)
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(sms(to=to))
    assert caught.value.code == code
    assert caught.value.http_status == 400
    assert to not in str(caught.value)


async def test_exactly_1600_characters_are_sent(fake_twilio: FakeTwilio, http: HttpClient) -> None:
    channel = build_channel("twilio_sms", settings(fake_twilio), http)
    result = await channel.send(sms(text="é" * 1600))
    assert result.provider_message_id
    assert fake_twilio.messages[result.provider_message_id]["num_segments"] == str(
        segments("é" * 1600)
    )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (sms(text="x" * 1601), "1601 characters"),
        (sms(text="   "), "empty"),
        (sms(to="5558675310"), "E.164"),
        (sms(to="guest@example.com"), "E.164"),
    ],
)
async def test_refused_before_any_request(
    fake_twilio: FakeTwilio, http: HttpClient, message: OutboundMessage, reason: str
) -> None:
    channel = build_channel("twilio_sms", settings(fake_twilio), http)
    with pytest.raises(PermanentSendError, match=reason):
        await channel.send(message)
    assert fake_twilio.requests == []


async def test_non_json_error_from_a_proxy(fake_twilio: FakeTwilio, http: HttpClient) -> None:
    fake_twilio.fail_next(1, 502, body="<html>Bad Gateway</html>")
    channel = build_channel("twilio_sms", settings(fake_twilio), http)
    with pytest.raises(TransientSendError) as caught:
        await channel.send(sms())
    assert caught.value.code is None
    assert "Bad Gateway" in str(caught.value)


async def test_accepted_but_unreadable_answer_is_still_a_success(
    fake_twilio: FakeTwilio, http: HttpClient
) -> None:
    # The message was created; raising would make the engine send it twice.
    fake_twilio.fail_next(1, 201, body="not json")
    channel = build_channel("twilio_sms", settings(fake_twilio), http)
    result = await channel.send(sms())
    assert result.provider_message_id is None
    assert result.http_status == 201


def test_config_needs_exactly_one_sender() -> None:
    base = {"account_sid": "AC" + "0" * 32, "auth_token": "t"}
    with pytest.raises(ValueError, match="exactly one"):
        TwilioSmsConfig.model_validate(base)
    with pytest.raises(ValueError, match="exactly one"):
        TwilioSmsConfig.model_validate(
            {**base, "from_number": "+15017122661", "messaging_service_sid": SERVICE_SID}
        )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account_sid": "AC123"}, "account_sid"),
        ({"from_number": "5017122661"}, "from_number"),
        ({"messaging_service_sid": "MGxyz", "from_number": None}, "messaging_service_sid"),
        ({"base_url": "api.twilio.com"}, "base_url"),
        ({"validity_period": 0}, "validity_period"),
        ({"authtoken": "typo"}, "authtoken"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    raw = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "t0ps3cr3t-value",
        "from_number": "+15017122661",
        **change,
    }
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        build_channel("twilio_sms", raw, HttpClient())
    assert caught.value.field == field
    assert "twilio_sms" in str(caught.value)
    assert "t0ps3cr3t-value" not in str(caught.value)


def test_secret_never_shows() -> None:
    raw = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "t0ps3cr3t-value-1234",
        "from_number": "+15017122661",
    }
    config = TwilioSmsConfig.model_validate(raw)
    assert "t0ps3cr3t" not in repr(config)
    assert "t0ps3cr3t" not in str(config.model_dump())
    assert mask_secrets(raw, TwilioSmsChannel.secret_fields)["auth_token"] == "****1234"
    assert TwilioSmsChannel.max_body_chars == 1600
