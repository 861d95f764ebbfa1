"""Twilio Voice specifics beyond the shared contract suite: TwiML, language, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.channels.twilio_voice import (
    MAX_TWIML_CHARS,
    TwilioVoiceChannel,
    say_language,
)
from orderbell.errors import ConfigError, PermanentSendError
from tests.fakes.process import FakeProcess
from tests.fakes.twilio_voice import FakeTwilioVoice, call_params, parse_twiml

CALLBACK = "https://ob.example/v1/callbacks/twilio_voice/4"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilioVoice]:
    async with FakeTwilioVoice() as server:
        yield server


def settings(fake: FakeTwilioVoice, **changes: Any) -> dict[str, Any]:
    return {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": "+15017122661",
        "base_url": fake.base_url,
        **changes,
    }


def call(text: str = "Your order is ready", **kw: Any) -> OutboundMessage:
    return OutboundMessage(message_id=1, idempotency_key="k", to="+15558675310", text=text, **kw)


def said(fake: FakeTwilioVoice, sid: str | None) -> dict[str, Any]:
    assert sid is not None
    (say,) = fake.calls[sid]["_say"]
    return say  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("en", "en-US"),
        ("es", "es-MX"),
        ("es_ES", "es-ES"),
        ("pt-br", "pt-BR"),
        ("fr-CA", "fr-CA"),
        ("de", "de-DE"),
        ("xx", "en-US"),
        ("", "en-US"),
    ],
)
def test_guest_locale_becomes_a_twilio_say_language(locale: str, language: str) -> None:
    assert say_language(locale, {}, "en-US") == language


def test_language_overrides_win() -> None:
    overrides = {"es": "es-US", "en_GB": "en-IN"}
    assert say_language("es", overrides, "en-US") == "es-US"
    assert say_language("es-MX", overrides, "en-US") == "es-US"
    assert say_language("en-GB", overrides, "en-US") == "en-IN"
    assert say_language("en", overrides, "en-US") == "en-US"


async def test_the_call_speaks_in_the_guests_language(
    fake: FakeTwilioVoice, http: HttpClient
) -> None:
    channel = build_channel("twilio_voice", settings(fake), http)

    spanish = await channel.send(call("Su pedido está listo", locale="es"))
    english = await channel.send(call("Your order is ready", locale="en"))

    assert said(fake, spanish.provider_message_id) == {
        "text": "Su pedido está listo",
        "language": "es-MX",
    }
    assert said(fake, english.provider_message_id)["language"] == "en-US"


async def test_voice_per_language_and_loop(fake: FakeTwilioVoice, http: HttpClient) -> None:
    channel = build_channel(
        "twilio_voice",
        settings(
            fake,
            voice="Polly.Joanna-Neural",
            voices={"es": "Polly.Mia-Neural"},
            languages={"es": "es-US"},
            loop=2,
        ),
        http,
    )

    es = await channel.send(call("Listo", locale="es"))
    en = await channel.send(call("Ready", locale="en"))

    assert said(fake, es.provider_message_id) == {
        "text": "Listo",
        "language": "es-US",
        "voice": "Polly.Mia-Neural",
        "loop": "2",
    }
    assert said(fake, en.provider_message_id)["voice"] == "Polly.Joanna-Neural"


async def test_text_is_xml_escaped(fake: FakeTwilioVoice, http: HttpClient) -> None:
    text = 'Order <#123> for "Ann & Bob" is </Say><Hangup/> ready\x07'
    result = await build_channel("twilio_voice", settings(fake), http).send(call(text))

    twiml = dict(fake.last.pairs)["Twiml"]
    assert "<Hangup" not in twiml and "&lt;/Say&gt;" in twiml
    assert said(fake, result.provider_message_id)["text"] == text.replace("\x07", "")


async def test_twiml_over_4000_characters_is_refused_with_32018(
    fake: FakeTwilioVoice, http: HttpClient
) -> None:
    channel = build_channel("twilio_voice", settings(fake), http)
    # Short enough as text, too long once "&" is escaped to "&amp;".
    text = "&" * 900
    assert len(text) < TwilioVoiceChannel.max_body_chars  # type: ignore[operator]

    with pytest.raises(PermanentSendError) as caught:
        await channel.send(call(text))

    assert caught.value.code == "32018"
    assert fake.requests == []


async def test_longest_twiml_that_fits_is_accepted(fake: FakeTwilioVoice, http: HttpClient) -> None:
    channel = build_channel("twilio_voice", settings(fake), http)
    overhead = len(channel.twiml(call("x", locale="en"))) - 1  # type: ignore[attr-defined]
    text = "x" * (MAX_TWIML_CHARS - overhead)

    result = await channel.send(call(text))

    assert len(dict(fake.last.pairs)["Twiml"]) == MAX_TWIML_CHARS
    assert result.http_status == 201


async def test_every_option_uses_names_from_twilios_spec(
    fake: FakeTwilioVoice, http: HttpClient
) -> None:
    channel = build_channel(
        "twilio_voice",
        settings(fake, timeout=30, machine_detection="DetectMessageEnd"),
        http,
    )

    await channel.send(call(status_callback_url=CALLBACK))

    names = {name for name, _ in fake.last.pairs}
    assert names <= set(call_params())
    assert names == {
        "To",
        "From",
        "Twiml",
        "StatusCallback",
        "StatusCallbackEvent",
        "Timeout",
        "MachineDetection",
    }
    assert fake.last.status == 201


async def test_no_status_callback_when_disabled(fake: FakeTwilioVoice, http: HttpClient) -> None:
    channel = build_channel("twilio_voice", settings(fake, send_status_callback=False), http)
    await channel.send(call(status_callback_url=CALLBACK))
    assert "StatusCallback" not in dict(fake.last.pairs)


async def test_unverified_caller_id_is_permanent(fake: FakeTwilioVoice, http: HttpClient) -> None:
    channel = build_channel("twilio_voice", settings(fake, from_number="+15005550006"), http)
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(call())
    assert caught.value.code == "21210"


async def test_empty_text_and_bad_number_fail_before_any_request(
    fake: FakeTwilioVoice, http: HttpClient
) -> None:
    channel = build_channel("twilio_voice", settings(fake), http)
    with pytest.raises(PermanentSendError, match="empty"):
        await channel.send(call(" \x00 "))
    with pytest.raises(PermanentSendError, match=r"E\.164"):
        await channel.send(OutboundMessage(message_id=1, idempotency_key="k", to="555", text="x"))
    assert fake.requests == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"from_number": "5017122661"}, "from_number"),
        ({"default_language": "English"}, "default_language"),
        ({"loop": 0}, "loop"),
        ({"timeout": 1000}, "timeout"),
        ({"machine_detection": "Always"}, "machine_detection"),
        ({"messaging_service_sid": "MG" + "0" * 32}, "messaging_service_sid"),
    ],
)
def test_bad_settings_are_config_errors(changes: dict[str, Any], field: str) -> None:
    base = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "t",
        "from_number": "+15017122661",
    }
    with pytest.raises(ConfigError) as caught:
        build_channel("twilio_voice", {**base, **changes}, HttpClient())
    assert caught.value.field == field


def test_parse_twiml_refuses_other_documents() -> None:
    assert parse_twiml("<Response/>") is not None
    assert parse_twiml("<Say>hi</Say>") is None
    assert parse_twiml("<Response>") is None


def test_fake_serves_calls_from_a_thread() -> None:
    import asyncio

    with FakeTwilioVoice() as fake:

        async def go() -> None:
            async with HttpClient() as http:
                await build_channel("twilio_voice", settings(fake), http).send(call())

        asyncio.run(go())
        assert fake.last.status == 201


async def test_fake_serves_calls_as_a_process(http: HttpClient) -> None:
    with FakeProcess("twilio_voice", auth_token="process-token") as proc:
        account = "AC" + "0123456789abcdef" * 2
        channel = build_channel(
            "twilio_voice",
            {
                "account_sid": account,
                "auth_token": "process-token",
                "from_number": "+15017122661",
                "base_url": proc.base_url,
            },
            http,
        )
        result = await channel.send(call())
        (recorded,) = proc.requests()
    assert recorded["path"].endswith("/Calls.json") and recorded["status"] == 201
    assert result.provider_message_id and result.provider_message_id.startswith("CA")
