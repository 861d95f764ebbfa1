"""A strict loopback Twilio Calls API (2010-04-01): ``FakeTwilio`` plus the Calls resource.

``POST /2010-04-01/Accounts/{AccountSid}/Calls.json``, form-encoded, HTTP Basic auth,
parameters checked against the Calls create schema of Twilio's own OpenAPI spec (the same
``specs/twilio_api_v2010.json`` the Messages fake reads). Refused as Twilio refuses them:

* credentials, account path, method and unknown paths as for Messages (20003, 20004, 20404)
* a parameter the spec does not list, a repeated one, or a value that does not fit its
  schema -> 400, 70002 (as the Messages fake does: the real API ignores unknown names)
* no To -> 21201; To not E.164 -> 21211; no From -> 21213; From not a number of this
  account (``voice_numbers``) -> 21210 (not a verified caller id)
* none of Url, Twiml, ApplicationSid -> 21205; a Twiml over 4,000 characters -> 32018
  (the spec: "Max 4000 characters"); a Twiml that is not well-formed XML with a
  ``<Response>`` root -> 12100 (document parse failure); Timeout outside 1-600 -> 21208;
  MachineDetection not Enable/DetectMessageEnd or a StatusCallbackEvent outside
  initiated/ringing/answered/completed -> 70002; StatusCallback not an http(s) URL -> 21609

The codes 21201/21205/21208/21210/21213 follow Twilio's error dictionary as recalled,
not checked against a live account.

Success is ``201`` with a Call JSON (sid ``CA`` + 32 hex, status ``queued``). Calls
received are kept in ``calls``, with the parsed TwiML in ``calls[sid]["_say"]``.
"""

from __future__ import annotations

import re
import secrets
import xml.etree.ElementTree as ET  # parses TwiML we generated ourselves, in tests
from email.utils import formatdate
from functools import cache
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import RecordedRequest, json_response
from tests.fakes.specs import request_schema
from tests.fakes.twilio import E164_RE, SPEC_FILE, FakeTwilio

CALLS_PATH = "/2010-04-01/Accounts/{AccountSid}/Calls.json"
MAX_TWIML_CHARS = 4000
DEFAULT_VOICE_NUMBERS = "+15017122661"
CALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})


@cache
def call_params() -> dict[str, dict[str, Any]]:
    """The Calls create parameters and their schemas, from Twilio's spec."""
    schema = request_schema(SPEC_FILE, CALLS_PATH, "post", "application/x-www-form-urlencoded")
    return schema["properties"]  # type: ignore[no-any-return]


def parse_twiml(document: str) -> ET.Element | None:
    """The TwiML's root element, or None when it is not well-formed ``<Response>`` XML."""
    try:
        root = ET.fromstring(document)  # TwiML the adapter under test generated
    except ET.ParseError:
        return None
    return root if root.tag == "Response" else None


class FakeTwilioVoice(FakeTwilio):
    """Twilio's Messages and Calls resources on one loopback server."""

    name: ClassVar[str] = "twilio_voice"

    def __init__(self, *, voice_numbers: str = DEFAULT_VOICE_NUMBERS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: the caller ids this account may use (comma-separated in process options)
        self.voice_numbers = frozenset(n.strip() for n in voice_numbers.split(",") if n.strip())
        self.call_params = call_params()
        self.calls: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        super().add_routes()
        self.route("*", CALLS_PATH, self.create_call)

    async def create_call(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        checked = self.form_request(request, rec, self.call_params)
        if isinstance(checked, web.Response):
            return checked
        pairs, problems = checked
        fields = dict(pairs)

        to = fields.get("To", "")
        if not to:
            return self.error_response(400, "No 'To' number is specified", 21201)
        if not E164_RE.match(to):
            return self.error_response(
                400, f"The phone number you are attempting to call, {to}, is not valid.", 21211
            )
        sender = fields.get("From", "")
        if not sender:
            return self.error_response(400, "No 'From' number is specified", 21213)
        if sender not in self.voice_numbers:
            return self.error_response(
                400,
                f"The source phone number provided, {sender}, is not yet verified for your "
                "account.",
                21210,
            )
        twiml = fields.get("Twiml")
        if not twiml and not fields.get("Url") and not fields.get("ApplicationSid"):
            return self.error_response(400, "Url parameter is required.", 21205)
        say: list[dict[str, Any]] = []
        if twiml is not None and not fields.get("Url"):
            if len(twiml) > MAX_TWIML_CHARS:
                return self.error_response(
                    400, "Twiml parameter exceeds the maximum of 4000 characters.", 32018
                )
            root = parse_twiml(twiml)
            if root is None:
                return self.error_response(400, "Document parse failure", 12100)
            say = [{"text": el.text or "", **el.attrib} for el in root.iter("Say")]
        timeout = fields.get("Timeout")
        if timeout is not None and re.fullmatch(r"\d+", timeout) and not 1 <= int(timeout) <= 600:
            return self.error_response(400, "Timeout must be between 1 and 600", 21208)
        machine = fields.get("MachineDetection")
        if machine is not None and machine not in ("Enable", "DetectMessageEnd"):
            problems.append("MachineDetection must be Enable or DetectMessageEnd")
        for name, value in pairs:
            if name == "StatusCallbackEvent" and value not in CALL_EVENTS:
                problems.append(f"StatusCallbackEvent {value} is not a call progress event")
        callback = fields.get("StatusCallback")
        if callback is not None and not re.match(r"^https?://[^/\s]+", callback):
            return self.error_response(
                400, f"The StatusCallback URL {callback} is not a valid URL.", 21609
            )
        if problems:
            return self.error_response(400, "; ".join(problems), 70002)

        sid = "CA" + secrets.token_hex(16)
        now = formatdate(usegmt=False).replace("-0000", "+0000")
        base = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}"
        call: dict[str, Any] = {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": sender,
            "from_formatted": sender,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + secrets.token_hex(16),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {"recordings": f"{base}/Recordings.json"},
            "to": to,
            "to_formatted": to,
            "trunk_sid": None,
            "uri": f"{base}.json",
            "queue_time": "0",
        }
        self.calls[sid] = {**call, "_say": say, "_fields": pairs}
        return json_response(call, 201)
