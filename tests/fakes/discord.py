"""A strict loopback Discord "Execute Webhook", checked against Discord's own spec.

``POST /api[/v{n}]/webhooks/{webhook_id}/{webhook_token}[?wait=true&thread_id=...]``;
no auth header (the token is in the path). The JSON body is validated against the
request schema of ``execute_webhook`` in ``specs/discord_openapi.json``
(discord/discord-api-spec, unmodified): ``content`` at most 2000 characters, at most 10
``embeds``, title 256 and description 4096 characters, and so on. Errors are Discord's
``{"code", "message", "errors"?}``:

* an unknown webhook id -> 404, 10015 Unknown Webhook; a wrong token -> 401, 50027
  Invalid Webhook Token; another method -> 405, 0;
* a body the spec refuses, a field the spec does not list, a ``wait`` that is not a
  boolean, embeds over 6000 characters in total, a body that is not JSON -> 400, 50035
  Invalid Form Body; no content, embeds, components, attachments nor poll -> 400, 50006
  Cannot send an empty message.

Every answer carries the bucket headers ``X-RateLimit-Limit``, ``-Remaining``,
``-Reset``, ``-Reset-After`` and ``-Bucket``. ``bucket_limit`` requests per
``bucket_window`` seconds are allowed; the next gets ``429`` with ``retry_after`` (float
seconds), ``global: false`` and ``Retry-After``. Success is ``200`` with the message
(``wait=true``) or ``204``.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

from aiohttp import web
from jsonschema import Draft202012Validator

from tests.fakes.harness import FakeServer, RecordedRequest, json_response
from tests.fakes.specs import request_schema

SPEC_FILE = "discord_openapi.json"
WEBHOOK_PATH = "/webhooks/{webhook_id}/{webhook_token}"
DEFAULT_ID = "1234567890123456789"
DEFAULT_TOKEN = "fake_webhook_token-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghij"
SNOWFLAKE_RE = re.compile(r"^(0|[1-9][0-9]*)$")
KNOWN_FIELDS = frozenset(
    {
        "content",
        "embeds",
        "allowed_mentions",
        "components",
        "attachments",
        "poll",
        "tts",
        "flags",
        "username",
        "avatar_url",
        "thread_name",
        "applied_tags",
    }
)


@cache
def execute_validator() -> Draft202012Validator:
    """A validator for the Execute Webhook JSON body, from Discord's spec, once."""
    return Draft202012Validator(request_schema(SPEC_FILE, WEBHOOK_PATH, "post", "application/json"))


def _embed_chars(embed: dict[str, Any]) -> int:
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    for field in embed.get("fields") or []:
        total += len(field.get("name") or "") + len(field.get("value") or "")
    return total


