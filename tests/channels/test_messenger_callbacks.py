"""Messenger webhooks: the Meta handshake and signature, messages and deliveries.

Meta publishes no signature test vector. ``DELIVERY_SIG`` was computed independently
(Python's hmac, secret ``meta-app-secret``, the exact bytes of ``DELIVERY``), the same
scheme as the WhatsApp vector in ``self_computed_vectors.json``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest

from orderbell.channels import meta_webhooks
from orderbell.channels.base import CallbackChannel, CallbackRequest
from orderbell.channels.http import HttpClient
from orderbell.channels.messenger import MessengerChannel, MessengerConfig
from orderbell.errors import PayloadError, SignatureError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "meta-app-secret"
VERIFY = "orderbell-verify-me"
PAGE = "1234567890"
PSID = "24681357902468"
URL = "https://orderbell.example/v1/callbacks/messenger/8"
DELIVERY = (
    b'{"object":"page","entry":[{"id":"1234567890","time":1714756951000,"messaging":[{"sender":'
    b'{"id":"24681357902468"},"recipient":{"id":"1234567890"},"timestamp":1714756951000,'
    b'"delivery":{"mids":["m_abc","m_def"],"watermark":1714756950000}}]}]}'
)
DELIVERY_SIG = "sha256=e1afb36422566e78bef1d9b5540c4084215084d8210bc84b86f560708c63057c"


def channel(**settings: Any) -> MessengerChannel:
    config = MessengerConfig(
        page_access_token="EAAG-page-token",
        page_id=PAGE,
        **{"app_secret": SECRET, "verify_token": VERIFY, **settings},
    )
    return MessengerChannel(config, cast(HttpClient, None))


def body(*events: dict[str, Any], page: str = PAGE, obj: str = "page") -> bytes:
    entry = {"id": page, "time": 1714756951000, "messaging": list(events)}
    return orjson.dumps({"object": obj, "entry": [entry]})


def event(**kind: Any) -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1714756951000, **kind}


def post(raw: bytes, sig: str | None = "sign") -> CallbackRequest:
    headers = {"content-type": "application/json"}
    if sig == "sign":
        sig = meta_webhooks.signature(SECRET, raw)
    if sig is not None:
        headers[meta_webhooks.SIGNATURE] = sig
    return CallbackRequest("POST", URL, raw, headers, {}, NOW)


def test_is_a_callback_channel() -> None:
    assert isinstance(channel(), CallbackChannel)
    assert {"app_secret", "verify_token"} <= set(MessengerChannel.secret_fields)


def test_signature_vector() -> None:
    assert meta_webhooks.signature(SECRET, DELIVERY) == DELIVERY_SIG
    channel().verify_callback(post(DELIVERY, DELIVERY_SIG))


@pytest.mark.parametrize(
    "sig", [None, "", "sha256=" + "0" * 64, meta_webhooks.signature("nope", DELIVERY)]
)
def test_forged_or_missing_signature_is_refused(sig: str | None) -> None:
    with pytest.raises(SignatureError):
        channel().verify_callback(post(DELIVERY, sig))


def test_without_app_secret_nothing_is_accepted() -> None:
    with pytest.raises(SignatureError):
        channel(app_secret=None).verify_callback(post(DELIVERY, DELIVERY_SIG))


def test_handshake() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
    request = CallbackRequest("GET", URL, b"", {}, query, NOW)
    channel().verify_callback(request)
    reply = channel().parse_callback(request).reply
    assert reply is not None and (reply.status, reply.body) == (200, b"42")
    wrong = CallbackRequest("GET", URL, b"", {}, {**query, "hub.verify_token": "x"}, NOW)
    with pytest.raises(SignatureError):
        channel().verify_callback(wrong)


def test_delivery_mids_become_delivered_reports() -> None:
    reports = channel().parse_callback(post(DELIVERY, DELIVERY_SIG)).reports
    assert [(r.provider_message_id, r.status) for r in reports] == [
        ("m_abc", "delivered"),
        ("m_def", "delivered"),
    ]
    assert reports[0].occurred_at == datetime.fromtimestamp(1714756951, tz=UTC)


def test_delivery_without_mids_reports_nothing() -> None:
    raw = body(event(delivery={"watermark": 1714756950000}))
    assert channel().parse_callback(post(raw)).reports == ()


def test_inbound_text_becomes_an_inbound_message() -> None:
    raw = body(event(message={"mid": "m_in", "text": "where is my order?"}))
    (msg,) = channel().parse_callback(post(raw)).inbound
    assert (msg.provider_message_id, msg.sender, msg.recipient, msg.text) == (
        "m_in",
        PSID,
        PAGE,
        "where is my order?",
    )


def test_echoes_attachments_and_reads_are_skipped() -> None:
    raw = body(
        event(message={"mid": "m_echo", "text": "Your order is ready", "is_echo": True}),
        event(message={"mid": "m_img", "attachments": [{"type": "image"}]}),
        event(read={"watermark": 1714756950000}),
    )
    parsed = channel().parse_callback(post(raw))
    assert parsed.inbound == () and parsed.reports == ()


def test_quick_reply_without_text_uses_its_payload() -> None:
    raw = body(event(message={"mid": "m_q", "quick_reply": {"payload": "STOP"}}))
    (msg,) = channel().parse_callback(post(raw)).inbound
    assert msg.text == "STOP"


def test_entries_for_another_page_are_skipped() -> None:
    raw = body(event(message={"mid": "m_in", "text": "hi"}), page="999")
    assert channel().parse_callback(post(raw)).inbound == ()


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'"page"',
        body(event(message={"mid": "m"}), obj="whatsapp_business_account"),
        b'{"object":"page"}',
        body(event(message={"text": "no mid"})),
        body({"recipient": {"id": PAGE}, "message": {"mid": "m", "text": "no sender"}}),
    ],
)
def test_malformed_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        channel().parse_callback(post(raw))
