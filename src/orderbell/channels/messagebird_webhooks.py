"""Requests MessageBird / Bird sends us: delivery reports and inbound SMS, and their
signatures, for both of the adapter's APIs.

**Bird** (``api: bird``; docs.bird.com, Notifications API, "Verifying a webhook
subscription"). A webhook subscription created with a ``signingKey`` signs each request
with two headers, ``messagebird-signature`` (base64) and ``messagebird-request-timestamp``
(Unix seconds)::

    base64(HMAC-SHA256(signing key, timestamp + "\\n" + URL + "\\n" + SHA-256(raw body)))

where the body digest is the raw 32 bytes, not hex, and the URL is the one Bird called
(our public URL + path + query). The body is ``{"service": "channels", "event":
"sms.inbound" | "sms.outbound" | ..., "payload": <Channels API message>}``; the message
has ``id``, ``direction`` (incoming / outgoing), ``status``, ``reference`` (our message
id, which the adapter sends), ``sender.contact.identifierValue`` and ``body.text.text``.
Outgoing statuses: accepted, processing, scheduled, sent, sending_failed,
delivery_failed, delivered; accepted/processing/scheduled are not reported.

**MessageBird** (``api: conversations``; messagebird-nodejs
``lib/webhook-signature-jwt.js``). Each request carries ``MessageBird-Signature-JWT``: an
HS256/384/512 JWT keyed with the signing key, issuer ``MessageBird``, with ``nbf``/``exp``
(a minute apart), a ``jti``, ``url_hash`` (hex SHA-256 of the full URL called) and, when
the body is not empty, ``payload_hash`` (hex SHA-256 of the raw body). Conversations
webhooks and ``reportUrl`` reports are ``{"type": "message.created" |
"message.updated", "contact": {...}, "conversation": {...}, "message": {"id",
"direction": "received" | "sent", "status", "from", "to", "platform", "content":
{"text"}, ...}}``. Sent-message statuses: pending, accepted, sent, delivered, read,
rejected, failed, deleted, unknown.

Neither API reports a carrier STOP block on a message as Twilio's 21610 does, so an
opt-out reaches us only as an inbound STOP text, which the inbound handler reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

import jwt

from orderbell.channels._support import callback_json
from orderbell.channels.base import (
    Callback,
    CallbackReply,
    CallbackRequest,
    DeliveryReport,
    InboundMessage,
)
from orderbell.errors import PayloadError, SignatureError

BIRD_SIGNATURE = "messagebird-signature"
BIRD_TIMESTAMP = "messagebird-request-timestamp"
JWT_SIGNATURE = "messagebird-signature-jwt"
#: the JWT check allows this much clock skew (the SDKs use 5 s; we give servers more)
JWT_LEEWAY_SECONDS = 30

BIRD_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "sending_failed": "failed",
    "delivery_failed": "undelivered",
}
CONVERSATIONS_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "rejected": "failed",
    "failed": "failed",
}


# -- signatures ------------------------------------------------------------------------


def bird_signature(signing_key: str, timestamp: str, url: str, body: bytes) -> str:
    """What Bird puts in ``messagebird-signature`` for this request."""
    signed = b"\n".join((timestamp.encode(), url.encode(), hashlib.sha256(body).digest()))
    digest = hmac.new(signing_key.encode(), signed, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_bird(signing_key: str, request: CallbackRequest, *, tolerance_seconds: int) -> None:
    sent = request.headers.get(BIRD_SIGNATURE)
    stamp = request.headers.get(BIRD_TIMESTAMP)
    if not sent or not stamp:
        raise SignatureError("missing messagebird-signature or messagebird-request-timestamp")
    try:
        signed_at = int(stamp.strip())
    except ValueError:
        raise SignatureError("messagebird-request-timestamp is not a Unix time") from None
    if abs(request.now.timestamp() - signed_at) > tolerance_seconds:
        raise SignatureError(
            f"messagebird-request-timestamp is more than {tolerance_seconds} s from now"
        )
    expected = bird_signature(signing_key, stamp.strip(), request.url, request.body)
    if not hmac.compare_digest(sent.strip().encode(), expected.encode()):
        raise SignatureError(
            "messagebird-signature does not match (check the signing key and "
            "that ORDERBELL_PUBLIC_URL is the URL Bird calls)"
        )


def jwt_signature(
    signing_key: str,
    url: str,
    body: bytes,
    *,
    issued: datetime,
    jti: str,
    lifetime_seconds: int = 60,
) -> str:
    """A ``MessageBird-Signature-JWT`` as MessageBird makes it (for tests and tools)."""
    start = int(issued.timestamp())
    claims: dict[str, Any] = {
        "iss": "MessageBird",
        "nbf": start,
        "exp": start + lifetime_seconds,
        "jti": jti,
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
    }
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(claims, signing_key, algorithm="HS256")


def verify_jwt(signing_key: str, request: CallbackRequest) -> None:
    token = request.headers.get(JWT_SIGNATURE)
    if not token:
        raise SignatureError("missing MessageBird-Signature-JWT header")
    try:
        # exp and nbf are checked below against the request's time, not PyJWT's clock.
        claims = jwt.decode(
            token.strip(),
            signing_key,
            algorithms=["HS256", "HS384", "HS512"],
            issuer="MessageBird",
            options={
                "require": ["iss", "nbf", "exp", "jti", "url_hash"],
                "verify_exp": False,
                "verify_nbf": False,
            },
        )
        not_before, expires = float(claims["nbf"]), float(claims["exp"])
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise SignatureError(f"MessageBird-Signature-JWT is not valid: {exc}") from None
    now = request.now.timestamp()
    if now + JWT_LEEWAY_SECONDS < not_before:
        raise SignatureError("MessageBird-Signature-JWT is not valid yet (nbf in the future)")
    if now - JWT_LEEWAY_SECONDS >= expires:
        raise SignatureError("MessageBird-Signature-JWT has expired")
    if not hmac.compare_digest(
        str(claims["url_hash"]).lower(), hashlib.sha256(request.url.encode()).hexdigest()
    ):
        raise SignatureError(
            "MessageBird-Signature-JWT was made for another URL (check that "
            "ORDERBELL_PUBLIC_URL is the URL MessageBird calls)"
        )
    body_hash = claims.get("payload_hash")
    if body_hash is None:
        if request.body:
            raise SignatureError("MessageBird-Signature-JWT does not cover the body")
    elif not hmac.compare_digest(str(body_hash).lower(), hashlib.sha256(request.body).hexdigest()):
        raise SignatureError("MessageBird-Signature-JWT does not match the body")


# -- parsing ---------------------------------------------------------------------------


def _json(request: CallbackRequest) -> dict[str, Any]:
    return callback_json(request.body, "MessageBird callback")


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _our_id(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def parse_bird(request: CallbackRequest) -> Callback:
    payload = _json(request)
    event = payload.get("event")
    message = payload.get("payload")
    ok = CallbackReply(200)
    if not isinstance(event, str) or not isinstance(message, dict):
        raise PayloadError("Bird webhook must carry event and payload")
    ident = message.get("id")
    if not isinstance(ident, str) or not ident:
        raise PayloadError(f"Bird {event} webhook without payload.id")
    at = _when(message.get("lastStatusAt")) or _when(message.get("createdAt")) or request.now
    direction = message.get("direction")
    if direction == "incoming" or event.endswith(".inbound"):
        sender = (message.get("sender") or {}).get("contact") or {}
        number = sender.get("identifierValue") if isinstance(sender, dict) else None
        if not isinstance(number, str) or not number:
            raise PayloadError("Bird inbound message without sender.contact.identifierValue")
        body = message.get("body") or {}
        text = (body.get("text") or {}).get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return Callback(reply=ok)  # an image or file: nothing to read
        receiver = (message.get("receiver") or {}).get("connector") or {}
        to = receiver.get("identifierValue") if isinstance(receiver, dict) else None
        inbound = InboundMessage(ident, number, to if isinstance(to, str) else "", text, at)
        return Callback(inbound=(inbound,), reply=ok)
    raw = message.get("status")
    if not isinstance(raw, str) or raw not in BIRD_STATUS:
        return Callback(reply=ok)  # accepted, processing, scheduled ...
    reason = message.get("reason") or message.get("details")
    report = DeliveryReport(
        provider_message_id=ident,
        status=BIRD_STATUS[raw],
        raw_status=raw,
        occurred_at=at,
        error=str(reason) if reason else None,
        event_id=f"{ident}:{raw}",
        message_id=_our_id(message.get("reference")),
    )
    return Callback(reports=(report,), reply=ok)


def parse_conversations(request: CallbackRequest) -> Callback:
    payload = _json(request)
    message = payload.get("message")
    ok = CallbackReply(200)
    if not isinstance(message, dict):
        if payload.get("type") in (None, "conversation.created", "conversation.updated"):
            return Callback(reply=ok)
        raise PayloadError("MessageBird webhook without message")
    ident = message.get("id")
    if not isinstance(ident, str) or not ident:
        raise PayloadError("MessageBird webhook without message.id")
    at = _when(message.get("updatedDatetime")) or _when(message.get("createdDatetime"))
    raw = message.get("status")
    if message.get("direction") == "received":
        sender = message.get("from")
        if not isinstance(sender, str) or not sender:
            raise PayloadError("MessageBird inbound message without from")
        text = (message.get("content") or {}).get("text")
        if not isinstance(text, str):
            return Callback(reply=ok)
        number = sender if sender.startswith("+") else f"+{sender}"
        to = message.get("to")
        inbound = InboundMessage(
            ident, number, to if isinstance(to, str) else "", text, at or request.now
        )
        return Callback(inbound=(inbound,), reply=ok)
    if not isinstance(raw, str) or raw not in CONVERSATIONS_STATUS:
        return Callback(reply=ok)  # pending, accepted, deleted, unknown
    error = message.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    detail = error.get("description") if isinstance(error, dict) else None
    report = DeliveryReport(
        provider_message_id=ident,
        status=CONVERSATIONS_STATUS[raw],
        raw_status=raw,
        occurred_at=at or request.now,
        error_code=str(code) if code is not None else None,
        error=str(detail) if detail else None,
        event_id=f"{ident}:{raw}",
    )
    return Callback(reports=(report,), reply=ok)
