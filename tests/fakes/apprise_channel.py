"""A loopback receiver for Apprise's ``json://`` service, to test the Apprise channel.

Apprise's JSON plugin POSTs ``{"version": "1.0", "title", "message", "attachments",
"type"}`` to ``http://host:port/path`` (``json://host:port/path``; ``json://user:pass@...``
adds HTTP Basic auth). The fake checks that shape strictly: POST only (405), JSON content
(400), ``version`` ``1.0``, string ``title`` and non-empty ``message``, ``type`` one of
info/success/warning/failure, ``attachments`` a list, nothing else (400); credentials
when ``user`` is set (401). It answers ``200`` and keeps the payloads in ``fake.received``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

FIELDS = frozenset({"version", "title", "message", "attachments", "type"})
TYPES = frozenset({"info", "success", "warning", "failure"})


class FakeAppriseJson(FakeServer):
    name: ClassVar[str] = "apprise_json"

    def __init__(
        self, *, path: str = "/notify", user: str | None = None, password: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.user = user
        self.password = password
        self.received: list[dict[str, Any]] = []

    def apprise_url(self, password: str | None = None) -> str:
        auth = ""
        if self.user is not None:
            auth = f"{self.user}:{self.password if password is None else password}@"
        return f"json://{auth}{self.host}:{self.port}{self.path}"

    def add_routes(self) -> None:
        self.route("*", self.path, self.receive)

    def _authorized(self, rec: RecordedRequest) -> bool:
        if self.user is None:
            return True
        scheme, _, encoded = rec.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return scheme.lower() == "basic" and secrets.compare_digest(
            f"{user}:{password}", f"{self.user}:{self.password}"
        )

    async def receive(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if request.method != "POST":
            return json_response({"error": "method not allowed"}, 405)
        if not self._authorized(rec):
            return json_response({"error": "unauthorized"}, 401)
        body = rec.fields if rec.content_type == "application/json" else None
        if not isinstance(body, dict):
            return json_response({"error": "a JSON object is required"}, 400)
        problems = [f"unknown field {k}" for k in sorted(set(body) - FIELDS)]
        if body.get("version") != "1.0":
            problems.append("version must be 1.0")
        if not isinstance(body.get("title"), str):
            problems.append("title must be a string")
        if not isinstance(body.get("message"), str) or not body["message"]:
            problems.append("message is required")
        if body.get("type") not in TYPES:
            problems.append("type must be info, success, warning or failure")
        if not isinstance(body.get("attachments", []), list):
            problems.append("attachments must be a list")
        if problems:
            return json_response({"error": "; ".join(problems)}, 400)
        self.received.append(body)
        return json_response({"ok": True})
