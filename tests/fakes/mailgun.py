"""A strict loopback Mailgun Messages API.

``POST /v3/{domain}/messages`` with HTTP Basic auth (``api`` : API key), body
``multipart/form-data`` (or ``application/x-www-form-urlencoded``, which Mailgun also
reads). Refused as Mailgun's OpenAPI description documents (400/401/429/500 shapes):

* missing or wrong credentials -> 401 with the plain-text body ``Forbidden``
* a domain this fake does not host -> 404 ``{"message": "Domain not found: ..."}``
* another method -> 405; another path -> 404
* a body that is neither form encoding (JSON included) reads as no fields: ``from
  parameter is missing``; then no ``to`` / ``subject``; none of ``text``, ``html``,
  ``amp-html``, ``template`` ("Need at least one of ..."); an address that does not
  parse; more than 3 ``o:tag`` or one over 128 characters or not ASCII; an ``h:`` name
  that is not a header field name or a value with a line break; send options (``o:``,
  ``h:``, ``v:``, ``t:``) over 16 KB in total; a parameter Mailgun does not list (the
  real API may ignore it; the fake refuses so a typo fails loudly) -> 400 ``{"message"}``

Success is ``200`` with ``{"id": "<timestamp.n.n@domain>", "message": "Queued. Thank
you."}``. Accepted messages are kept in ``messages`` (by id without brackets) as the
ordered list of (name, value) pairs.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses, parseaddr
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_API_KEY = "fake-mailgun-api-key-0001"
DEFAULT_DOMAIN = "mg.bistro.example"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")
MAX_OPTIONS_BYTES = 16 * 1024
MAX_TAGS = 3
PLAIN_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "text",
        "html",
        "amp-html",
        "template",
        "attachment",
        "inline",
        "recipient-variables",
    }
)
KNOWN_OPTIONS = frozenset(
    {
        "o:tag",
        "o:testmode",
        "o:deliverytime",
        "o:deliverytime-optimize-period",
        "o:time-zone-localize",
        "o:dkim",
        "o:secondary-dkim",
        "o:secondary-dkim-public",
        "o:tracking",
        "o:tracking-clicks",
        "o:tracking-opens",
        "o:tracking-pixel-location-top",
        "o:require-tls",
        "o:skip-verification",
        "o:sending-ip",
        "o:sending-ip-pool",
        "o:archive-to",
        "o:suppress-headers",
        "t:version",
        "t:text",
        "t:variables",
    }
)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]] | None:
    """The (name, value) pairs of a ``multipart/form-data`` body, in order; None if broken."""
    document = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    message = BytesParser(policy=default_policy).parsebytes(document)
    if not message.is_multipart():
        return None
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return None
        content = part.get_content()
        pairs.append((name, content if isinstance(content, str) else content.decode()))
    return pairs


class FakeMailgun(FakeServer):
    name: ClassVar[str] = "mailgun"

    def __init__(
        self, *, api_key: str = DEFAULT_API_KEY, domain: str = DEFAULT_DOMAIN, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.domains = frozenset(d.strip().lower() for d in domain.split(",") if d.strip())
        self.messages: dict[str, list[tuple[str, str]]] = {}

    def add_routes(self) -> None:
        self.route("*", "/v3/{domain}/messages", self.send_message)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if status == 401:
            return web.Response(status=401, text="Forbidden")
        if message is None:
            message = {
                404: "Not Found",
                405: "Method Not Allowed",
                429: "Domain is not allowed to send: account-requests-per-sec limit exceeded, "
                "try again after 120 seconds",
            }.get(status, "Internal Server Error" if status >= 500 else "Bad Request")
        return json_response({"message": message}, status)

    def _authenticated(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == "api" and secrets.compare_digest(password, self.api_key)

    def form_pairs(self, rec: RecordedRequest) -> list[tuple[str, str]]:
        if rec.content_type == "multipart/form-data":
            pairs = parse_multipart(rec.headers.get("content-type", ""), rec.body) or []
            rec.pairs = pairs
            rec.fields = _as_fields(pairs)
            return pairs
        if rec.content_type == "application/x-www-form-urlencoded":
            return rec.pairs
        return []

    async def send_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if not self._authenticated(rec.headers.get("authorization", "")):
            return self.error_response(401)
        domain = request.match_info["domain"].lower()
        if domain not in self.domains:
            return self.error_response(404, f"Domain not found: {domain}")
        if request.method != "POST":
            return self.error_response(405)
        pairs = self.form_pairs(rec)
        problem = self._problem(pairs)
        if problem:
            return self.error_response(400, problem)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        message_id = f"{stamp}.{secrets.randbelow(10**5)}.{secrets.randbelow(10**5)}@{domain}"
        self.messages[message_id] = pairs
        return json_response({"id": f"<{message_id}>", "message": "Queued. Thank you."}, 200)

    @staticmethod
    def _problem(pairs: list[tuple[str, str]]) -> str | None:
        fields: dict[str, list[str]] = {}
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        for name in fields:
            if name in PLAIN_FIELDS or name in KNOWN_OPTIONS:
                continue
            if name.startswith(("v:", "h:")) and len(name) > 2:
                continue
            return f"unknown parameter {name}"
        for required in ("from", "to", "subject"):
            if not any(v.strip() for v in fields.get(required, [])):
                return f"{required} parameter is missing"
        if not any(fields.get(body) for body in ("text", "html", "amp-html", "template")):
            return (
                "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
            )
        if len(fields["from"]) > 1 or not EMAIL_RE.match(parseaddr(fields["from"][0])[1]):
            return "from parameter is not a valid address. please check documentation"
        for kind in ("to", "cc", "bcc"):
            for _, address in getaddresses(fields.get(kind, [])):
                if not EMAIL_RE.match(address):
                    return f"{kind} parameter is not a valid address. please check documentation"
        tags = fields.get("o:tag", [])
        if len(tags) > MAX_TAGS:
            return f"too many tags: at most {MAX_TAGS} per message"
        if any(not t or len(t) > 128 or not t.isascii() for t in tags):
            return "tag must be 1-128 ASCII characters"
        for value in fields.get("o:testmode", []):
            if value.lower() not in ("yes", "no", "true", "false"):
                return "o:testmode must be yes or no"
        options = 0
        for name, value in pairs:
            if name.startswith("h:"):
                if not HEADER_NAME_RE.match(name[2:]):
                    return f"invalid header name {name[2:]}"
                if "\r" in value or "\n" in value:
                    return f"header {name[2:]} contains a line break"
            if name[:2] in ("o:", "h:", "v:", "t:"):
                options += len(name.encode()) + len(value.encode())
        if options > MAX_OPTIONS_BYTES:
            return "Send options (parameters starting with o:, h:, or v:) are limited to 16KB total"
        return None


def _as_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            existing = fields[name]
            fields[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            fields[name] = value
    return fields
