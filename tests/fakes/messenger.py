"""A strict loopback Messenger Send API (``/{version}/{page_id}/messages``).

Meta publishes no machine-readable spec for the Send API; the checks follow its Send API
reference and its error-code page. The Page token travels as the ``access_token`` query
parameter (an ``Authorization: Bearer`` header is accepted too, as the Graph API does).

Refused (HTTP status, Graph ``code``/``error_subcode``):

* no or wrong token -> 401, 190; another page id -> 400, 100/33; unknown path -> 400,
  2500; another method or a body that is not JSON (or form) -> 400, 100;
* missing ``recipient.id``, ``messaging_type`` or ``message``; a ``messaging_type``
  outside RESPONSE/UPDATE/MESSAGE_TAG; ``MESSAGE_TAG`` without ``tag`` or with a tag other
  than CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE, ACCOUNT_UPDATE, HUMAN_AGENT; a
  ``tag`` without MESSAGE_TAG; ``message`` without text or attachment; text over 2000
  characters; unknown top-level fields -> 400, 100;
* a PSID the page does not know -> 400, 100/2018001 ("No matching user found");
* RESPONSE/UPDATE to a PSID in ``closed_windows`` -> 400, 10/2018278 (outside window);
* a PSID in ``unavailable`` -> 400, 551 ("This person isn't available right now").

Success is ``200`` with ``{"recipient_id", "message_id": "m_..."}``.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response
from tests.fakes.whatsapp import graph_error_body

DEFAULT_TOKEN = "EAAfake-messenger-page-token-0001"
DEFAULT_PAGE_ID = "1234567890123"
MAX_TEXT_CHARS = 2000
VERSION_RE = re.compile(r"^v\d+\.\d+$")
MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
TAGS = frozenset(
    {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"}
)
TOP_LEVEL = frozenset(
    {
        "recipient",
        "messaging_type",
        "message",
        "tag",
        "notification_type",
        "persona_id",
        "sender_action",
    }
)


class FakeMessenger(FakeServer):
    name: ClassVar[str] = "messenger"

    def __init__(
        self, *, page_token: str = DEFAULT_TOKEN, page_id: str = DEFAULT_PAGE_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.page_token = page_token
        self.page_id = page_id
        #: PSIDs of people who wrote to the page; None accepts any numeric PSID
        self.known_psids: set[str] | None = None
        self.closed_windows: set[str] = set()
        self.unavailable: set[str] = set()
        self.sent: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        self.route("*", "/{version}/{page_id}/messages", self.messages)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if code is None:
            code = {401: 190, 404: 2500, 429: 613}.get(status, 2 if status >= 500 else 100)
        if message is None:
            message = {
                190: "Invalid OAuth access token.",
                2500: "Unknown path components",
                613: "Calls to this API have exceeded the rate limit.",
                2: "An unexpected error has occurred. Please retry your request later.",
            }.get(code, "(#100) Invalid parameter")
        return json_response(_messenger_error(code, message), status)

    def _error(
        self, status: int, code: int, message: str, subcode: int | None = None
    ) -> web.Response:
        return json_response(_messenger_error(code, message, subcode), status)

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return self.error_response(400, "Unknown path components: " + request.path, 2500)

    def _token(self, request: web.Request, rec: RecordedRequest) -> str:
        token = request.query.get("access_token", "")
        if not token:
            scheme, _, bearer = rec.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                token = bearer
        return token

    async def messages(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if not VERSION_RE.match(request.match_info["version"]):
            return self.error_response(400, "Unknown path components", 2500)
        if not secrets.compare_digest(self._token(request, rec), self.page_token):
            return self.error_response(401)
        if request.match_info["page_id"] != self.page_id:
            return self._error(400, 100, "(#100) Unsupported post request.", 33)
        if request.method != "POST":
            return self._error(400, 100, f"(#100) Unsupported {request.method.lower()} request.")
        body = rec.fields
        if rec.content_type != "application/json" or not isinstance(body, dict):
            return self._error(400, 100, "(#100) The request body must be a JSON object")
        unknown = sorted(set(body) - TOP_LEVEL)
        if unknown:
            return self._error(400, 100, f"(#100) Unknown parameter: {unknown[0]}")
        recipient = body.get("recipient")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        if not isinstance(psid, str) or not psid:
            return self._error(400, 100, "(#100) The parameter recipient is required")
        messaging_type = body.get("messaging_type")
        if messaging_type not in MESSAGING_TYPES:
            return self._error(400, 100, "(#100) messaging_type is required and must be valid")
        tag = body.get("tag")
        if messaging_type == "MESSAGE_TAG" and tag not in TAGS:
            return self._error(400, 100, "(#100) Tag is invalid.")
        if messaging_type != "MESSAGE_TAG" and tag is not None:
            return self._error(400, 100, "(#100) tag requires messaging_type MESSAGE_TAG")
        message = body.get("message")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return self._error(400, 100, "(#100) The parameter message is required")
        text = message.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT_CHARS):
            return self._error(
                400, 100, "(#100) Length of param message[text] must be less than or equal to 2000"
            )
        if not psid.isdigit() or (self.known_psids is not None and psid not in self.known_psids):
            return self._error(400, 100, "(#100) No matching user found", 2018001)
        if psid in self.unavailable:
            return self._error(400, 551, "This person isn't available right now.", 1545041)
        if messaging_type != "MESSAGE_TAG" and psid in self.closed_windows:
            return self._error(
                400,
                10,
                "(#10) This message is sent outside of allowed window.",
                2018278,
            )
        message_id = "m_" + secrets.token_urlsafe(32)
        self.sent[message_id] = body
        return json_response({"recipient_id": psid, "message_id": message_id})


def _messenger_error(code: int, message: str, subcode: int | None = None) -> dict[str, Any]:
    body = graph_error_body(code, message, subcode=subcode)
    return body
