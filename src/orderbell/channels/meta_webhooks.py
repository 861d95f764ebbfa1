"""Meta webhooks (WhatsApp Cloud API, Messenger): the handshake, the signature, the events.

* **Handshake.** When a callback URL is saved in the App Dashboard, Meta calls it with
  ``GET ?hub.mode=subscribe&hub.verify_token=<ours>&hub.challenge=<n>``; we answer the
  challenge as ``text/plain`` 200 when the token is the one configured (``verify_token``),
  and refuse with ``SignatureError`` (401) otherwise.
* **Signature.** Every POST carries ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
  raw body keyed with the App Secret>`` (never the verify token). Meta escapes some
  unicode, so the raw bytes are what is checked, before any parsing.
* **WhatsApp** (``object: whatsapp_business_account``): ``entry[].changes[]`` with
  ``field: messages``; ``value.statuses[]`` (sent, delivered, read, failed with
  ``errors[].code``) become ``DeliveryReport`` keyed by the ``wamid``; ``value.messages[]``
  become ``InboundMessage`` (sender = ``from``, the wa_id). Changes for another phone
  number of the same app (``value.metadata.phone_number_id``) are skipped: Meta has one
  callback URL per app, not per number.
* **Messenger** (``object: page``): ``entry[].messaging[]`` with ``message`` (inbound
  text from ``sender.id``, the PSID; our own echoes are skipped), ``delivery``
  (``mids`` -> delivered) and ``read``. A read event only carries a ``watermark`` (all
  messages before this time were read), not message ids, so it is not reported.
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

SIGNATURE = "x-hub-signature-256"
#: WhatsApp statuses -> our report states ("deleted", "warning" ... are not reported)
WA_STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}
#: WhatsApp error codes meaning the number cannot receive WhatsApp messages
WA_UNUSABLE_ERRORS = frozenset({"131026"})


def signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify(app_secret: str | None, verify_token: str | None, request: CallbackRequest) -> None:
    """Raise ``SignatureError`` unless ``request`` is Meta's: a handshake with our verify
    token (GET) or a body signed with our App Secret (POST)."""
    if request.method.upper() == "GET":
        if not verify_token:
            raise SignatureError("Meta verify_token is not configured for this channel")
        if request.query.get("hub.mode") != "subscribe":
            raise SignatureError("Meta handshake without hub.mode=subscribe")
        token = request.query.get("hub.verify_token") or ""
        if not hmac.compare_digest(token.encode(), verify_token.encode()):
            raise SignatureError("hub.verify_token does not match the configured verify_token")
        return
    if not app_secret:
        raise SignatureError("Meta app_secret is not configured for this channel")
    sent = request.headers.get(SIGNATURE)
    if not sent:
        raise SignatureError("missing X-Hub-Signature-256 header")
    if not hmac.compare_digest(sent.strip().encode(), signature(app_secret, request.body).encode()):
        raise SignatureError("X-Hub-Signature-256 does not match (check the App Secret)")


def handshake(request: CallbackRequest) -> Callback:
    challenge = request.query.get("hub.challenge")
    if not challenge:
        raise PayloadError("Meta handshake without hub.challenge")
    return Callback(reply=CallbackReply(200, challenge.encode(), "text/plain"))


def _body(request: CallbackRequest, expected_object: str) -> list[dict[str, Any]]:
    payload = callback_json(request.body, "Meta webhook")
    if payload.get("object") != expected_object:
        raise PayloadError(
            f"Meta webhook object is {payload.get('object')!r}, not {expected_object}"
        )
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("Meta webhook without an entry list")
    return [e for e in entries if isinstance(e, dict)]


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _epoch(value: Any, *, millis: bool = False) -> datetime | None:
    try:
        seconds = float(value) / (1000 if millis else 1)
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# -- WhatsApp -----------------------------------------------------------------------------


def _wa_status(status: dict[str, Any], now: datetime) -> DeliveryReport | None:
    wamid, raw = status.get("id"), status.get("status")
    if not isinstance(wamid, str) or not wamid or not isinstance(raw, str):
        raise PayloadError("WhatsApp status without id or status")
    ours = WA_STATUS_MAP.get(raw)
    if ours is None:
        return None
    errors = _list(status.get("errors"))
    first = errors[0] if errors else {}
    code = str(first["code"]) if first.get("code") is not None else None
    detail = first.get("message") or first.get("title")
    details = _dict(first.get("error_data")).get("details")
    if details and details != detail:
        detail = f"{detail}: {details}" if detail else details
    return DeliveryReport(
        provider_message_id=wamid,
        status=ours,
        raw_status=raw,
        occurred_at=_epoch(status.get("timestamp")) or now,
        error_code=code,
        error=str(detail) if detail else None,
        contact_unusable=code in WA_UNUSABLE_ERRORS,
        event_id=f"{wamid}:{raw}",
    )


def _wa_text(message: dict[str, Any]) -> str | None:
    """The text of an inbound message: typed text, a quick-reply button, an interactive
    reply's title. Media, locations, reactions ... carry no text we act on."""
    kind = message.get("type")
    if kind == "text":
        return str(_dict(message.get("text")).get("body") or "")
    if kind == "button":
        return str(_dict(message.get("button")).get("text") or "")
    if kind == "interactive":
        inter = _dict(message.get("interactive"))
        reply = _dict(inter.get("button_reply")) or _dict(inter.get("list_reply"))
        return str(reply.get("title") or "")
    return None


