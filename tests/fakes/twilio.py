"""A strict loopback Twilio Messages API (2010-04-01), checked against Twilio's own spec.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded, HTTP Basic auth.
Refused as Twilio refuses them (status, Twilio error code, Twilio's error JSON):

* missing or wrong credentials, or another account's path -> 401, 20003
* another method -> 405, 20004; another path -> 404, 20404
* a parameter the spec does not list, a repeated one, or a value that does not fit its
  spec schema (type, enum, pattern, length) -> 400, 70002. The real API ignores unknown
  names; the fake refuses them so a typo in an adapter fails loudly.
* no To (also what a JSON body gets: Twilio reads only the form) -> 21604; To not E.164
  -> 21211; no From and no MessagingServiceSid -> 21603; From not a number, short code or
  alphanumeric sender id -> 21212; neither Body, MediaUrl nor ContentSid -> 21602
  (21619 with a Messaging Service); Body over 1600 characters -> 21617; StatusCallback
  not an http(s) URL -> 21609.

Twilio's magic test numbers behave as with test credentials: To +15005550001 -> 21211,
+15005550002 -> 21612, +15005550003 -> 21408, +15005550004 -> 21610 (unsubscribed),
+15005550009 -> 21614 (not a mobile number).

Success is ``201`` with a Message JSON like Twilio's (sid ``SM`` + 32 hex, status
``queued``, or ``accepted`` through a Messaging Service, ``num_segments`` a string).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
from email.utils import formatdate
from functools import cache
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response
from tests.fakes.specs import check_form_params, request_schema

SPEC_FILE = "twilio_api_v2010.json"
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token-0001"

ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")
E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE_RE = re.compile(r"^\d{5,6}$")
ALPHANUMERIC_SENDER_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
MAX_BODY_CHARS = 1600

#: Twilio's magic "To" numbers (test credentials): the error each one produces.
MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


@cache
def message_params() -> dict[str, dict[str, Any]]:
    """The Messages create parameters and their schemas, from Twilio's spec."""
    schema = request_schema(SPEC_FILE, MESSAGES_PATH, "post", "application/x-www-form-urlencoded")
    return schema["properties"]  # type: ignore[no-any-return]


def segments(body: str) -> int:
    """How many SMS segments ``body`` takes (GSM-7 160/153, else UCS-2 70/67)."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in body):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return math.ceil(units / multi)


class FakeTwilio(FakeServer):
    name: ClassVar[str] = "twilio"

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.params = message_params()  # load the spec now, not on the first request
        self.messages: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        self.route("*", MESSAGES_PATH, self.create_message)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if code is None:
            code = {401: 20003, 404: 20404, 405: 20004, 429: 20429}.get(
                status, 20500 if status >= 500 else status
            )
        if message is None:
            message = {
                401: "Authenticate",
                404: "The requested resource was not found",
                429: "Too Many Requests",
                500: "Internal Server Error",
                503: "Service Unavailable",
            }.get(status, "Error")
        return json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status,
        )

    def _authenticated(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    def form_request(
        self, request: web.Request, rec: RecordedRequest, params: Any
    ) -> tuple[list[tuple[str, str]], list[str]] | web.Response:
        """What every 2010-04-01 create checks first (account in the path, Basic auth,
        POST, no unknown parameters): the form pairs and the remaining problems, or the
        error answer."""
        account = request.match_info["AccountSid"]
        if not ACCOUNT_SID_RE.match(account):
            return self.error_response(
                404, f"The requested resource {request.path} was not found", 20404
            )
        if not self._authenticated(rec.headers.get("authorization", "")):
            return self.error_response(401, "Authenticate", 20003)
        if account != self.account_sid:
            return self.error_response(401, "Authenticate", 20003)
        if request.method != "POST":
            return self.error_response(405, "Method not allowed", 20004)
        # Twilio reads only a form body: anything else arrives as no parameters at all.
        pairs = rec.pairs if rec.content_type == "application/x-www-form-urlencoded" else []
        problems = check_form_params(pairs, params)
        unknown = [p for p in problems if p.startswith("unknown")]
        if unknown:
            return self.error_response(400, "; ".join(unknown), 70002)
        return pairs, problems

    async def create_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        checked = self.form_request(request, rec, self.params)
        if isinstance(checked, web.Response):
            return checked
        pairs, problems = checked
        fields = dict(pairs)

        to = fields.get("To", "")
        if not to:
            return self.error_response(400, "A 'To' phone number is required.", 21604)
        if not E164_RE.match(to):
            return self.error_response(
                400, f"The 'To' number {to} is not a valid phone number.", 21211
            )

        sender = fields.get("From")
        service = fields.get("MessagingServiceSid")
        if not sender and not service:
            return self.error_response(400, "A 'From' phone number is required.", 21603)
        if sender and not (
            E164_RE.match(sender)
            or SHORT_CODE_RE.match(sender)
            or ALPHANUMERIC_SENDER_RE.match(sender)
        ):
            return self.error_response(
                400,
                f"The 'From' number {sender} is not a valid phone number, shortcode, "
                "or alphanumeric sender ID.",
                21212,
            )
        if service and not MESSAGING_SERVICE_SID_RE.match(service):
            return self.error_response(
                400, f"The Messaging Service Sid {service} is invalid.", 21701
            )

        body = fields.get("Body", "")
        if not body and "MediaUrl" not in fields and "ContentSid" not in fields:
            if service:
                return self.error_response(
                    400, "A Message Body, Media URL or Content SID is required", 21619
                )
            return self.error_response(400, "Message body is required.", 21602)
        if len(body) > MAX_BODY_CHARS:
            return self.error_response(
                400,
                "The concatenated message body exceeds the 1600 character limit.",
                21617,
            )
        callback = fields.get("StatusCallback")
        if callback is not None and not re.match(r"^https?://[^/\s]+", callback):
            return self.error_response(
                400, f"The StatusCallback URL {callback} is not a valid URL.", 21609
            )

        if problems:
            return self.error_response(400, "; ".join(problems), 70002)

        if to in MAGIC_TO:
            code, text = MAGIC_TO[to]
            return self.error_response(400, text, code)

        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=False).replace("-0000", "+0000")
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        message: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": service,
            "num_media": str(sum(1 for name, _ in pairs if name == "MediaUrl")),
            "num_segments": "0" if service and not sender else str(segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": to,
            "uri": f"{base}.json",
        }
        self.messages[sid] = message
        return json_response(message, 201)
