"""A strict loopback Plivo Message API.

``POST /v1/Account/{auth_id}/Message/`` with HTTP Basic auth (Auth ID : Auth Token) and
a JSON body. Refused as Plivo documents (``{"api_id", "error"}``, see
plivo.com/docs/messaging/api/response):

* missing or wrong credentials, or another account's path -> 401 ``authentication_failed``
* another method -> 405; another path (including no trailing slash) -> 404 ``not found``
* a body that is not a JSON object -> 400; a field Plivo does not list -> 400 (the real
  API may ignore unknown names; the fake refuses them so a typo fails loudly)
* no ``dst``; ``dst`` not digits starting with the country code, at most 14 once Plivo's
  sanitising strips ``/ - . + ( )`` and spaces; neither or both of ``src`` and
  ``powerpack_uuid``; ``src`` not such a number nor an alphanumeric id of at most 11;
  no ``text``; ``text`` over 1,600 GSM-7 or 737 UCS-2 characters; ``type`` not
  sms/mms/whatsapp; ``url`` not an http(s) URL; ``method`` not GET/POST; ``log`` not a
  boolean; ``src`` equal to ``dst`` -> 400

Success is ``202`` with ``{"api_id", "message": "message(s) queued", "message_uuid":
[...]}``, one uuid per ``<``-separated destination.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import uuid
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_AUTH_ID = "MAFAKEPLIVOAUTHID001"
DEFAULT_AUTH_TOKEN = "fake-plivo-auth-token-0001"
MESSAGE_PATH = "/v1/Account/{auth_id}/Message/"
AUTH_ID_RE = re.compile(r"^(MA|SA)[A-Za-z0-9]{18}$")
SANITISE_RE = re.compile(r"[/\-.+() \t]")
NUMBER_RE = re.compile(r"^[1-9]\d{3,13}$")
ALPHANUMERIC_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")
MAX_GSM_CHARS = 1600
MAX_UCS2_CHARS = 737
KNOWN_FIELDS = frozenset(
    {
        "src",
        "dst",
        "text",
        "type",
        "url",
        "method",
        "log",
        "trackable",
        "powerpack_uuid",
        "media_urls",
        "media_ids",
        "message_expiry",
        "template",
        "dlt_entity_id",
        "dlt_template_id",
        "dlt_template_category",
    }
)

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\f"
)


def sanitise(number: str) -> str:
    return SANITISE_RE.sub("", number)


class FakePlivo(FakeServer):
    name: ClassVar[str] = "plivo"

    def __init__(
        self,
        *,
        auth_id: str = DEFAULT_AUTH_ID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.messages: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        self.route("*", "/v1/Account/{auth_id}/Message/", self.send_message)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if message is None:
            message = {
                400: "invalid_parameter",
                401: "authentication_failed",
                404: "not found",
                405: "method not allowed",
                429: "rate_limit_exceeded",
            }.get(status, "server error" if status >= 500 else "error")
        return json_response({"api_id": str(uuid.uuid4()), "error": message}, status)

    def _authenticated(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.auth_id) and secrets.compare_digest(
            password, self.auth_token
        )

    async def send_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        account = request.match_info["auth_id"]
        if not self._authenticated(rec.headers.get("authorization", "")):
            return self.error_response(401)
        if account != self.auth_id or not AUTH_ID_RE.match(account):
            return self.error_response(401)
        if request.method != "POST":
            return self.error_response(405)
        body = rec.fields
        if rec.content_type != "application/json" or not isinstance(body, dict):
            return self.error_response(400, "body must be a JSON object")
        unknown = sorted(set(body) - KNOWN_FIELDS)
        if unknown:
            return self.error_response(400, f"unknown parameter(s): {', '.join(unknown)}")
        problem = self._problem(body)
        if problem:
            return self.error_response(400, problem)
        destinations = [sanitise(d) for d in body["dst"].split("<")]
        uuids = [str(uuid.uuid4()) for _ in destinations]
        for message_uuid, dst in zip(uuids, destinations, strict=True):
            self.messages[message_uuid] = {**body, "dst": dst}
        return json_response(
            {"api_id": str(uuid.uuid4()), "message": "message(s) queued", "message_uuid": uuids},
            202,
        )

    def _problem(self, body: dict[str, Any]) -> str | None:
        for name in ("src", "dst", "text", "type", "url", "method", "powerpack_uuid"):
            if name in body and not isinstance(body[name], str):
                return f"{name} must be a string"
        if "log" in body and not isinstance(body["log"], bool):
            return "log must be a boolean"
        dst = body.get("dst")
        if not dst:
            return "dst parameter not present"
        for number in dst.split("<"):
            if not NUMBER_RE.match(sanitise(number)):
                return f"invalid 'dst' parameter {number}"
        src, pack = body.get("src"), body.get("powerpack_uuid")
        if (src is None) == (pack is None):
            return "specify either powerpack_uuid or src in request params to send a message"
        if src is not None:
            clean = sanitise(src)
            if not (NUMBER_RE.match(clean) or ALPHANUMERIC_RE.match(src)):
                return f"invalid 'src' parameter {src}"
            if clean in {sanitise(d) for d in dst.split("<")}:
                return "destination number cannot be same as source number"
        if body.get("type", "sms") not in ("sms", "mms", "whatsapp"):
            return "type must be one of sms, mms, whatsapp"
        text = body.get("text")
        if not text:
            return "text parameter not present"
        limit = MAX_GSM_CHARS if all(ch in GSM7 for ch in text) else MAX_UCS2_CHARS
        if len(text) > limit:
            return f"text exceeds the limit of {limit} characters"
        url = body.get("url")
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            return "invalid 'url' parameter"
        if body.get("method", "POST") not in ("GET", "POST"):
            return "method must be GET or POST"
        return None
