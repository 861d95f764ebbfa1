"""WhatsApp Cloud API webhooks: the handshake, X-Hub-Signature-256, statuses and messages.

Meta publishes no signature test vector; ``wa_status_sig`` in the shared reference
(``self_computed_vectors.json``) is HMAC-SHA256 with the test secret ``meta-app-secret``
over the compact bytes of ``payloads/whatsapp_status_delivered.json``, embedded here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest

from orderbell.channels import meta_webhooks
from orderbell.channels.base import CallbackChannel, CallbackRequest
from orderbell.channels.http import HttpClient
from orderbell.channels.whatsapp import WhatsAppChannel, WhatsAppConfig
from orderbell.errors import PayloadError, SignatureError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "meta-app-secret"
VERIFY = "orderbell-verify-me"
URL = "https://orderbell.example/v1/callbacks/whatsapp/7"
WAMID = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"
# payloads/whatsapp_status_delivered.json, exact bytes (compact, no trailing newline)
DELIVERED = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":'
    b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881",'
    b'"phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1'
    b'RjQyNUE3NEYxMzAzMzQ5MkEA","status":"delivered","timestamp":"1714756951","recipient_id":'
    b'"16505551234","conversation":{"id":"6ceb9d929c5c0f3b8b1e7c2a","origin":{"type":"utility"}},'
    b'"pricing":{"billable":true,"pricing_model":"CBP","category":"utility"}}]},"field":"messages"}]}]}'
)
DELIVERED_SIG = "sha256=bcc1e43ef6fa22b29e880ed142f34cdbcfe1fc33b08ed4563f22ddbfaddfa236"


def _value(**extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        **extra,
    }


def _envelope(value: dict[str, Any]) -> bytes:
    change = {"value": value, "field": "messages"}
    entry = {"id": "102290129340398", "changes": [change]}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


def _failed(code: int) -> bytes:  # the shape of payloads/whatsapp_status_failed.json
    status = {
        "id": WAMID,
        "status": "failed",
        "timestamp": "1714756951",
        "recipient_id": "16505551234",
        "errors": [
            {
                "code": code,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours"},
            }
        ],
    }
    return _envelope(_value(statuses=[status]))


# payloads/whatsapp_inbound_text_stop.json
INBOUND_STOP = _envelope(
    _value(
        contacts=[{"profile": {"name": "Ana Diaz"}, "wa_id": "16505551234"}],
        messages=[
            {
                "from": "16505551234",
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": "1714756999",
                "text": {"body": "STOP"},
                "type": "text",
            }
        ],
    )
)


def channel(**settings: Any) -> WhatsAppChannel:
    config = WhatsAppConfig(
        access_token="EAAG-token",
        phone_number_id="106540352242922",
        **{"app_secret": SECRET, "verify_token": VERIFY, **settings},
    )
    return WhatsAppChannel(config, cast(HttpClient, None))


def post(body: bytes, sig: str | None = "sign") -> CallbackRequest:
    headers = {"content-type": "application/json"}
    if sig == "sign":
        sig = meta_webhooks.signature(SECRET, body)
    if sig is not None:
        headers[meta_webhooks.SIGNATURE] = sig
    return CallbackRequest("POST", URL, body, headers, {}, NOW)


def get(**query: str) -> CallbackRequest:
    return CallbackRequest("GET", URL, b"", {}, query, NOW)


def test_is_a_callback_channel_and_secrets_are_masked() -> None:
    assert isinstance(channel(), CallbackChannel)
    assert {"app_secret", "verify_token"} <= set(WhatsAppChannel.secret_fields)


def test_self_computed_vector() -> None:
    assert meta_webhooks.signature(SECRET, DELIVERED) == DELIVERED_SIG
    channel().verify_callback(post(DELIVERED, DELIVERED_SIG))


@pytest.mark.parametrize(
    "sig",
    [
        None,
        "",
        DELIVERED_SIG.removeprefix("sha256="),
        "sha1=" + DELIVERED_SIG.removeprefix("sha256="),
        DELIVERED_SIG[:-1] + "7",
        meta_webhooks.signature("another-secret", DELIVERED),
    ],
)
def test_forged_or_missing_signature_is_refused(sig: str | None) -> None:
    with pytest.raises(SignatureError):
        channel().verify_callback(post(DELIVERED, sig))


def test_a_changed_body_is_refused() -> None:
    with pytest.raises(SignatureError):
        channel().verify_callback(post(DELIVERED.replace(b"delivered", b"read"), DELIVERED_SIG))


def test_without_app_secret_nothing_is_accepted() -> None:
    with pytest.raises(SignatureError, match="app_secret"):
        channel(app_secret=None).verify_callback(post(DELIVERED, DELIVERED_SIG))


def test_handshake_answers_the_challenge() -> None:
    ch = channel()
    request = get(
        **{"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    )
    ch.verify_callback(request)
    reply = ch.parse_callback(request).reply
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, b"1158201444", "text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_with_a_wrong_token_is_refused(query: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        channel().verify_callback(get(**query))


def test_handshake_without_configured_token_is_refused() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"}
    with pytest.raises(SignatureError, match="verify_token"):
        channel(verify_token=None).verify_callback(get(**query))


def test_handshake_without_challenge_is_malformed() -> None:
    with pytest.raises(PayloadError):
        channel().parse_callback(get(**{"hub.mode": "subscribe", "hub.verify_token": VERIFY}))


def test_delivered_status_becomes_a_report() -> None:
    parsed = channel().parse_callback(post(DELIVERED, DELIVERED_SIG))
    (report,) = parsed.reports
    assert (report.provider_message_id, report.status, report.raw_status) == (
        WAMID,
        "delivered",
        "delivered",
    )
    assert report.occurred_at == datetime.fromtimestamp(1714756951, tz=UTC)
    assert report.event_id == f"{WAMID}:delivered"
    assert not report.contact_unusable and not parsed.inbound
    assert parsed.reply is not None and parsed.reply.status == 200


@pytest.mark.parametrize("status", ["sent", "delivered", "read", "failed"])
def test_each_status_maps_to_ours(status: str) -> None:
    body = _envelope(_value(statuses=[{"id": WAMID, "status": status, "timestamp": "1"}]))
    (report,) = channel().parse_callback(post(body)).reports
    assert report.status == status


def test_other_statuses_are_not_reported() -> None:
    body = _envelope(_value(statuses=[{"id": WAMID, "status": "deleted", "timestamp": "1"}]))
    assert channel().parse_callback(post(body)).reports == ()


def test_failed_status_carries_the_error_code() -> None:
    (report,) = channel().parse_callback(post(_failed(131047))).reports
    assert (report.status, report.error_code) == ("failed", "131047")
    assert report.error and "Re-engagement" in report.error
    assert not report.contact_unusable


def test_undeliverable_marks_the_contact_unusable() -> None:
    (report,) = channel().parse_callback(post(_failed(131026))).reports
    assert (report.status, report.error_code, report.contact_unusable) == ("failed", "131026", True)


def test_inbound_text_becomes_an_inbound_message() -> None:
    parsed = channel().parse_callback(post(INBOUND_STOP))
    (msg,) = parsed.inbound
    assert (msg.sender, msg.text, msg.recipient) == ("16505551234", "STOP", "15550783881")
    assert msg.provider_message_id.startswith("wamid.")
    assert msg.received_at == datetime.fromtimestamp(1714756999, tz=UTC)
    assert parsed.reports == ()


def test_button_and_interactive_replies_carry_their_text_media_is_skipped() -> None:
    messages = [
        {
            "from": "1",
            "id": "wamid.a",
            "timestamp": "1",
            "type": "button",
            "button": {"text": "Yes"},
        },
        {
            "from": "1",
            "id": "wamid.b",
            "timestamp": "1",
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "x", "title": "Where?"}},
        },
        {"from": "1", "id": "wamid.c", "timestamp": "1", "type": "image", "image": {"id": "m"}},
    ]
    parsed = channel().parse_callback(post(_envelope(_value(messages=messages))))
    assert [m.text for m in parsed.inbound] == ["Yes", "Where?"]


def test_changes_for_another_phone_number_are_skipped() -> None:
    value = _value(statuses=[{"id": WAMID, "status": "read", "timestamp": "1"}])
    value["metadata"]["phone_number_id"] = "999"
    assert channel().parse_callback(post(_envelope(value))).reports == ()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"object":"page","entry":[]}',
        b'{"object":"whatsapp_business_account"}',
        _envelope(_value(statuses=[{"status": "read"}])),
        _envelope(_value(messages=[{"type": "text", "text": {"body": "hi"}}])),
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(PayloadError):
        channel().parse_callback(post(body))
