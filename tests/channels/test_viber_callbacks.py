"""Viber bot webhooks: X-Viber-Content-Signature and the event mapping.

Vector: viber-bot-python's signature test (token and body as in the shared reference,
``payloads/viber_webhook_vector.json``, exact bytes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest

from orderbell.channels import viber_webhooks
from orderbell.channels.base import CallbackChannel, CallbackRequest
from orderbell.channels.http import HttpClient
from orderbell.channels.viber import ViberChannel, ViberConfig
from orderbell.errors import PayloadError, SignatureError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKEN = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3"
VECTOR = b'{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}'
VECTOR_SIG = "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef"
URL = "https://orderbell.example/v1/callbacks/viber/3"


def channel() -> ViberChannel:
    return ViberChannel(ViberConfig(auth_token=TOKEN, sender_name="Bistro"), cast(HttpClient, None))


def post(body: bytes | dict[str, Any], sig: str | None = "sign") -> CallbackRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"content-type": "application/json"}
    if sig == "sign":
        sig = viber_webhooks.signature(TOKEN, raw)
    if sig is not None:
        headers[viber_webhooks.SIGNATURE] = sig
    return CallbackRequest("POST", URL, raw, headers, {}, NOW)


def test_is_a_callback_channel() -> None:
    assert isinstance(channel(), CallbackChannel)


def test_official_vector() -> None:
    assert viber_webhooks.signature(TOKEN, VECTOR) == VECTOR_SIG
    channel().verify_callback(post(VECTOR, VECTOR_SIG))
    parsed = channel().parse_callback(post(VECTOR, VECTOR_SIG))
    assert parsed.reports == () and parsed.inbound == ()
    assert parsed.reply is not None and parsed.reply.status == 200


@pytest.mark.parametrize("sig", [None, "", "0" * 64, VECTOR_SIG[:-1] + "0"])
def test_forged_or_missing_signature_is_refused(sig: str | None) -> None:
    with pytest.raises(SignatureError):
        channel().verify_callback(post(VECTOR, sig))


def test_a_changed_body_is_refused() -> None:
    with pytest.raises(SignatureError):
        channel().verify_callback(post(VECTOR.replace(b"webhook", b"seen"), VECTOR_SIG))


@pytest.mark.parametrize(
    "event, ours", [("delivered", "delivered"), ("seen", "read"), ("failed", "failed")]
)
def test_receipts_become_reports(event: str, ours: str) -> None:
    body = {
        "event": event,
        "timestamp": 1457764197627,
        "message_token": 4912661846655238145,
        "user_id": "01234567890A=",
    }
    if event == "failed":
        body["desc"] = "failure description"
    (report,) = channel().parse_callback(post(body)).reports
    assert (report.provider_message_id, report.status, report.raw_status) == (
        "4912661846655238145",
        ours,
        event,
    )
    assert report.occurred_at == datetime.fromtimestamp(1457764197.627, tz=UTC)
    assert report.error == ("failure description" if event == "failed" else None)


def test_message_becomes_an_inbound_message() -> None:
    body = {
        "event": "message",
        "timestamp": 1457764197627,
        "message_token": 4912661846655238145,
        "sender": {"id": "01234567890A=", "name": "Ana"},
        "message": {"type": "text", "text": "where is my order?", "tracking_data": "x"},
    }
    (msg,) = channel().parse_callback(post(body)).inbound
    assert (msg.provider_message_id, msg.sender, msg.text) == (
        "4912661846655238145",
        "01234567890A=",
        "where is my order?",
    )


def test_a_sticker_is_acknowledged_and_ignored() -> None:
    body = {
        "event": "message",
        "message_token": 1,
        "sender": {"id": "u"},
        "message": {"type": "sticker"},
    }
    parsed = channel().parse_callback(post(body))
    assert parsed.inbound == () and parsed.reports == ()


def test_unsubscribed_is_a_stop_from_the_user() -> None:
    body = {
        "event": "unsubscribed",
        "timestamp": 1457764197627,
        "user_id": "01234567890A=",
        "message_token": 7,
    }
    parsed = channel().parse_callback(post(body))
    (stop,) = parsed.inbound
    assert (stop.sender, stop.provider_keyword, stop.text) == ("01234567890A=", "STOP", "")
    assert parsed.reports == ()


@pytest.mark.parametrize(
    "event", ["subscribed", "conversation_started", "webhook", "client_status"]
)
def test_other_events_are_acknowledged(event: str) -> None:
    parsed = channel().parse_callback(post({"event": event, "timestamp": 1, "user": {"id": "u"}}))
    assert parsed.reports == () and parsed.inbound == ()


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        {"timestamp": 1},
        {"event": "delivered", "timestamp": 1},
        {"event": "message", "message_token": 1, "message": {"text": "hi"}},
        {"event": "unsubscribed", "timestamp": 1},
    ],
)
def test_malformed_callbacks_are_refused(body: bytes | dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        channel().parse_callback(post(body))
