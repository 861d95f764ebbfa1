"""MessageBird / Bird callbacks: both signatures and both APIs' reports and inbound texts.

Vectors:
* ``MessageBird-Signature-JWT``: the official SDK test data (messagebird-nodejs
  ``lib/testdata/webhook-signature-jwt-reference.json``), in
  ``vectors/messagebird_signature_jwt.json``.
* Bird's ``messagebird-signature``: Bird publishes no vector; the expected value below is
  computed independently here from the algorithm in docs.bird.com ("Verifying a webhook
  subscription": base64 HMAC-SHA256 over timestamp, URL and the binary SHA-256 of the body,
  joined by newlines), not with the module under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from orderbell.channels import messagebird_webhooks as mbw
from orderbell.channels.base import CallbackChannel, CallbackRequest
from orderbell.channels.http import HttpClient
from orderbell.channels.messagebird import MessageBirdChannel, MessageBirdConfig
from orderbell.errors import PayloadError, SignatureError

VECTORS = json.loads((Path(__file__).parent / "vectors/messagebird_signature_jwt.json").read_text())
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = "bird-signing-key-for-the-messagebird-tests"
URL = "https://orderbell.example/v1/callbacks/messagebird/7"
WORKSPACE = "7c3a1e2b-9a4d-4a41-8c7a-3f5c2d1e0b9a"
BIRD_CHANNEL = "614208aa-b153-4d5d-9989-2fddfc0ce4c3"
LEGACY_CHANNEL = "619747f69cf940a98fb443140ce9aed2"


def bird_channel(**settings: Any) -> MessageBirdChannel:
    settings.setdefault("signing_key", KEY)
    config = MessageBirdConfig(
        api="bird",
        access_key="ak",
        workspace_id=WORKSPACE,
        channel_id=BIRD_CHANNEL,
        **settings,
    )
    return MessageBirdChannel(config, cast(HttpClient, None))


def legacy_channel(**settings: Any) -> MessageBirdChannel:
    settings.setdefault("signing_key", KEY)
    config = MessageBirdConfig(access_key="ak", channel_id=LEGACY_CHANNEL, **settings)
    return MessageBirdChannel(config, cast(HttpClient, None))


def independent_bird_signature(key: str, stamp: str, url: str, body: bytes) -> str:
    joined = stamp.encode() + b"\n" + url.encode() + b"\n" + hashlib.sha256(body).digest()
    return base64.b64encode(hmac.new(key.encode(), joined, hashlib.sha256).digest()).decode()


def bird_request(
    body: bytes,
    *,
    key: str = KEY,
    url: str = URL,
    signed_at: datetime = NOW,
    now: datetime = NOW,
    sign_body: bytes | None = None,
) -> CallbackRequest:
    stamp = str(int(signed_at.timestamp()))
    sig = independent_bird_signature(key, stamp, url, body if sign_body is None else sign_body)
    headers = {
        "content-type": "application/json",
        mbw.BIRD_SIGNATURE: sig,
        mbw.BIRD_TIMESTAMP: stamp,
    }
    return CallbackRequest("POST", url, body, headers, {}, now)


def bird_event(event: str, message: dict[str, Any]) -> bytes:
    return json.dumps({"service": "channels", "event": event, "payload": message}).encode()


INBOUND = {
    # docs.bird.com, Programmable SMS, "Receiving messages": a text message.
    "id": "96a0b5fa-a986-453d-be5c-3117f989f025",
    "channelId": BIRD_CHANNEL,
    "sender": {
        "contact": {
            "id": "32cf5eee-f940-422c-ab8c-5f753aad5efd",
            "identifierKey": "phonenumber",
            "identifierValue": "+31612345678",
        }
    },
    "receiver": {"connector": {"id": "86cc4dc0-3dc0-41b7-ac43-8ec829ead56f"}},
    "body": {"type": "text", "text": {"text": "STOP"}},
    "parts": [{"platformReference": "e8077d803532c0b5937c639b60216938"}],
    "status": "delivered",
    "direction": "incoming",
    "lastStatusAt": "2022-12-22T08:32:50.736Z",
    "createdAt": "2022-12-22T08:32:50.736Z",
    "updatedAt": "2022-12-22T08:32:50.736Z",
}


def outgoing(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "channelId": BIRD_CHANNEL,
        "receiver": {
            "contacts": [{"identifierKey": "phonenumber", "identifierValue": "+31612345678"}]
        },
        "body": {"type": "text", "text": {"text": "Order 4242 is ready"}},
        "reference": "1234",
        "status": status,
        "direction": "outgoing",
        "lastStatusAt": "2026-11-28T11:59:58.000Z",
        "createdAt": "2026-11-28T11:59:50.000Z",
        **extra,
    }


def test_the_channel_takes_callbacks() -> None:
    assert isinstance(bird_channel(), CallbackChannel)
    assert isinstance(legacy_channel(), CallbackChannel)


# -- MessageBird-Signature-JWT: the official vectors -------------------------------------


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_official_jwt_vectors(vector: dict[str, Any]) -> None:
    now = datetime.fromisoformat(vector["timestamp"])
    body = vector.get("payload", "").encode()
    request = CallbackRequest(
        "POST",
        vector["url"],
        body,
        {mbw.JWT_SIGNATURE: vector["token"]},
        {},
        now,
    )
    if vector["valid"]:
        mbw.verify_jwt(vector["secret"], request)
    else:
        with pytest.raises(SignatureError):
            mbw.verify_jwt(vector["secret"], request)


def test_jwt_made_by_the_helper_verifies_and_is_bound_to_url_body_and_time() -> None:
    body = b'{"type":"message.created"}'
    token = mbw.jwt_signature(KEY, URL, body, issued=NOW, jti="j-1")
    ok = CallbackRequest("POST", URL, body, {mbw.JWT_SIGNATURE: token}, {}, NOW)
    legacy_channel().verify_callback(ok)
    for bad in (
        CallbackRequest("POST", URL + "?x=1", body, ok.headers, {}, NOW),
        CallbackRequest("POST", URL, body + b" ", ok.headers, {}, NOW),
        CallbackRequest("POST", URL, body, ok.headers, {}, NOW + timedelta(minutes=5)),
        CallbackRequest("POST", URL, body, {}, {}, NOW),
    ):
        with pytest.raises(SignatureError):
            legacy_channel().verify_callback(bad)
    with pytest.raises(SignatureError):
        legacy_channel(signing_key="another-signing-key-of-the-same-length!!!").verify_callback(ok)


def test_a_jwt_with_another_issuer_or_alg_none_is_refused() -> None:
    import jwt

    claims = {
        "iss": "Someone",
        "nbf": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 60,
        "jti": "x",
        "url_hash": hashlib.sha256(URL.encode()).hexdigest(),
    }
    for token in (
        jwt.encode(claims, KEY, algorithm="HS256"),
        jwt.encode({**claims, "iss": "MessageBird"}, None, algorithm="none"),
    ):
        request = CallbackRequest("POST", URL, b"", {mbw.JWT_SIGNATURE: token}, {}, NOW)
        with pytest.raises(SignatureError):
            mbw.verify_jwt(KEY, request)


# -- Bird's messagebird-signature --------------------------------------------------------


def test_bird_signature_matches_the_documented_algorithm() -> None:
    body = bird_event("sms.inbound", INBOUND)
    stamp = "1719823259"
    assert mbw.bird_signature(KEY, stamp, URL, body) == independent_bird_signature(
        KEY, stamp, URL, body
    )
    bird_channel().verify_callback(bird_request(body))


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"key": "wrong-key"},
        {"url": URL.replace("/7", "/8")},
        {"sign_body": b"{}"},
        {"signed_at": NOW - timedelta(minutes=6)},
        {"signed_at": NOW + timedelta(minutes=6)},
    ],
    ids=["wrong key", "other URL", "body changed", "stale", "future"],
)
def test_bird_signature_refusals(request_kwargs: dict[str, Any]) -> None:
    request = bird_request(bird_event("sms.inbound", INBOUND), **request_kwargs)
    # a request signed for another URL is checked against ours
    if "url" in request_kwargs:
        request = CallbackRequest(
            request.method, URL, request.body, request.headers, {}, request.now
        )
    with pytest.raises(SignatureError):
        bird_channel().verify_callback(request)


def test_bird_tolerance_is_configurable_and_headers_are_required() -> None:
    body = bird_event("sms.inbound", INBOUND)
    late = bird_request(body, signed_at=NOW - timedelta(minutes=20))
    bird_channel(signature_tolerance_seconds=1800).verify_callback(late)
    unsigned = CallbackRequest("POST", URL, body, {}, {}, NOW)
    with pytest.raises(SignatureError, match="messagebird-signature"):
        bird_channel().verify_callback(unsigned)
    garbled = CallbackRequest(
        "POST", URL, body, {mbw.BIRD_SIGNATURE: "x", mbw.BIRD_TIMESTAMP: "soon"}, {}, NOW
    )
    with pytest.raises(SignatureError, match="Unix time"):
        bird_channel().verify_callback(garbled)


def test_without_a_signing_key_every_callback_is_refused() -> None:
    request = bird_request(bird_event("sms.inbound", INBOUND))
    with pytest.raises(SignatureError, match="signing_key"):
        bird_channel(signing_key=None).verify_callback(request)


# -- parsing: Bird -----------------------------------------------------------------------


def test_bird_inbound_text_is_an_inbound_message() -> None:
    parsed = bird_channel().parse_callback(bird_request(bird_event("sms.inbound", INBOUND)))
    (msg,) = parsed.inbound
    assert (msg.provider_message_id, msg.sender, msg.text) == (
        INBOUND["id"],
        "+31612345678",
        "STOP",
    )
    assert msg.received_at == datetime(2022, 12, 22, 8, 32, 50, 736000, tzinfo=UTC)
    assert parsed.reports == () and parsed.reply is not None and parsed.reply.status == 200


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sending_failed", "failed"),
        ("delivery_failed", "undelivered"),
    ],
)
def test_bird_outbound_statuses_become_reports(raw: str, status: str) -> None:
    body = bird_event("sms.outbound", outgoing(raw, reason="carrier rejected"))
    (report,) = bird_channel().parse_callback(bird_request(body)).reports
    assert report.provider_message_id == "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert (report.status, report.raw_status, report.message_id) == (status, raw, 1234)
    assert report.event_id == f"3fa85f64-5717-4562-b3fc-2c963f66afa6:{raw}"
    assert report.error == "carrier rejected"


@pytest.mark.parametrize("raw", ["accepted", "processing", "scheduled"])
def test_bird_interim_statuses_are_acknowledged_not_reported(raw: str) -> None:
    parsed = bird_channel().parse_callback(bird_request(bird_event("sms.outbound", outgoing(raw))))
    assert parsed.reports == () and parsed.inbound == ()
    assert parsed.reply is not None and parsed.reply.status == 200


def test_bird_media_without_text_is_acknowledged() -> None:
    media = {**INBOUND, "body": {"type": "image", "image": {"images": [{"mediaUrl": "x"}]}}}
    parsed = bird_channel().parse_callback(bird_request(bird_event("sms.inbound", media)))
    assert parsed.inbound == ()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"service": "channels", "event": "sms.inbound"}).encode(),
        bird_event("sms.inbound", {**INBOUND, "id": ""}),
        bird_event("sms.inbound", {**INBOUND, "sender": {}}),
    ],
    ids=["not json", "array", "no payload", "no id", "no sender"],
)
def test_bird_malformed_bodies_are_payload_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        bird_channel().parse_callback(bird_request(body))


# -- parsing: MessageBird Conversations ----------------------------------------------------


def conversations_body(direction: str, status: str, **message: Any) -> bytes:
    return json.dumps(
        {
            "type": "message.created" if direction == "received" else "message.updated",
            "contact": {"id": "9354647c5bd5467a8ae1b4e1b3ad4cd8", "msisdn": 31612345678},
            "conversation": {"id": "2e15efafec384e1c82e9842075e87beb", "status": "active"},
            "message": {
                "id": "6a2ee3bd72b24bd7a2e9d5ea6e6e9a21",
                "conversationId": "2e15efafec384e1c82e9842075e87beb",
                "platform": "sms",
                "to": "+31970102030",
                "from": "+31612345678",
                "channelId": LEGACY_CHANNEL,
                "type": "text",
                "content": {"text": "where is my order?"},
                "direction": direction,
                "status": status,
                "createdDatetime": "2026-11-28T11:59:00Z",
                "updatedDatetime": "2026-11-28T11:59:30Z",
                **message,
            },
        }
    ).encode()


def jwt_request(body: bytes) -> CallbackRequest:
    token = mbw.jwt_signature(KEY, URL, body, issued=NOW, jti="j")
    return CallbackRequest("POST", URL, body, {mbw.JWT_SIGNATURE: token}, {}, NOW)


def test_conversations_inbound_text() -> None:
    request = jwt_request(conversations_body("received", "received"))
    channel = legacy_channel()
    channel.verify_callback(request)
    (msg,) = channel.parse_callback(request).inbound
    assert (msg.sender, msg.recipient, msg.text) == (
        "+31612345678",
        "+31970102030",
        "where is my order?",
    )


def test_conversations_report_with_error() -> None:
    body = conversations_body(
        "sent", "failed", error={"code": 25, "description": "number not reachable"}
    )
    (report,) = legacy_channel().parse_callback(jwt_request(body)).reports
    assert (report.status, report.error_code, report.error) == (
        "failed",
        "25",
        "number not reachable",
    )
    assert report.provider_message_id == "6a2ee3bd72b24bd7a2e9d5ea6e6e9a21"


@pytest.mark.parametrize(("raw", "status"), [("delivered", "delivered"), ("read", "read")])
def test_conversations_statuses(raw: str, status: str) -> None:
    (report,) = (
        legacy_channel().parse_callback(jwt_request(conversations_body("sent", raw))).reports
    )
    assert report.status == status


def test_conversations_pending_is_not_reported_and_missing_message_is_an_error() -> None:
    assert (
        legacy_channel().parse_callback(jwt_request(conversations_body("sent", "pending"))).reports
        == ()
    )
    with pytest.raises(PayloadError):
        legacy_channel().parse_callback(jwt_request(b'{"type": "message.created"}'))
