"""Mailgun's signed event webhooks (vector computed over the reference fixtures)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderbell.channels import mailgun_webhooks
from orderbell.channels.base import CallbackRequest
from orderbell.errors import PayloadError, SignatureError

VECTORS = Path(__file__).parent / "vectors"
KEY = "mailgun-test-signing-key"  # the test key the fixtures were signed with
SIGNED_AT = datetime.fromtimestamp(1770920772, tz=UTC)


def request(body: bytes, now: datetime = SIGNED_AT) -> CallbackRequest:
    return CallbackRequest(
        "POST",
        "https://x/v1/callbacks/mailgun/1",
        body,
        {"content-type": "application/json"},
        {},
        now,
    )


def test_fixture_signature_verifies_and_parses() -> None:
    body = (VECTORS / "mailgun_delivered.json").read_bytes()
    mailgun_webhooks.verify(
        KEY, request(body), tolerance=timedelta(minutes=5), seen=mailgun_webhooks.TokenCache()
    )
    (report,) = mailgun_webhooks.parse(request(body)).reports
    assert (report.provider_message_id, report.status) == (
        "20260101.abc@mg.example.com",
        "delivered",
    )


def test_replayed_token_and_stale_timestamp_are_refused() -> None:
    body = (VECTORS / "mailgun_delivered.json").read_bytes()
    seen = mailgun_webhooks.TokenCache()
    mailgun_webhooks.verify(KEY, request(body), tolerance=None, seen=seen)
    with pytest.raises(SignatureError, match="replayed"):
        mailgun_webhooks.verify(KEY, request(body), tolerance=None, seen=seen)
    with pytest.raises(SignatureError, match="window"):
        mailgun_webhooks.verify(
            KEY,
            request(body, SIGNED_AT + timedelta(hours=1)),
            tolerance=timedelta(minutes=10),
            seen=None,
        )


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_wrong_or_missing_key_is_refused(key: str | None) -> None:
    body = (VECTORS / "mailgun_delivered.json").read_bytes()
    with pytest.raises(SignatureError):
        mailgun_webhooks.verify(key, request(body), tolerance=None, seen=None)


def _signed(event: dict[str, object]) -> bytes:
    ts, token = "1770920772", "t" * 50
    sig = hmac.new(KEY.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": event}
    ).encode()


def test_permanent_failure_without_message_id_still_names_the_address() -> None:
    body = (VECTORS / "mailgun_failed_permanent.json").read_bytes()
    (report,) = mailgun_webhooks.parse(request(body)).reports
    assert report.status == "failed" and report.contact_unusable
    assert report.recipient == "bad@example.com" and report.error_code == "550"


@pytest.mark.parametrize(
    "event, status, flags",
    [
        ({"event": "opened"}, "read", {}),
        ({"event": "failed", "severity": "temporary"}, "undelivered", {"contact_unusable": False}),
        ({"event": "complained"}, "delivered", {"opted_out": True}),
        ({"event": "unsubscribed"}, "delivered", {"opted_out": True}),
    ],
)
def test_event_mapping(event: dict[str, object], status: str, flags: dict[str, bool]) -> None:
    body = _signed(
        {
            **event,
            "message": {"headers": {"message-id": "<m1@mg>"}},
            "user-variables": {"message_id": "7"},
        }
    )
    mailgun_webhooks.verify(KEY, request(body), tolerance=None, seen=None)
    (report,) = mailgun_webhooks.parse(request(body)).reports
    assert report.status == status and report.provider_message_id == "m1@mg"
    assert report.message_id == 7
    for name, value in flags.items():
        assert getattr(report, name) is value


def test_malformed_bodies() -> None:
    with pytest.raises(PayloadError):
        mailgun_webhooks.parse(request(b"[1,2"))
    with pytest.raises(PayloadError):
        mailgun_webhooks.parse(request(_signed({"event": "delivered", "recipient": ""})))
