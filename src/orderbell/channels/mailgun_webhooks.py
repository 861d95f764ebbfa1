"""Mailgun's signed event webhooks: delivery reports for the mail we sent.

The signature is in the JSON body: ``signature.signature`` = hex HMAC-SHA256 of
``timestamp + token`` with the webhook signing key. Mailgun recommends refusing a token
seen before (replay) and stale timestamps; both are checked here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from orderbell.channels._support import callback_json
from orderbell.channels.base import Callback, CallbackReply, CallbackRequest, DeliveryReport
from orderbell.errors import PayloadError, SignatureError


class TokenCache:
    """Tokens seen recently, bounded: a replayed request is refused."""

    def __init__(self, size: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, token: str) -> bool:
        """False when the token was seen before."""
        if token in self._seen:
            return False
        self._seen[token] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def _body(request: CallbackRequest) -> dict[str, Any]:
    return callback_json(request.body, "Mailgun webhook")


def verify(
    key: str | None,
    request: CallbackRequest,
    *,
    tolerance: timedelta | None,
    seen: TokenCache | None,
) -> None:
    if not key:
        raise SignatureError("Mailgun webhook signing key is not configured (webhook_signing_key)")
    sig = _body(request).get("signature")
    if not isinstance(sig, dict):
        raise SignatureError("missing signature object")
    ts, token, given = (str(sig.get(k) or "") for k in ("timestamp", "token", "signature"))
    if not (ts and token and given):
        raise SignatureError("incomplete Mailgun signature")
    expected = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise SignatureError("Mailgun signature does not match")
    if tolerance is not None:
        try:
            sent = datetime.fromtimestamp(int(ts), tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise SignatureError("bad Mailgun timestamp") from None
        if abs(request.now - sent) > tolerance:
            raise SignatureError("Mailgun timestamp outside the allowed window")
    if seen is not None and not seen.add(token):
        raise SignatureError("Mailgun token seen before (replayed request)")


def parse(request: CallbackRequest) -> Callback:
    event = _body(request).get("event-data")
    if not isinstance(event, dict):
        raise PayloadError("missing event-data")
    kind = str(event.get("event") or "")
    headers = (event.get("message") or {}).get("headers") or {}
    provider_id = str(headers.get("message-id") or "").strip("<>")
    variables = event.get("user-variables") or {}
    mid = variables.get("message_id") if isinstance(variables, dict) else None
    message_id = int(mid) if isinstance(mid, str | int) and str(mid).isdigit() else None
    recipient = str(event.get("recipient") or "") or None
    if not provider_id and message_id is None and recipient is None:
        raise PayloadError("event without message-id, message_id variable or recipient")
    when = event.get("timestamp")
    common: dict[str, Any] = {
        "provider_message_id": provider_id,
        "raw_status": kind,
        "occurred_at": datetime.fromtimestamp(when, tz=UTC)
        if isinstance(when, int | float)
        else None,
        "event_id": str(event.get("id") or "") or None,
        "message_id": message_id,
        "recipient": recipient,
    }
    status = event.get("delivery-status") or {}
    detail = (
        str(status.get("message") or status.get("description") or event.get("reason") or "") or None
    )
    code = str(status.get("code")) if status.get("code") is not None else None
    report: DeliveryReport | None = None
    if kind == "delivered":
        report = DeliveryReport(status="delivered", **common)
    elif kind == "opened":
        report = DeliveryReport(status="read", **common)
    elif kind == "failed":
        permanent = str(event.get("severity") or "") == "permanent"
        report = DeliveryReport(
            status="failed" if permanent else "undelivered",
            error_code=code,
            error=detail,
            contact_unusable=permanent,
            **common,
        )
    elif kind in ("unsubscribed", "complained"):
        report = DeliveryReport(status="delivered", opted_out=True, error=kind, **common)
    return Callback(reports=(report,) if report else (), reply=CallbackReply(200))
