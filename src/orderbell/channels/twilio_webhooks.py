"""Requests Twilio sends us: status callbacks and inbound messages, and their signature.

``X-Twilio-Signature`` is base64(HMAC-SHA1(auth token, URL + each POST parameter name and
value, sorted by name then value)). The URL is the one Twilio called, i.e. our public URL,
never rebuilt from the request behind a proxy. Like twilio-python's validator we accept
the URL with and without the default port. JSON bodies carry ``bodySHA256`` in the query
instead of signed parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from orderbell.channels.base import (
    Callback,
    CallbackReply,
    CallbackRequest,
    DeliveryReport,
    InboundMessage,
)
from orderbell.errors import PayloadError, SignatureError

#: MessageStatus -> our report status; statuses before "sent" are not reported.
STATUS_MAP = {
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
#: error codes meaning the number cannot receive texts (unknown, landline, unreachable)
UNUSABLE_ERRORS = frozenset({"21211", "21614", "30003", "30005", "30006"})
#: the recipient replied STOP to this sender
OPTED_OUT_ERRORS = frozenset({"21610"})

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def expected_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None and default:
        with_port = parts._replace(netloc=f"{parts.netloc}:{default}")
        return [url, urlunsplit(with_port)]
    if parts.port == default:
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return [url, urlunsplit(parts._replace(netloc=userinfo + host))]
    return [url]


def validate(
    token: str,
    url: str,
    params: Iterable[tuple[str, str]],
    signature: str | None,
    *,
    body: bytes | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``signature`` is Twilio's for this request."""
    if not signature:
        raise SignatureError("missing X-Twilio-Signature header")
    pairs = list(params)
    query = dict(parse_qsl(urlsplit(url).query))
    if "bodySHA256" in query:
        if body is None or not hmac.compare_digest(
            hashlib.sha256(body).hexdigest(), query["bodySHA256"]
        ):
            raise SignatureError("bodySHA256 does not match the body")
        pairs = []
    for candidate in _port_variants(url):
        if hmac.compare_digest(expected_signature(token, candidate, pairs), signature):
            return
    raise SignatureError("X-Twilio-Signature does not match (check ORDERBELL_PUBLIC_URL)")


def form_params(request: CallbackRequest) -> list[tuple[str, str]]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return []
    try:
        return parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise PayloadError("form body is not UTF-8") from None


def verify_request(token: str, request: CallbackRequest) -> None:
    validate(
        token,
        request.url,
        form_params(request),
        request.headers.get("x-twilio-signature"),
        body=request.body,
    )


def parse_request(request: CallbackRequest) -> Callback:
    """A status callback becomes a DeliveryReport; an incoming text an InboundMessage."""
    fields: dict[str, str] = {}
    for name, value in form_params(request):
        fields.setdefault(name, value)
    sid = fields.get("MessageSid") or fields.get("SmsSid")
    if not sid:
        raise PayloadError("Twilio callback without MessageSid")
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
    if status == "received" or ("Body" in fields and "MessageStatus" not in fields):
        inbound = InboundMessage(
            provider_message_id=sid,
            sender=fields.get("From", ""),
            recipient=fields.get("To", ""),
            text=fields.get("Body", ""),
            received_at=request.now,
            provider_keyword=fields.get("OptOutType") or None,
        )
        return Callback(inbound=(inbound,), reply=CallbackReply(200, EMPTY_TWIML, "text/xml"))
    ours = STATUS_MAP.get(status)
    if ours is None:
        return Callback(reply=CallbackReply(204))
    code = fields.get("ErrorCode") or None
    report = DeliveryReport(
        provider_message_id=sid,
        status=ours,
        raw_status=status,
        occurred_at=request.now,
        error_code=code,
        error=fields.get("ErrorMessage") or (f"Twilio error {code}" if code else None),
        contact_unusable=code in UNUSABLE_ERRORS,
        opted_out=code in OPTED_OUT_ERRORS,
        event_id=f"{sid}:{status}",
    )
    return Callback(reports=(report,), reply=CallbackReply(204))
