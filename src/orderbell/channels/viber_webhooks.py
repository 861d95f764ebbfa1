"""Requests Viber sends a bot's webhook: delivery receipts, messages, (un)subscriptions.

``X-Viber-Content-Signature`` is hex(HMAC-SHA256(bot auth token, raw body)) (viber-bot-
python ``Api.verify_signature``). Every callback is a JSON object with ``event``:

* ``delivered`` / ``seen`` / ``failed`` (``desc``) -> ``DeliveryReport`` keyed by
  ``message_token``, the id ``send_message`` answered (seen -> read);
* ``message`` -> ``InboundMessage`` (``sender.id``; text messages and the text of others);
* ``unsubscribed`` -> an ``InboundMessage`` from ``user_id`` with ``provider_keyword``
  ``STOP`` and no text: the guest blocked the bot, which is an opt-out of the *person*
  (like Twilio's OptOutType), not a report about one of our messages, so the inbound
  handler revokes consent as it does for a texted STOP;
* ``webhook`` (the check when the webhook is set), ``subscribed``,
  ``conversation_started``, ``client_status``: acknowledged, nothing recorded.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from orderbell.channels._support import callback_json
from orderbell.channels.base import (
    Callback,
    CallbackReply,
    CallbackRequest,
    DeliveryReport,
    InboundMessage,
)
from orderbell.errors import PayloadError, SignatureError

SIGNATURE = "x-viber-content-signature"
STATUS_MAP = {"delivered": "delivered", "seen": "read", "failed": "failed"}


def signature(token: str, body: bytes) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def verify(token: str, request: CallbackRequest) -> None:
    sent = request.headers.get(SIGNATURE)
    if not sent:
        raise SignatureError("missing X-Viber-Content-Signature header")
    if not hmac.compare_digest(
        sent.strip().lower().encode(), signature(token, request.body).encode()
    ):
        raise SignatureError("X-Viber-Content-Signature does not match (check the auth token)")


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _token(payload: dict[str, Any]) -> str:
    token = payload.get("message_token")
    if isinstance(token, bool) or not isinstance(token, int | str) or token == "":
        raise PayloadError(f"Viber {payload.get('event')} callback without message_token")
    return str(token)


def parse(request: CallbackRequest) -> Callback:
    payload = callback_json(request.body, "Viber callback")
    if not isinstance(payload.get("event"), str):
        raise PayloadError("Viber callback must be a JSON object with an event")
    event = payload["event"]
    at = _when(payload.get("timestamp")) or request.now
    ok = CallbackReply(200)
    if event in STATUS_MAP:
        token = _token(payload)
        desc = payload.get("desc")
        report = DeliveryReport(
            provider_message_id=token,
            status=STATUS_MAP[event],
            raw_status=event,
            occurred_at=at,
            error=str(desc) if desc else None,
            event_id=f"{token}:{event}",
        )
        return Callback(reports=(report,), reply=ok)
    if event == "message":
        sender = payload.get("sender")
        sender_id = sender.get("id") if isinstance(sender, dict) else None
        message = payload.get("message")
        if not isinstance(sender_id, str) or not sender_id or not isinstance(message, dict):
            raise PayloadError("Viber message callback without sender.id or message")
        text = message.get("text")
        if not isinstance(text, str):
            return Callback(reply=ok)  # a sticker, picture, location ...: nothing to read
        msg = InboundMessage(_token(payload), sender_id, "", text, at)
        return Callback(inbound=(msg,), reply=ok)
    if event == "unsubscribed":
        user = payload.get("user_id")
        if not isinstance(user, str) or not user:
            raise PayloadError("Viber unsubscribed callback without user_id")
        unsub_token = payload.get("message_token")
        ident = f"unsubscribed:{unsub_token}" if unsub_token is not None else f"unsubscribed:{user}"
        stop = InboundMessage(ident, user, "", "", at, provider_keyword="STOP")
        return Callback(inbound=(stop,), reply=ok)
    return Callback(reply=ok)  # webhook, subscribed, conversation_started, client_status
