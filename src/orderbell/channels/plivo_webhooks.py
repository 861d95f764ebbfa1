"""Requests Plivo sends us: message status callbacks and inbound SMS, and their signature.

``X-Plivo-Signature-V3`` (a comma-separated list, one per active auth token) is
base64(HMAC-SHA256(auth token, base + "." + ``X-Plivo-Signature-V3-Nonce``)), where base
is built as plivo-python's ``validate_v3_signature`` (``plivo/utils/signature_v3.py``)
and plivo-php's ``validateV3Signature`` build it:

* POST: ``scheme://host/path``; then, when the URL has a query, ``?`` + its parameters
  sorted by name (``k=v`` joined by ``&``, repeated values sorted) + ``.``, or just ``?``
  when it has none but the body has parameters; then every POST parameter sorted by name
  as ``namevalue`` without separators (repeated values sorted);
* GET: ``scheme://host/path`` + ``?`` + the sorted query (nothing when empty).

The URL is the one Plivo called, i.e. our public URL (``ORDERBELL_PUBLIC_URL``). The
older ``X-Plivo-Signature-V2`` (base64(HMAC-SHA256(token, URL without query + nonce)))
signs neither the body nor the query, so a captured request can be replayed with another
body; it is refused unless the channel opts in (``accept_signature_v2``) and the request
carries no V3 signature.

Status callbacks (form fields ``MessageUUID``, ``Status`` = queued, sent, delivered,
undelivered, failed, ``ErrorCode``, ``From``, ``To`` ...) become ``DeliveryReport``;
inbound SMS (``From``, ``To``, ``Text``, ``MessageUUID``, ``Type=sms``) ``InboundMessage``.
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

SIGNATURE = "x-plivo-signature-v3"
NONCE = "x-plivo-signature-v3-nonce"
SIGNATURE_V2 = "x-plivo-signature-v2"
NONCE_V2 = "x-plivo-signature-v2-nonce"
#: Plivo Status -> our report status; "queued" is not reported.
STATUS_MAP = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "rejected": "failed",
}
#: Plivo SMS error codes meaning the number cannot receive texts: 50 invalid destination
#: number, 70 destination permanently unavailable.
UNUSABLE_ERRORS = frozenset({"50", "70"})
#: 200: the destination replied STOP to this source number.
OPTED_OUT_ERRORS = frozenset({"200"})


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _sorted_query(params: dict[str, list[str]]) -> str:
    return "&".join(f"{k}={v}" for k in sorted(params) for v in sorted(params[k]))


def base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """What Plivo signs for a request to ``url`` carrying POST ``params``."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = _grouped(parse_qsl(parts.query, keep_blank_values=True))
    if method.upper() == "GET":
        query_string = _sorted_query(query)
        return f"{base}?{query_string}" if query_string else base
    post = _grouped(params)
    query_string = _sorted_query(query)
    if query_string:
        base += f"?{query_string}" + ("." if post else "")
    elif post:
        base += "?"
    return base + "".join(f"{k}{v}" for k in sorted(post) for v in sorted(post[k]))


def expected_signature(token: str, base: str, nonce: str) -> str:
    digest = hmac.new(token.encode(), f"{base}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def expected_signature_v2(token: str, url: str, nonce: str) -> str:
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    digest = hmac.new(token.encode(), (base + nonce).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def validate(
    token: str,
    method: str,
    url: str,
    params: Iterable[tuple[str, str]],
    signature: str | None,
    nonce: str | None,
) -> None:
    """Raise ``SignatureError`` unless one of ``signature``'s values is Plivo's."""
    if not signature or not nonce:
        raise SignatureError("missing X-Plivo-Signature-V3 or X-Plivo-Signature-V3-Nonce header")
    expected = expected_signature(token, base_string(method, url, params), nonce).encode()
    if not any(hmac.compare_digest(expected, s.strip().encode()) for s in signature.split(",")):
        raise SignatureError("X-Plivo-Signature-V3 does not match (check ORDERBELL_PUBLIC_URL)")


def form_params(request: CallbackRequest) -> list[tuple[str, str]]:
    if request.method.upper() == "GET":
        return []
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        raise PayloadError("Plivo callbacks are form-encoded; JSON is not expected")
    try:
        return parse_qsl(request.body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise PayloadError("form body is not UTF-8") from None


def verify_request(token: str, request: CallbackRequest, *, accept_v2: bool = False) -> None:
    v2, v2_nonce = request.headers.get(SIGNATURE_V2), request.headers.get(NONCE_V2)
    if accept_v2 and not request.headers.get(SIGNATURE) and v2 and v2_nonce:
        expected = expected_signature_v2(token, request.url, v2_nonce).encode()
        if not hmac.compare_digest(expected, v2.strip().encode()):
            raise SignatureError("X-Plivo-Signature-V2 does not match (check ORDERBELL_PUBLIC_URL)")
        return
    validate(
        token,
        request.method,
        request.url,
        form_params(request),
        request.headers.get(SIGNATURE),
        request.headers.get(NONCE),
    )


def _fields(request: CallbackRequest) -> dict[str, str]:
    fields: dict[str, str] = {}
    pairs = parse_qsl(urlsplit(request.url).query) if request.method.upper() == "GET" else []
    for name, value in [*pairs, *form_params(request)]:
        fields.setdefault(name, value)
    return fields


def parse_request(request: CallbackRequest) -> Callback:
    """A status callback becomes a DeliveryReport; an incoming SMS an InboundMessage."""
    fields = _fields(request)
    uuid = fields.get("MessageUUID") or fields.get("MessageUuid")
    if not uuid:
        raise PayloadError("Plivo callback without MessageUUID")
    status = fields.get("Status", "").lower()
    if not status and "Text" in fields:
        inbound = InboundMessage(
            provider_message_id=uuid,
            sender=_e164(fields.get("From", "")),
            recipient=_e164(fields.get("To", "")),
            text=fields.get("Text", ""),
            received_at=request.now,
        )
        return Callback(inbound=(inbound,), reply=CallbackReply(200))
    if not status:
        raise PayloadError("Plivo callback with neither Status nor Text")
    ours = STATUS_MAP.get(status)
    if ours is None:
        return Callback(reply=CallbackReply(200))
    code = fields.get("ErrorCode") or None
    if code in ("0", "000"):
        code = None
    report = DeliveryReport(
        provider_message_id=uuid,
        status=ours,
        raw_status=status,
        occurred_at=request.now,
        error_code=code,
        error=f"Plivo error {code}" if code else None,
        contact_unusable=code in UNUSABLE_ERRORS,
        opted_out=code in OPTED_OUT_ERRORS,
        event_id=f"{uuid}:{status}",
    )
    return Callback(reports=(report,), reply=CallbackReply(200))


def _e164(number: str) -> str:
    """Plivo sends numbers without ``+``; ours are E.164."""
    number = number.strip()
    return "+" + number if number.isdigit() and len(number) > 6 else number


__all__ = [
    "base_string",
    "expected_signature",
    "expected_signature_v2",
    "parse_request",
    "validate",
]