def parse_whatsapp(request: CallbackRequest, phone_number_id: str | None) -> Callback:
    if request.method.upper() == "GET":
        return handshake(request)
    reports: list[DeliveryReport] = []
    inbound: list[InboundMessage] = []
    for entry in _body(request, "whatsapp_business_account"):
        for change in _list(entry.get("changes")):
            if change.get("field") != "messages":
                continue
            value = _dict(change.get("value"))
            metadata = _dict(value.get("metadata"))
            number_id = metadata.get("phone_number_id")
            if phone_number_id and number_id and str(number_id) != phone_number_id:
                continue
            for status in _list(value.get("statuses")):
                if (report := _wa_status(status, request.now)) is not None:
                    reports.append(report)
            for message in _list(value.get("messages")):
                wamid, sender = message.get("id"), message.get("from")
                if not isinstance(wamid, str) or not wamid or not isinstance(sender, str):
                    raise PayloadError("WhatsApp message without id or from")
                text = _wa_text(message)
                if text is None:
                    continue
                inbound.append(
                    InboundMessage(
                        provider_message_id=wamid,
                        sender=sender,
                        recipient=str(metadata.get("display_phone_number") or number_id or ""),
                        text=text,
                        received_at=_epoch(message.get("timestamp")) or request.now,
                    )
                )
    return Callback(reports=tuple(reports), inbound=tuple(inbound), reply=CallbackReply(200))


# -- Messenger ----------------------------------------------------------------------------


def parse_messenger(request: CallbackRequest, page_id: str | None) -> Callback:
    if request.method.upper() == "GET":
        return handshake(request)
    reports: list[DeliveryReport] = []
    inbound: list[InboundMessage] = []
    for entry in _body(request, "page"):
        if page_id and entry.get("id") is not None and str(entry.get("id")) != page_id:
            continue
        for event in _list(entry.get("messaging")):
            sender = str(_dict(event.get("sender")).get("id") or "")
            recipient = str(_dict(event.get("recipient")).get("id") or "")
            at = _epoch(event.get("timestamp"), millis=True) or request.now
            if "message" in event:
                message = _dict(event.get("message"))
                if message.get("is_echo"):
                    continue  # our own message, echoed back
                mid = message.get("mid")
                if not isinstance(mid, str) or not mid or not sender:
                    raise PayloadError("Messenger message without mid or sender.id")
                quick = _dict(message.get("quick_reply")).get("payload")
                text = message.get("text")
                if not isinstance(text, str):
                    if quick is None:
                        continue  # attachments, stickers: nothing we act on
                    text = str(quick)
                inbound.append(InboundMessage(mid, sender, recipient, text, at))
            elif "delivery" in event:
                mids = _dict(event.get("delivery")).get("mids")
                for mid in mids if isinstance(mids, list) else []:
                    if isinstance(mid, str) and mid:
                        reports.append(
                            DeliveryReport(
                                provider_message_id=mid,
                                status="delivered",
                                raw_status="delivery",
                                occurred_at=at,
                                event_id=f"{mid}:delivery",
                            )
                        )
            # "read" carries only a watermark, no message ids: not reported (module doc).
    return Callback(reports=tuple(reports), inbound=tuple(inbound), reply=CallbackReply(200))
