"""A strict loopback Freshdesk API v2: ticket replies and outbound emails.

``POST /api/v2/tickets/{id}/reply`` and ``POST /api/v2/tickets/outbound_email`` with HTTP
Basic auth (API key : ``X``). Checks follow the Freshdesk API reference and Freshworks'
SDK models (outbound email needs ``email``, ``subject`` and ``email_config_id``):

* no or wrong key -> 401 ``{"code": "invalid_credentials", "message"}``;
* another method -> 405; a body that is not JSON -> 400 ``invalid_json``; an unknown
  ticket -> 404 (empty body, as Freshdesk answers);
* validation errors -> 400 ``{"description": "Validation failed", "errors": [{"field",
  "message", "code"}]}`` with codes ``missing_field``, ``invalid_value``, ``datatype_mismatch``,
  ``invalid_field`` (an unknown field);
* an ``email_config_id`` other than the fake's -> 400 ``invalid_value``.

Answers carry ``X-RateLimit-Total``, ``-Remaining`` and ``-Used-CurrentRequest``. Success is
``201``: the conversation (reply) or the ticket (outbound email).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_API_KEY = "FakeFreshdeskKey0001"
DEFAULT_EMAIL_CONFIG = 5000012345
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
REPLY_FIELDS = frozenset(
    {"body", "from_email", "user_id", "cc_emails", "bcc_emails", "attachments"}
)
OUTBOUND_FIELDS = frozenset(
    {
        "email",
        "subject",
        "description",
        "email_config_id",
        "status",
        "priority",
        "name",
        "type",
        "cc_emails",
        "bcc_emails",
        "tags",
        "custom_fields",
        "due_by",
        "fr_due_by",
        "group_id",
        "attachments",
    }
)

Problem = tuple[str, str, str]  # field, message, code


class FakeFreshdesk(FakeServer):
    name: ClassVar[str] = "freshdesk"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        email_config_id: int = DEFAULT_EMAIL_CONFIG,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.email_config_id = email_config_id
        self.tickets: dict[int, list[dict[str, Any]]] = {1001: []}
        self._next = 5000

    def add_routes(self) -> None:
        self.route("*", "/api/v2/tickets/outbound_email", self.outbound)
        self.route("*", "/api/v2/tickets/{ticket:\\d+}/reply", self.reply)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if status == 401:
            return json_response(
                {
                    "code": "invalid_credentials",
                    "message": message or "You have to be logged in to perform this action.",
                },
                401,
            )
        body = {"description": message or "Error", "errors": []}
        if code:
            body["errors"] = [{"field": "", "message": message or "", "code": code}]
        return json_response(body, status)

    def _headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Total": "3000",
            "X-RateLimit-Remaining": "2999",
            "X-RateLimit-Used-CurrentRequest": "1",
        }

    def _authenticate(self, rec: RecordedRequest) -> bool:
        scheme, _, encoded = rec.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, _password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.api_key)

    def _invalid(self, problems: list[Problem]) -> web.Response:
        errors = [{"field": f, "message": m, "code": c} for f, m, c in problems]
        return json_response(
            {"description": "Validation failed", "errors": errors}, 400, self._headers()
        )

    def _body(self, request: web.Request, rec: RecordedRequest) -> web.Response | dict[str, Any]:
        if not self._authenticate(rec):
            return self.error_response(401)
        if request.method != "POST":
            return web.Response(status=405)
        if rec.content_type != "application/json" or not isinstance(rec.fields, dict):
            return json_response(
                {"code": "invalid_json", "message": "Request body has invalid json format"}, 400
            )
        return rec.fields

    async def reply(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        body = self._body(request, rec)
        if isinstance(body, web.Response):
            return body
        ticket = int(request.match_info["ticket"])
        problems: list[Problem] = [
            (k, "Unexpected/invalid field in request", "invalid_field")
            for k in sorted(set(body) - REPLY_FIELDS)
        ]
        if not isinstance(body.get("body"), str) or not body["body"].strip():
            problems.append(("body", "It should be a/an String", "missing_field"))
        if problems:
            return self._invalid(problems)
        if ticket not in self.tickets:
            return web.Response(status=404)
        self._next += 1
        conversation = {
            "id": self._next,
            "body": body["body"],
            "body_text": re.sub(r"<[^>]+>", "", body["body"]),
            "ticket_id": ticket,
            "user_id": 43,
            "from_email": "support@bistro.freshdesk.com",
            "to_emails": ["guest@example.com"],
            "created_at": datetime.now(UTC).isoformat(),
        }
        self.tickets[ticket].append(conversation)
        return json_response(conversation, 201, self._headers())

    async def outbound(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        body = self._body(request, rec)
        if isinstance(body, web.Response):
            return body
        problems: list[Problem] = [
            (k, "Unexpected/invalid field in request", "invalid_field")
            for k in sorted(set(body) - OUTBOUND_FIELDS)
        ]
        for name in ("email", "subject"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                problems.append((name, "It should be a/an String", "missing_field"))
        if "email" in body and isinstance(body["email"], str) and not EMAIL_RE.match(body["email"]):
            problems.append(
                ("email", "It should be in the 'valid email address' format", "invalid_value")
            )
        config = body.get("email_config_id")
        if config is None:
            problems.append(
                ("email_config_id", "It should be a/an Positive Integer", "missing_field")
            )
        elif not isinstance(config, int) or isinstance(config, bool):
            problems.append(
                ("email_config_id", "It should be a/an Positive Integer", "datatype_mismatch")
            )
        elif config != self.email_config_id:
            problems.append(
                (
                    "email_config_id",
                    "There is no email_config matching the given email_config_id",
                    "invalid_value",
                )
            )
        if body.get("status", 2) not in (2, 3, 4, 5):
            problems.append(
                ("status", "It should be one of these values: '2,3,4,5'", "invalid_value")
            )
        if body.get("priority", 1) not in (1, 2, 3, 4):
            problems.append(
                ("priority", "It should be one of these values: '1,2,3,4'", "invalid_value")
            )
        if problems:
            return self._invalid(problems)
        self._next += 1
        ticket_id = self._next
        self.tickets[ticket_id] = []
        ticket = {
            "id": ticket_id,
            "subject": body["subject"],
            "description": body.get("description", ""),
            "email_config_id": config,
            "status": body.get("status", 5),
            "priority": body.get("priority", 1),
            "source": 10,
            "requester_id": 44,
            "created_at": datetime.now(UTC).isoformat(),
        }
        return json_response(ticket, 201, self._headers())
