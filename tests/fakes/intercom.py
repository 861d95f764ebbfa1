"""A strict loopback Intercom "Create a message" (``POST /messages``).

Checks follow Intercom's REST reference and its official client's types. Errors are
``{"type": "error.list", "request_id", "errors": [{"code", "message"}]}``:

* no or wrong token -> 401 ``unauthorized`` ("Access Token Invalid");
* an ``Intercom-Version`` the fake does not know -> 400 ``intercom_version_invalid``;
* another method -> 405 ``method_not_allowed``; not JSON -> 400 ``bad_request``;
* ``message_type`` outside inapp/email, an email without ``subject``, no ``body``, a
  ``from`` that is not ``{"type": "admin", "id"}``, a ``to`` without ``type`` (user, lead,
  contact) and ``id`` or ``email``, an unknown field -> 400 ``parameter_invalid``;
* an admin other than ``admin_id`` -> 404 ``admin_not_found``; a contact not in
  ``contacts`` (when given) -> 404 ``not_found``.

Authenticated answers carry ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (epoch).
Success is ``200`` with the admin message (``type``, ``id``, ``created_at``, ...).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_TOKEN = "dG9rOmZha2UtaW50ZXJjb20tdG9rZW4tMDAwMQ=="
DEFAULT_ADMIN = "394051"
VERSIONS = frozenset(
    {
        "2.7",
        "2.8",
        "2.9",
        "2.10",
        "2.11",
        "2.12",
        "2.13",
        "2.14",
        "2.15",
        "2.16",
        "2.17",
        "Unstable",
    }
)
FIELDS = frozenset(
    {
        "message_type",
        "subject",
        "body",
        "template",
        "from",
        "to",
        "created_at",
        "create_conversation_without_contact_reply",
    }
)


class FakeIntercom(FakeServer):
    name: ClassVar[str] = "intercom"

    def __init__(
        self, *, access_token: str = DEFAULT_TOKEN, admin_id: str = DEFAULT_ADMIN, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.admin_id = admin_id
        #: known contact ids; None accepts any
        self.contacts: set[str] | None = None
        self.messages: dict[str, dict[str, Any]] = {}
        self._next_id = 2001

    def add_routes(self) -> None:
        self.route("*", "/messages", self.create)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        code = code or {
            400: "bad_request",
            401: "unauthorized",
            404: "not_found",
            429: "rate_limit_exceeded",
        }.get(status, "server_error" if status >= 500 else "client_error")
        body = {
            "type": "error.list",
            "request_id": secrets.token_hex(10),
            "errors": [{"code": code, "message": message or code}],
        }
        return json_response(body, status)

    async def create(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token, self.access_token):
            return self.error_response(401, "Access Token Invalid", "unauthorized")
        version = rec.headers.get("intercom-version")
        if version is not None and version not in VERSIONS:
            return self.error_response(
                400, f"Requested version {version} is not valid", "intercom_version_invalid"
            )
        if request.method != "POST":
            return self.error_response(405, "Method not allowed", "method_not_allowed")
        body = rec.fields if rec.content_type == "application/json" else None
        if not isinstance(body, dict):
            return self.error_response(400, "Request body must be JSON", "bad_request")
        problem = self._problem(body)
        if problem:
            return self.error_response(400, problem, "parameter_invalid")
        if body["from"]["id"] != self.admin_id:
            return self.error_response(404, "Admin not found", "admin_not_found")
        to = body["to"]
        if self.contacts is not None and to.get("id") not in self.contacts:
            return self.error_response(404, "User Not Found", "not_found")
        message_id = str(self._next_id)
        self._next_id += 1
        created = {
            "type": "admin_message",
            "id": message_id,
            "created_at": int(time.time()),
            "message_type": body["message_type"],
            "subject": body.get("subject", ""),
            "body": body["body"],
            "owner": {"type": "admin", "id": self.admin_id},
        }
        self.messages[message_id] = body
        headers = {
            "X-RateLimit-Limit": "10000",
            "X-RateLimit-Remaining": "9999",
            "X-RateLimit-Reset": str(int(time.time()) + 10),
        }
        return json_response(created, 200, headers)

    @staticmethod
    def _problem(body: dict[str, Any]) -> str | None:
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return f"{unknown[0]} is not a valid parameter"
        kind = body.get("message_type")
        if kind not in ("inapp", "email"):
            return "message_type must be inapp or email"
        if kind == "email" and not body.get("subject"):
            return "subject is required for an email"
        if not isinstance(body.get("body"), str) or not body["body"].strip():
            return "body is required"
        if body.get("template") not in (None, "plain", "personal"):
            return "template must be plain or personal"
        sender = body.get("from")
        if not isinstance(sender, dict) or sender.get("type") != "admin" or not sender.get("id"):
            return "from must be an admin with an id"
        to = body.get("to")
        if (
            not isinstance(to, dict)
            or to.get("type") not in ("user", "lead", "contact")
            or not (to.get("id") or to.get("email"))
        ):
            return "to needs a type (user, lead, contact) and an id or email"
        return None
