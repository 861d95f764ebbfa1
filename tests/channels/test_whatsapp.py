"""WhatsApp Cloud API specifics beyond the shared contract suite: text vs templates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orderbell.channels.base import OutboundMessage
from orderbell.channels.http import HttpClient
from orderbell.channels.registry import build_channel
from orderbell.channels.whatsapp import WhatsAppConfig
from orderbell.errors import ConfigError, PermanentSendError, TransientSendError
from tests.fakes.process import FakeProcess
from tests.fakes.whatsapp import FakeWhatsApp, graph_error_body


@pytest.fixture
async def fake() -> AsyncIterator[FakeWhatsApp]:
    async with FakeWhatsApp() as server:
        yield server


def channel(fake: FakeWhatsApp, http: HttpClient, **changes: Any) -> Any:
    settings = {
        "access_token": fake.access_token,
        "phone_number_id": fake.phone_number_id,
        "base_url": fake.base_url,
        **changes,
    }
    return build_channel("whatsapp", settings, http)


def msg(text: str = "Order #123 is ready", **metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=1, idempotency_key="k", to="+15558675310", text=text, metadata=metadata
    )


async def test_approved_template_from_metadata(fake: FakeWhatsApp, http: HttpClient) -> None:
    result = await channel(fake, http).send(
        msg(whatsapp_template="order_out_for_delivery", template_params='["#123", "12:30"]')
    )
    body = fake.last.fields
    assert body["type"] == "template"
    assert "text" not in body
    assert body["template"] == {
        "name": "order_out_for_delivery",
        "language": {"policy": "deterministic", "code": "en"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "#123"}, {"type": "text", "text": "12:30"}],
            }
        ],
    }
    assert result.provider_message_id in fake.sent


async def test_closed_window_uses_the_template_configured_for_the_trigger(
    fake: FakeWhatsApp, http: HttpClient
) -> None:
    wa = channel(fake, http, templates={"ready": "order_ready"}, template_language="en_US")
    await wa.send(msg(conversation_window="closed", trigger="ready", template_params='["#123"]'))
    assert fake.last.fields["template"]["name"] == "order_ready"
    assert fake.last.fields["template"]["language"]["code"] == "en_US"


async def test_closed_window_without_a_template_is_refused_with_the_reengagement_code(
    fake: FakeWhatsApp, http: HttpClient
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg(conversation_window="closed", trigger="delayed"))
    assert caught.value.code == "131047"
    assert fake.requests == []


async def test_free_text_outside_the_window_gets_131047_from_meta(
    fake: FakeWhatsApp, http: HttpClient
) -> None:
    fake.closed_windows.add("15558675310")
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "131047"
    assert caught.value.http_status == 400
    # the template form still goes through: the engine's fallback
    await channel(fake, http).send(msg(whatsapp_template="order_ready", template_params='["#1"]'))
    assert fake.last.status == 200


async def test_undeliverable_is_permanent(fake: FakeWhatsApp, http: HttpClient) -> None:
    fake.undeliverable.add("15558675310")
    with pytest.raises(PermanentSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == "131026"
    assert "+15558675310" not in str(caught.value)


@pytest.mark.parametrize("code", [130429, 131056, 4, 80007, 131000])
async def test_throttling_codes_are_transient_even_as_http_400(
    fake: FakeWhatsApp, http: HttpClient, code: int
) -> None:
    fake.fail_next(1, 400, body=graph_error_body(code, f"(#{code}) Rate limit hit"))
    with pytest.raises(TransientSendError) as caught:
        await channel(fake, http).send(msg())
    assert caught.value.code == str(code)
    assert caught.value.http_status == 400


async def test_is_transient_flag_is_honoured(fake: FakeWhatsApp, http: HttpClient) -> None:
    body = graph_error_body(131999, "(#131999) Try later")
    body["error"]["is_transient"] = True
    fake.fail_next(1, 400, body=body)
    with pytest.raises(TransientSendError):
        await channel(fake, http).send(msg())


async def test_template_parameters_are_cleaned_as_whatsapp_requires(
    fake: FakeWhatsApp, http: HttpClient
) -> None:
    await channel(fake, http).send(
        msg(whatsapp_template="order_ready", template_params='["#123\\n\\tat  the      door"]')
    )
    params = fake.last.fields["template"]["components"][0]["parameters"]
    assert params == [{"type": "text", "text": "#123 at  the    door"}]
    assert fake.last.status == 200


@pytest.mark.parametrize("params", ["not json", '{"a": 1}', '[["nested"]]', '[""]', "[null]"])
async def test_bad_template_params_are_refused_locally(
    fake: FakeWhatsApp, http: HttpClient, params: str
) -> None:
    with pytest.raises(PermanentSendError):
        await channel(fake, http).send(msg(whatsapp_template="order_ready", template_params=params))
    assert fake.requests == []


async def test_template_language_follows_the_locale(fake: FakeWhatsApp, http: HttpClient) -> None:
    message = OutboundMessage(
        message_id=2,
        idempotency_key="k",
        to="+15558675310",
        text="x",
        locale="de",
        metadata={"whatsapp_template": "order_ready", "template_params": '["#5"]'},
    )
    await channel(fake, http).send(message)
    assert fake.last.fields["template"]["language"]["code"] == "de"


async def test_recipient_must_be_a_phone_number(fake: FakeWhatsApp, http: HttpClient) -> None:
    bad = OutboundMessage(message_id=3, idempotency_key="k", to="guest@example.com", text="x")
    with pytest.raises(PermanentSendError, match="WhatsApp phone number"):
        await channel(fake, http).send(bad)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone_number_id": "+1555"}, "phone_number_id"),
        ({"api_version": "23"}, "api_version"),
        ({"templates": {"ready": "Order Ready!"}}, "templates"),
        ({"base_url": "graph.facebook.com"}, "base_url"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    raw = {"access_token": "EAA", "phone_number_id": "123", **change}
    with pytest.raises(ConfigError) as caught:
        build_channel("whatsapp", raw, HttpClient())
    assert caught.value.field == field


def test_token_is_secret() -> None:
    config = WhatsAppConfig(access_token="EAA-very-secret", phone_number_id="1")
    assert "very-secret" not in repr(config)


async def test_fake_serves_as_a_process(http: HttpClient) -> None:
    with FakeProcess("whatsapp", access_token="EAA-proc", phone_number_id="42") as proc:
        settings = {"access_token": "EAA-proc", "phone_number_id": "42", "base_url": proc.base_url}
        result = await build_channel("whatsapp", settings, http).send(msg())
        seen = proc.requests()
    assert result.provider_message_id.startswith("wamid.")
    assert seen[0]["path"] == "/v23.0/42/messages"
