"""A strict loopback Pusher Beams Publish API.

``POST /publish_api/v1/instances/{instance_id}/publishes/users`` and ``.../interests``
with ``Authorization: Bearer <secret key>``; checks from the Publish API reference and the
official server SDKs (at most 1000 users of at most 164 characters; 1-100 interests of
at most 164 characters from ``[A-Za-z0-9_\\-=@,.;]``). Errors are ``{"error",
"description"}``:

* another instance -> 404 ``Not Found``; no or wrong key -> 401 ``Unauthorized``;
* another method -> 405; a body that is not a JSON object -> 400 ``Bad request``;
* no target, an empty or oversized target list, a bad user id or interest name, none of
  ``apns``/``fcm``/``web``, a platform payload that is not an object, an unknown field
  -> 422 ``Unprocessable Entity``.

Success is ``200`` with ``{"publishId": "pubid-..."}``.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.harness import FakeServer, RecordedRequest, json_response

DEFAULT_INSTANCE = "8f9a6e4c-1234-4b7d-9a1b-0123456789ab"
DEFAULT_SECRET = "F8AC0B756E50DF235F642D6F0DC2CDE0328CD9184B3874C5E91AB2189BB722FE"
INTEREST_RE = re.compile(r"^[A-Za-z0-9_\-=@,.;]{1,164}$")
FIELDS = frozenset({"users", "interests", "apns", "fcm", "web", "webhookUrl"})


class FakePusherBeams(FakeServer):
    name: ClassVar[str] = "pusher_beams"

    def __init__(
        self,
        *,
        instance_id: str = DEFAULT_INSTANCE,
        secret_key: str = DEFAULT_SECRET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.instance_id = instance_id
        self.secret_key = secret_key
        self.publishes: dict[str, dict[str, Any]] = {}

    def add_routes(self) -> None:
        self.route("*", "/publish_api/v1/instances/{instance}/publishes/{target}", self.publish)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        error = code or {
            400: "Bad request",
            401: "Unauthorized",
            404: "Not Found",
            405: "Method Not Allowed",
            422: "Unprocessable Entity",
            429: "Too Many Requests",
        }.get(status, "Internal Server Error" if status >= 500 else "Bad request")
        return json_response({"error": error, "description": message or error}, status)

    async def publish(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        target = request.match_info["target"]
        if request.match_info["instance"] != self.instance_id or target not in (
            "users",
            "interests",
        ):
            return self.error_response(404, "Instance or endpoint not found")
        scheme, _, key = rec.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(key, self.secret_key):
            return self.error_response(401, "Incorrect API Key")
        if request.method != "POST":
            return self.error_response(405)
        body = rec.fields if rec.content_type == "application/json" else None
        if not isinstance(body, dict):
            return self.error_response(400, "Request body must be a JSON object")
        problem = self._problem(target, body)
        if problem:
            return self.error_response(422, problem)
        publish_id = "pubid-" + secrets.token_hex(16)
        self.publishes[publish_id] = body
        return json_response({"publishId": publish_id})

    @staticmethod
    def _problem(target: str, body: dict[str, Any]) -> str | None:
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return f"Unknown field {unknown[0]!r}"
        values = body.get(target)
        other = "interests" if target == "users" else "users"
        if other in body:
            return f"{other} cannot be used on the {target} endpoint"
        if not isinstance(values, list) or not values:
            return f"{target} must be a non-empty array"
        if target == "users":
            if len(values) > 1000:
                return "at most 1000 users per publish"
            if any(not isinstance(u, str) or not u or len(u) > 164 for u in values):
                return "user ids are 1-164 characters"
        else:
            if len(values) > 100:
                return "at most 100 interests per publish"
            if any(not isinstance(i, str) or not INTEREST_RE.match(i) for i in values):
                return "interest names are 1-164 characters from [A-Za-z0-9_-=@,.;]"
        platforms = [p for p in ("apns", "fcm", "web") if p in body]
        if not platforms:
            return "at least one of apns, fcm or web is required"
        if any(not isinstance(body[p], dict) or not body[p] for p in platforms):
            return "platform payloads must be non-empty objects"
        return None
