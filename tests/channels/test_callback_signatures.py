"""Official signature vectors for the callbacks Twilio and SendGrid send us."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from orderbell.channels import sendgrid_events, twilio_webhooks
from orderbell.channels.base import CallbackRequest
from orderbell.errors import PayloadError, SignatureError

VECTORS = Path(__file__).parent / "vectors"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# twilio/twilio-python tests/unit/test_request_validator.py (token "12345")
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


@pytest.mark.parametrize(
    "url, expected",
    [
        (URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_twilio_official_vectors(url: str, expected: str) -> None:
    assert twilio_webhooks.expected_signature(TOKEN, url, PARAMS.items()) == expected


def test_twilio_accepts_the_url_with_or_without_default_port() -> None:
    twilio_webhooks.validate(TOKEN, URL, PARAMS.items(), "kvajT1Ptam85bY51eRf/AJRuM3w=")
    twilio_webhooks.validate(
        TOKEN,
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        PARAMS.items(),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    )


def test_twilio_duplicate_params_vector() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_webhooks.expected_signature(TOKEN, URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_twilio_json_body_vector() -> None:
    body = b'{"property": "value", "boolean": true}'
    digest = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    url = f"{URL}&bodySHA256={digest}"
    twilio_webhooks.validate(TOKEN, url, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body=body)
    with pytest.raises(SignatureError, match="bodySHA256"):
        twilio_webhooks.validate(TOKEN, url, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body=b"{}")


@pytest.mark.parametrize("signature", [None, "", "RSOYDt4T1cUTdK1PDd93/VVr8B8X", "forged"])
def test_twilio_forgeries_are_refused(signature: str | None) -> None:
    with pytest.raises(SignatureError):
        twilio_webhooks.validate(TOKEN, URL, PARAMS.items(), signature)


def _twilio_request(
    fields: dict[str, str], url: str = URL, sig: str | None = None
) -> CallbackRequest:
    body = urlencode(fields).encode()
    sig = sig or twilio_webhooks.expected_signature(TOKEN, url, fields.items())
    return CallbackRequest(
        "POST",
        url,
        body,
        {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig},
        {},
        NOW,
    )


def test_twilio_status_callback_becomes_a_report() -> None:
    fields = {
        "MessageSid": "SM9f8e",
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "To": "+12125550123",
        "From": "+14155550100",
    }
    request = _twilio_request(fields)
    twilio_webhooks.verify_request(TOKEN, request)
    (report,) = twilio_webhooks.parse_request(request).reports
    assert (report.provider_message_id, report.status, report.error_code) == (
        "SM9f8e",
        "undelivered",
        "30003",
    )
    assert report.contact_unusable and not report.opted_out


def test_twilio_inbound_stop_becomes_an_inbound_message() -> None:
    fields = {
        "MessageSid": "SMin",
        "SmsStatus": "received",
        "Body": "STOP",
        "From": "+12125550123",
        "To": "+14155550100",
        "OptOutType": "STOP",
    }
    parsed = twilio_webhooks.parse_request(_twilio_request(fields))
    (msg,) = parsed.inbound
    assert (msg.text, msg.sender, msg.provider_keyword) == ("STOP", "+12125550123", "STOP")
    assert parsed.reply is not None and b"<Response>" in parsed.reply.body


def test_twilio_callback_without_sid_is_malformed() -> None:
    with pytest.raises(PayloadError):
        twilio_webhooks.parse_request(_twilio_request({"MessageStatus": "delivered"}))


# sendgrid/sendgrid-python test/unit/test_eventwebhook.py
SG_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3G"
    "Rqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_SIG = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15T"
    "luLtEZtM="
)
SG_TS = "1600112502"


def _sg_request(
    body: bytes, sig: str = SG_SIG, ts: str = SG_TS, now: datetime = NOW
) -> CallbackRequest:
    return CallbackRequest(
        "POST",
        "https://x/v1/callbacks/sendgrid/1",
        body,
        {sendgrid_events.SIGNATURE: sig, sendgrid_events.TIMESTAMP: ts},
        {},
        now,
    )


def test_sendgrid_official_vector() -> None:
    body = (VECTORS / "sendgrid_event_dropped.json").read_bytes()
    sendgrid_events.verify(SG_KEY, _sg_request(body), tolerance=None)
    (report,) = sendgrid_events.parse(_sg_request(body)).reports
    assert report.status == "failed" and report.raw_status == "dropped"


def test_sendgrid_tampered_body_and_stale_timestamp_are_refused() -> None:
    body = (VECTORS / "sendgrid_event_dropped.json").read_bytes()
    with pytest.raises(SignatureError):
        sendgrid_events.verify(
            SG_KEY, _sg_request(body.replace(b"dropped", b"delivered")), tolerance=None
        )
    with pytest.raises(SignatureError, match="window"):
        sendgrid_events.verify(SG_KEY, _sg_request(body), tolerance=timedelta(minutes=10))
    with pytest.raises(SignatureError, match="not configured"):
        sendgrid_events.verify(None, _sg_request(body), tolerance=None)


def test_sendgrid_events_map_to_reports() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    events = [
        {"event": "processed", "sg_message_id": "abc.filter1", "sg_event_id": "e0", "timestamp": 1},
        {
            "event": "delivered",
            "sg_message_id": "abc.filter1",
            "sg_event_id": "e1",
            "timestamp": 2,
            "message_id": "42",
        },
        {"event": "open", "sg_message_id": "abc.filter1", "sg_event_id": "e2", "timestamp": 3},
        {
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "no such user",
            "sg_message_id": "def.x",
            "sg_event_id": "e3",
            "timestamp": 4,
        },
        {
            "event": "bounce",
            "type": "blocked",
            "sg_message_id": "ghi.x",
            "sg_event_id": "e4",
            "timestamp": 5,
        },
        {
            "event": "spamreport",
            "sg_message_id": "abc.filter1",
            "sg_event_id": "e5",
            "timestamp": 6,
        },
    ]
    body = json.dumps(events).encode()
    ts = str(int(NOW.timestamp()))
    sig = base64.b64encode(key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    request = _sg_request(body, sig=sig, ts=ts)
    sendgrid_events.verify(public, request, tolerance=timedelta(minutes=10))
    reports = sendgrid_events.parse(request).reports
    assert [(r.provider_message_id, r.status) for r in reports] == [
        ("abc", "delivered"),
        ("abc", "read"),
        ("def", "failed"),
        ("ghi", "undelivered"),
        ("abc", "delivered"),
    ]
    assert reports[0].message_id == 42
    assert reports[2].contact_unusable and not reports[3].contact_unusable
    assert reports[4].opted_out
