"""The channel registry: one dict, settings validated into ConfigError, a description."""

from __future__ import annotations

import pytest

from orderbell.channels.base import ChannelConfig
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import CHANNELS, build_channel, describe
from orderbell.domain.model import ChannelFamily
from orderbell.errors import ConfigError


@pytest.mark.parametrize("provider", sorted(CHANNELS))
def test_every_channel_declares_its_metadata(provider: str) -> None:
    cls = CHANNELS[provider]
    assert cls.provider == provider
    assert isinstance(cls.family, ChannelFamily)
    assert cls.title and cls.docs_url
    assert issubclass(cls.Config, ChannelConfig)
    assert set(cls.secret_fields) <= set(cls.Config.model_fields)
    assert cls.max_body_chars is None or cls.max_body_chars > 0
    assert callable(cls.send)


def test_the_first_three() -> None:
    assert {"outbox", "twilio_sms", "sendgrid"} <= set(CHANNELS)


def test_unknown_provider() -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel("carrier_pigeon", {}, HttpClient())
    assert caught.value.field == "provider"
    assert "twilio_sms" in str(caught.value)


def test_errors_never_repeat_the_values() -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel(
            "sendgrid",
            {"api_key": "SG.super-secret", "from_email": "x", "apikey": "SG.other-secret"},
            HttpClient(),
        )
    text = str(caught.value)
    assert "super-secret" not in text and "other-secret" not in text
    assert "from_email" in text and "apikey: unknown setting" in text


def test_missing_required_field() -> None:
    with pytest.raises(ConfigError) as caught:
        build_channel("sendgrid", {"api_key": "SG.k"}, HttpClient())
    assert caught.value.field == "from_email"
    assert "from_email: required" in str(caught.value)


def test_describe_twilio() -> None:
    info = describe("twilio_sms")
    assert info["family"] == "sms"
    assert info["max_body_chars"] == 1600
    fields = {f["name"]: f for f in info["fields"]}
    assert fields["auth_token"]["secret"] and fields["auth_token"]["required"]
    assert fields["auth_token"]["default"] is None
    assert not fields["account_sid"]["secret"] and fields["account_sid"]["required"]
    assert fields["base_url"]["default"] == "https://api.twilio.com"
    assert not fields["base_url"]["required"]
    assert all(f["description"] for f in info["fields"])


@pytest.mark.parametrize("provider", sorted(CHANNELS))
def test_describe_is_plain_data(provider: str) -> None:
    import json

    json.dumps(describe(provider))
