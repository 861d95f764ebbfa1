"""The generic Standard Webhooks source: signatures checked as the spec says, payload mapped."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from orderbell.domain.model import ChannelFamily, Fulfillment, OrderStatus, Purpose
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources.generic import GenericWebhookSource, sign

SECRET = "whsec_" + base64.b64encode(b"test-secret-for-order-bell-123").decode()
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def source() -> GenericWebhookSource:
    return GenericWebhookSource(GenericWebhookSource.Config(secret=SECRET))


def body(**data: object) -> bytes:
    payload = {"order_id": "A-1", "number": "1042", "status": "ready", "fulfillment": "pickup"}
    payload.update(data)
    return json.dumps({"type": "order.updated", "data": payload}).encode()


def signed(raw: bytes, *, at: datetime = NOW, msg_id: str = "msg_1") -> dict[str, str]:
    return sign(SECRET, msg_id, int(at.timestamp()), raw)


def test_standard_webhooks_vector_from_the_spec() -> None:
    # The example in the Standard Webhooks specification (spec/standard-webhooks.md).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    ts = 1614265330
    payload = b'{"test": 2432232314}'
    headers = sign(secret, msg_id, ts, payload)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_valid_signature_passes_and_parses() -> None:
    raw = body(
        guest={
            "name": "Maria",
            "phone": "+12125550123",
            "preferences": ["whatsapp", "sms"],
            "consent": [{"channel": "sms", "purpose": "marketing", "granted": True}],
        }
    )
    src = source()
    src.verify(raw, signed(raw), NOW)
    (update,) = src.parse(raw, signed(raw))
    assert update.external_id == "A-1"
    assert update.event_id == "msg_1"
    assert update.status is OrderStatus.READY
    assert update.fulfillment is Fulfillment.PICKUP
    assert update.guest is not None and update.guest.name == "Maria"
    assert update.guest.preferences == (ChannelFamily.WHATSAPP, ChannelFamily.SMS)
    assert update.guest.consents == ((ChannelFamily.SMS, Purpose.MARKETING, True),)
    assert update.occurred_at == NOW


def test_one_of_several_signatures_may_match() -> None:
    raw = body()
    headers = signed(raw)
    headers["webhook-signature"] = "v1,AAAA v2,zzz " + headers["webhook-signature"]
    source().verify(raw, headers, NOW)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda h: h.pop("webhook-signature"), "missing"),
        (lambda h: h.pop("webhook-id"), "missing"),
        (
            lambda h: h.update({"webhook-signature": "v1,bm90LXRoZS1zaWduYXR1cmU="}),
            "no webhook-signature",
        ),
        (lambda h: h.update({"webhook-signature": "garbage"}), "no webhook-signature"),
        (lambda h: h.update({"webhook-id": "msg_other"}), "no webhook-signature"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "Unix time"),
    ],
)
def test_bad_headers_are_refused(mutate, message) -> None:  # type: ignore[no-untyped-def]
    raw = body()
    headers = signed(raw)
    mutate(headers)
    with pytest.raises(SignatureError, match=message):
        source().verify(raw, headers, NOW)


def test_tampered_body_is_refused() -> None:
    raw = body()
    headers = signed(raw)
    with pytest.raises(SignatureError):
        source().verify(raw.replace(b"ready", b"completed"), headers, NOW)


@pytest.mark.parametrize(
    "skew, word", [(timedelta(minutes=-6), "too old"), (timedelta(minutes=6), "future")]
)
def test_timestamp_outside_five_minutes_is_refused(skew: timedelta, word: str) -> None:
    raw = body()
    with pytest.raises(SignatureError, match=word):
        source().verify(raw, signed(raw, at=NOW + skew), NOW)


def test_timestamp_within_tolerance_passes() -> None:
    raw = body()
    source().verify(raw, signed(raw, at=NOW - timedelta(minutes=4, seconds=59)), NOW)


def test_wrong_secret_is_refused() -> None:
    raw = body()
    other = "whsec_" + base64.b64encode(b"another-secret-entirely-456").decode()
    headers = sign(other, "msg_1", int(NOW.timestamp()), raw)
    with pytest.raises(SignatureError):
        source().verify(raw, headers, NOW)


@pytest.mark.parametrize(
    "raw, field",
    [
        (b"{not json", "JSON"),
        (json.dumps({"type": "x"}).encode(), "data"),
        (body(status="teleported"), "status"),
        (body(order_id=""), "order_id"),
        (body(occurred_at="2026-11-28T10:00:00"), "timezone"),
        (body(surprise=1), "surprise"),
    ],
)
def test_malformed_payloads_name_the_problem(raw: bytes, field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        source().parse(raw, signed(raw))
