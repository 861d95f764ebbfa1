"""SendGrid's Event Webhook: signed delivery events for the mail we sent.

Each POST is a JSON array of events, signed with ECDSA P-256 / SHA-256 over
``timestamp + raw body``: headers ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER)
and ``X-Twilio-Email-Event-Webhook-Timestamp``; the verification key (base64 DER
SubjectPublicKeyInfo) comes from the SendGrid dashboard ("Signed Event Webhook").
Our ``custom_args`` (``message_id``, ``order_id``) are echoed as top-level keys.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from orderbell.channels.base import Callback, CallbackReply, CallbackRequest, DeliveryReport
from orderbell.errors import PayloadError, SignatureError

SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


def verify(
    public_key_b64: str | None, request: CallbackRequest, *, tolerance: timedelta | None
) -> None:
    if not public_key_b64:
        raise SignatureError(
            "SendGrid event webhook verification key is not configured "
            "(channel setting event_webhook_public_key)"
        )
    sig, ts = request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP)
    if not sig or not ts:
        raise SignatureError("missing SendGrid event webhook signature headers")
    if tolerance is not None:
        try:
            sent = datetime.fromtimestamp(int(ts), tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise SignatureError("bad event webhook timestamp") from None
        if abs(request.now - sent) > tolerance:
            raise SignatureError("event webhook timestamp outside the allowed window")
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64))
        signature = base64.b64decode(sig)
    except (ValueError, binascii.Error) as exc:
        raise SignatureError(f"unusable SendGrid key or signature: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("the SendGrid verification key is not an EC public key")
    try:
        key.verify(signature, ts.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("SendGrid event webhook signature does not match") from None


def _report(event: dict[str, Any]) -> DeliveryReport | None:
    kind = str(event.get("event", ""))
    sg_id = str(event.get("sg_message_id") or "")
    provider_id = sg_id.split(".", 1)[0]
    when = event.get("timestamp")
    at = datetime.fromtimestamp(when, tz=UTC) if isinstance(when, int | float) else None
    mid = event.get("message_id")
    message_id = int(mid) if isinstance(mid, str | int) and str(mid).isdigit() else None
    common = {
        "provider_message_id": provider_id,
        "raw_status": kind,
        "occurred_at": at,
        "event_id": str(event.get("sg_event_id") or "") or None,
        "message_id": message_id,
    }
    reason = str(event.get("reason") or event.get("response") or "") or None
    if kind == "delivered":
        return DeliveryReport(status="delivered", **common)
    if kind == "open":
        return DeliveryReport(status="read", **common)
    if kind == "bounce":
        hard = str(event.get("type", "bounce")) == "bounce"
        return DeliveryReport(
            status="failed" if hard else "undelivered",
            error=reason,
            error_code=str(event.get("status") or "") or None,
            contact_unusable=hard,
            **common,
        )
    if kind == "dropped":
        return DeliveryReport(status="failed", error=reason, **common)
    if kind in ("spamreport", "unsubscribe", "group_unsubscribe"):
        return DeliveryReport(status="delivered", opted_out=True, error=kind, **common)
    return None  # processed, deferred, click, group_resubscribe: nothing to record


def parse(request: CallbackRequest) -> Callback:
    try:
        events = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"event webhook body is not JSON: {exc}") from None
    if not isinstance(events, list):
        raise PayloadError("event webhook body must be a JSON array of events")
    reports = tuple(r for e in events if isinstance(e, dict) and (r := _report(e)) is not None)
    return Callback(reports=reports, reply=CallbackReply(200))