class FakeDiscord(FakeServer):
    name: ClassVar[str] = "discord"

    def __init__(
        self,
        *,
        webhook_id: str = DEFAULT_ID,
        webhook_token: str = DEFAULT_TOKEN,
        bucket_limit: int = 5,
        bucket_window: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.webhook_id = webhook_id
        self.webhook_token = webhook_token
        self.bucket_limit = bucket_limit
        self.bucket_window = bucket_window
        self.bucket = secrets.token_hex(16)
        self._window_start = 0.0
        self._used = 0
        self.messages: dict[str, dict[str, Any]] = {}
        execute_validator()  # load the spec now, not on the first request

    def webhook_url(self, token: str | None = None) -> str:
        return f"{self.base_url}/api/webhooks/{self.webhook_id}/{token or self.webhook_token}"

    def add_routes(self) -> None:
        self.route("*", "/api/webhooks/{webhook_id}/{webhook_token}", self.execute)
        self.route("*", "/api/v{version:\\d+}/webhooks/{webhook_id}/{webhook_token}", self.execute)

    def error_response(
        self, status: int, message: str | None = None, code: Any = None
    ) -> web.Response:
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": 1.0, "global": False}
            return json_response(body, status, self._bucket_headers(0, 1.0))
        if code is None:
            code = {401: 0, 404: 0}.get(status, 0)
        return json_response({"code": code, "message": message or f"{status}: error"}, status)

    def _bucket_headers(self, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.bucket_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket,
        }

    def _take(self) -> tuple[bool, int, float]:
        """Use one request of the bucket: (allowed, remaining, seconds to reset)."""
        now = time.monotonic()
        if now - self._window_start >= self.bucket_window:
            self._window_start, self._used = now, 0
        reset_after = max(0.0, self.bucket_window - (now - self._window_start))
        if self._used >= self.bucket_limit:
            return False, 0, reset_after
        self._used += 1
        return True, self.bucket_limit - self._used, reset_after

    def _error(self, status: int, code: int, message: str, **extra: Any) -> web.Response:
        return json_response({"code": code, "message": message, **extra}, status)

    async def _unmatched(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return self._error(404, 0, "404: Not Found")

    async def execute(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        if not SNOWFLAKE_RE.match(webhook_id) or webhook_id != self.webhook_id:
            return self._error(404, 10015, "Unknown Webhook")
        if not secrets.compare_digest(request.match_info["webhook_token"], self.webhook_token):
            return self._error(401, 50027, "Invalid Webhook Token")
        if request.method != "POST":
            return self._error(405, 0, "405: Method Not Allowed")
        allowed, remaining, reset_after = self._take()
        headers = self._bucket_headers(remaining, reset_after)
        if not allowed:
            retry = round(reset_after, 3)
            headers["Retry-After"] = str(max(1, math.ceil(retry)))
            body = {"message": "You are being rate limited.", "retry_after": retry, "global": False}
            return json_response(body, 429, headers)
        refused = self._check(request, rec)
        if refused is not None:
            refused.headers.update(headers)
            return refused
        message_id = str(secrets.randbits(60) + 10**17)
        body = rec.fields
        self.messages[message_id] = body
        if request.query.get("wait", "false").lower() != "true":
            return web.Response(status=204, headers=headers)
        created = {
            "id": message_id,
            "type": 0,
            "content": body.get("content") or "",
            "channel_id": "1111111111111111111",
            "author": {
                "id": self.webhook_id,
                "username": body.get("username") or "Order Bell",
                "bot": True,
            },
            "embeds": body.get("embeds") or [],
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "flags": 0,
            "components": [],
            "webhook_id": self.webhook_id,
        }
        return json_response(created, 200, headers)

    def _check(self, request: web.Request, rec: RecordedRequest) -> web.Response | None:
        wait = request.query.get("wait")
        if wait is not None and wait.lower() not in ("true", "false"):
            return self._invalid("wait", "Must be either true or false.")
        thread = request.query.get("thread_id")
        if thread is not None and not SNOWFLAKE_RE.match(thread):
            return self._invalid("thread_id", "Value is not snowflake.")
        body = rec.fields if rec.content_type == "application/json" else None
        if not isinstance(body, dict):
            return self._invalid("_", "Invalid Form Body")
        unknown = sorted(set(body) - KNOWN_FIELDS)
        if unknown:
            return self._invalid(unknown[0], "Unknown field.")
        for error in execute_validator().iter_errors(body):
            where = ".".join(str(p) for p in error.absolute_path) or "_"
            return self._invalid(where, error.message)
        if not any(body.get(k) for k in ("content", "embeds", "components", "attachments", "poll")):
            return self._error(400, 50006, "Cannot send an empty message")
        if sum(_embed_chars(e) for e in body.get("embeds") or []) > 6000:
            return self._invalid("embeds", "Embed size exceeds maximum size of 6000")
        return None

    def _invalid(self, field: str, message: str) -> web.Response:
        errors = {field: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}}
        return self._error(400, 50035, "Invalid Form Body", errors=errors)
